"""The paper's findings at laptop scale, on the synthetic sets: does the skeleton image help,
do frames help, does one model trained with modality dropout work with either input?

    python benchmarks/reproduce.py --kind hand --out runs/reproduce-hand
    python benchmarks/reproduce.py --kind hand --out runs/reproduce-hand --base runs/hand-base
    python benchmarks/reproduce.py --kind hand --out /tmp/r --tiny      # a smoke run, minutes
    python benchmarks/reproduce.py --kind hand --out runs/r --pretrain 2500   # a ViTPose first
    python benchmarks/reproduce.py --kind hand --out runs/r \\
        model.backbone_weights=runs/hand-keypoints/backbone.safetensors   # one pretrained before
    python benchmarks/reproduce.py --kind hand --out runs/r data.workers=14   # a GPU machine
    python benchmarks/reproduce.py --kind hand --out runs/r --base runs/hand-base \
        --detector-error 0.5          # the arms and the test set with a better 2D detector

The protocol follows the paper's at small scale:
0. with ``--pretrain``, the base's ViT first learns 2D keypoints from RGB (a synthetic
   "ViTPose": HMR2.0 and HaMeR start from ViTPose's ViT), or with ``--pretrain-input
   rgb+skeleton`` from both images, the start the hands' skeleton gain came from;
1. a base model, RGB only, single frames (the synthetic "HaMeR" / "HMR2.0"): the recipe
   ``synthetic-<kind>-base``, or an existing run given with ``--base``;
2. from that same base, for the same number of steps and the same frames per step, four
   fine-tunes: (a) RGB, T = 1 (the control); (b) RGB + skeleton, T = 1; (c) RGB, T = 8;
   (d) RGB + skeleton, T = 8 with the paper's mask and modality dropout 0.5;
3. every arm's *final* weights (nothing is selected on the test set) scored on held-out test
   sequences (a seed no training or validation run uses): PA-MPJPE, MPJPE, PVE, acceleration
   error, 2D reprojection error; (b) and (d) also with RGB only and skeleton only at test time;
   (c) and (d) on clips of 8 that do not overlap and on the windows ``extpose predict`` runs
   (8 frames overlapping by 4, each frame from the window where it is most central);
   baselines: always the training set's mean pose, and the zero pose.

``--cycles STEPS@LR ...`` then trains every arm further, cycle after cycle, each from the arm's
own weights at the end of the cycle before, for STEPS steps at a peak learning rate LR (a warmup
of 100 steps, then cosine), the arms at equal steps again; each cycle's weights are scored as
the arms' are. The hands' skeleton gain came so: ``--cycles 8000@3e-4 4000@1e-4 4000@5e-5``
(docs/reproduction.md, "Long arms from the pretraining on both images").

``--detector-error SCALE`` gives the arms (training and validation) and the test set a
stand-in detector making SCALE times the default's errors (jitter, dropped joints, swapped
sides; ``extpose_sdk.datasets.synthetic.DetectionNoise``): the skeleton image is only as good as
the detector. The base (RGB only) never sees detections.

Every run resumes from its folder (the ``--pretrain`` ViT from its training state, kept
beside its backbone until that is saved), so the script can be stopped and run again. It writes
``OUT/reproduce.json`` and ``OUT/reproduce.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ARMS = {
    "a_rgb_T1": {"modalities": ["rgb"], "frames": 1, "dropout": 0.0},
    "b_rgb+skeleton_T1": {"modalities": ["rgb", "skeleton"], "frames": 1, "dropout": 0.5},
    "c_rgb_T8": {"modalities": ["rgb"], "frames": 8, "dropout": 0.0},
    "d_rgb+skeleton_T8": {"modalities": ["rgb", "skeleton"], "frames": 8, "dropout": 0.5},
}
CYCLE_WARMUP = 100  # steps of each --cycles cycle's warmup (a tenth of shorter cycles)


def tiny_overrides(out: Path, kind: str) -> list[str]:
    """A smoke run: a tiny model on a tiny cached set, a few steps."""
    options = ('{ img_size = [128, 128], embed_dim = 16, depth = 1, num_heads = 2, head_dim = 16, '
               'head_depth = 1, head_heads = 2, head_dim_head = 8, head_mlp_dim = 16 }')
    data = (f'[{{ name = "synthetic-{kind}", options = {{ num_sequences = 2, sequence_length = 8, '
            'crop_size = 128, cache_clip_length = 8 } }]')
    return ["max_steps=4", "eval_every=0", "save_every=2", f"model.options={options}",
            f"data.train={data}", "data.val={}", f"data.cache={out / 'cache'}",
            "mean_params_samples=4", "plot=false"]


def base_recipe(kind: str, overrides: list[str]):
    from extpose_sdk.engine.recipe import load_recipe

    return load_recipe(f"synthetic-{kind}-base", overrides)


def detection_noise(scale: float) -> dict | None:
    """The stand-in detector making ``scale`` times the default's errors, as a recipe table;
    None for the default detector."""
    from extpose_sdk.datasets.synthetic import DetectionNoise

    if scale == 1.0:
        return None
    default = DetectionNoise()
    return {"jitter": default.jitter * scale, "drop": default.drop * scale,
            "swap": default.swap * scale}


def detector_option(scale: float) -> dict:
    """``detection_noise(scale)`` as a synthetic data set's keyword argument (none for the
    default detector)."""
    noise = detection_noise(scale)
    return {} if noise is None else {"detection_noise": noise}


def arm_recipe(kind: str, arm: dict, base_weights: Path, steps: int, frames_per_step: int,
               overrides: list[str], detector: dict | None = None):
    """The fine-tune of one arm: the base recipe with the arm's inputs, from the base weights
    (with ``detector``: that stand-in detector's detections, validated on a cache of its own)."""
    recipe = base_recipe(kind, overrides)
    if detector is not None:
        for entry in [*recipe.data.train, recipe.data.val]:
            if entry:
                entry.setdefault("options", {})["detection_noise"] = dict(detector)
        if recipe.data.val_cache:
            recipe.data.val_cache += "-detector-" + "-".join(f"{v:g}" for v in detector.values())
    recipe.name = f"synthetic-{kind}-{'+'.join(arm['modalities'])}-T{arm['frames']}"
    recipe.model.checkpoint = str(base_weights)
    recipe.model.backbone_weights = ""  # the base's start (model.backbone_weights=...), not the arms'
    recipe.model.modalities = list(arm["modalities"])
    recipe.model.frames = arm["frames"]
    recipe.model.mask = "paper"
    recipe.model.mean_params_from_data = False
    recipe.train.modality_dropout = arm["dropout"]
    recipe.optim.max_steps = steps
    recipe.optim.batch_size = max(1, frames_per_step // arm["frames"])
    recipe.optim.warmup_steps = min(recipe.optim.warmup_steps, steps // 10)
    recipe.optim.lr = recipe.optim.lr / 3
    return recipe


def cycle_recipe(kind: str, arm: dict, weights: Path, steps: int, lr: float, frames_per_step: int,
                 overrides: list[str], detector: dict | None = None):
    """One further cycle of an arm: the arm's recipe from ``weights`` (its end of the cycle
    before), ``steps`` steps at peak learning rate ``lr``, a short warmup."""
    recipe = arm_recipe(kind, arm, weights, steps, frames_per_step, overrides, detector)
    recipe.optim.lr = lr
    recipe.optim.warmup_steps = min(CYCLE_WARMUP, steps // 10)
    return recipe


def cycle(text: str) -> tuple[int, float]:
    """``--cycles``' values: ``STEPS@LR``, e.g. ``8000@3e-4``."""
    if "=" in text:
        return arm_name(text)  # an override the list swallowed: said so
    steps, at, lr = text.partition("@")
    try:
        parsed = int(steps), float(lr)
    except ValueError:
        parsed = None
    if not at or parsed is None or parsed[0] < 1 or not parsed[1] > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a cycle is STEPS@LR with STEPS >= 1 and LR > 0, e.g. 8000@3e-4")
    return parsed


def base_weights_of(base: Path) -> Path:
    """The base model's weights: ``base`` itself when it is a ``.safetensors`` file, else the
    newest checkpoint of the run folder ``base``."""
    from extpose_sdk.engine.state import latest_checkpoint

    if base.suffix == ".safetensors":
        if not base.is_file():
            raise FileNotFoundError(f"--base {base}: no such weights file")
        return base
    folder = latest_checkpoint(base)
    if folder is None:
        raise FileNotFoundError(f"--base {base}: not a run folder with a checkpoint (give the "
                                "folder extpose train wrote, or a model .safetensors)")
    return folder / "model.safetensors"


def test_set(kind: str, tiny: bool, detector: dict | None = None):
    """Held-out test clips of 8 frames (seed 2: no training or validation run uses it)."""
    import extpose_sdk

    options = {"split": "test", "seed": 2, "crop_size": 128, "clip_length": 8,
               "num_sequences": 2 if tiny else 32, "sequence_length": 16 if tiny else 32}
    if detector is not None:
        options["detection_noise"] = detector
    return extpose_sdk.get_registries().dataset.build(f"synthetic-{kind}", **options)


def evaluate(model, dataset, modalities, frames: int, overlap: int = 0) -> dict:
    """Metrics of ``model`` seeing ``modalities`` on clips (T = 8) or their frames (T = 1);
    ``overlap``: on the windows ``extpose predict`` runs, T frames overlapping by ``overlap``,
    instead of clips that do not overlap (``score_sequences``)."""
    from extpose_sdk.engine.evaluate import score_sequences

    summary = score_sequences(model, dataset, modalities, frames=frames, overlap=overlap)
    return {k: round(float(v), 3) for k, v in summary.items()}


def load_trained(path: str | Path, kind: str):
    """A trained ExtPose model of ``kind`` (a checkpoint file or registered weights) with the
    synthetic body model attached, in eval mode."""
    import extpose_sdk
    from extpose_sdk.engine.model import load_training_body_model

    model = extpose_sdk.load_model(f"extpose-{'hamer' if kind == 'hand' else 'hmr2'}",
                                   checkpoint=str(path))
    return model.set_body_model(load_training_body_model("synthetic", kind)).eval()


def baselines(base_weights: Path, dataset, kind: str) -> dict:
    """The mean pose (the base's head with its pose readout zeroed: camera, orientation and
    shape still predicted) and the zero pose (also identity finger rotations)."""
    from extpose_sdk.engine.evaluate import mean_articulation

    base = load_trained(base_weights, kind)
    return {name: evaluate(mean_articulation(base, zero=name == "zero_pose"), dataset, ["rgb"], 1)
            for name in ("mean_pose", "zero_pose")}


def arm_rows(name: str, arm: dict, model, dataset) -> dict:
    """An arm's test rows: with its inputs; a T-frame arm also on the windows ``extpose predict``
    runs; an arm of two inputs also with each alone."""
    rows = {name: evaluate(model, dataset, arm["modalities"], arm["frames"])}
    if arm["frames"] > 1:  # also as extpose predict runs a video: windows overlapping by T/2
        rows[f"{name} (predict's windows)"] = evaluate(model, dataset, arm["modalities"],
                                                       arm["frames"], arm["frames"] // 2)
    if len(arm["modalities"]) > 1:
        for only in arm["modalities"]:
            rows[f"{name} ({only} only)"] = evaluate(model, dataset, [only], arm["frames"])
    return rows


def train_logged(recipe, folder: Path) -> dict:
    from extpose_sdk.engine.loop import train

    started = time.perf_counter()
    result = train(recipe, folder, progress=True)
    if result.status != "finished":  # a signal: stop here, the same command resumes
        raise SystemExit(f"{folder}: {result.status} at step {result.step}; run the same command "
                         "again to resume")
    records = [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] * recipe.model.frames for r in records if "samples_per_s" in r]
    return {"steps": result.step, "weights": str(result.checkpoint / "model.safetensors"),
            "seconds_this_call": round(time.perf_counter() - started, 1),
            "frames_per_s": round(sorted(rates)[len(rates) // 2], 1) if rates else None}


def plot(report: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(name, r) for name, r in report["test"].items()]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, metric, title in zip(axes, ("pa_mpjpe", "accel", "reproj_2d"),
                                 ("PA-MPJPE (mm)", "acceleration error (mm/frame²)",
                                  "2D error (fraction of crop)"), strict=True):
        names = [n for n, r in rows if metric in r]
        ax.barh(names, [r[metric] for n, r in rows if metric in r], color="tab:blue")
        ax.set_title(title)
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
    figure.suptitle(f"ExtPose on the synthetic {report['kind']} set (held-out sequences)")
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)


def pretrained_backbone(args, path: Path, overrides: list[str]) -> dict:
    """The base's ViT pretrained on 2D keypoints (``benchmarks/rgb_backbones.py``), once: a run
    of the script again reuses the saved backbone."""
    if path.is_file():
        return {"weights": str(path), "reused": True}
    import rgb_backbones

    options = {k: v for k, v in base_recipe(args.kind, overrides).model.options.items()
               if not k.startswith("head_") and k != "mean_params"}
    frames = 64 if args.tiny else args.pretrain_frames
    both = args.pretrain_input == "rgb+skeleton"
    result = rgb_backbones.pretrain(options, path, kind=args.kind, frames=frames,
                                    steps=args.pretrain, input=args.pretrain_input,
                                    modality_dropout=0.5 if both else 0.0)
    return {"weights": str(path), "input": args.pretrain_input,
            **{k: v for k, v in result.items() if k.startswith("val_2d")},
            "seconds": result["seconds"]}


def arm_name(text: str) -> str:
    """``--arms``' (and ``--cycles``') values: a KEY=VALUE there is an override the list
    swallowed, said so."""
    if "=" in text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is a recipe override, not an arm or a cycle: put overrides before --arms "
            "and --cycles, or end their list with -- (--arms a_rgb_T1 b_rgb+skeleton_T1 -- "
            "loss.pose=0.01)")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["hand", "body"], default="hand")
    parser.add_argument("--out", required=True)
    parser.add_argument("--base", help="an existing base: a run folder (its newest checkpoint) or "
                        "a model .safetensors (else trained here)")
    parser.add_argument("--arm-steps", type=int, default=3000)
    parser.add_argument("--frames-per-step", type=int, default=32)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS),
                        type=arm_name, help="the arms to run (KEY=VALUE overrides go before "
                        "--arms, or after -- that ends the list)")
    parser.add_argument("--cycles", nargs="+", default=[], type=cycle, metavar="STEPS@LR",
                        help="then train every arm further, cycle after cycle from its own "
                        "weights, STEPS steps at peak learning rate LR each (8000@3e-4 "
                        "4000@1e-4 4000@5e-5: the hands' long arms)")
    parser.add_argument("--pretrain", type=int, default=0, metavar="STEPS",
                        help="first pretrain the base's ViT on 2D keypoints from RGB for STEPS steps "
                        "(benchmarks/rgb_backbones.py), then start the base from it")
    parser.add_argument("--pretrain-frames", type=int, default=24000)
    parser.add_argument("--pretrain-input", choices=["rgb", "rgb+skeleton"], default="rgb",
                        help="what the --pretrain ViT reads: the RGB crop (the paper's ViTPose), "
                        "or both images as ExtPose reads them, one of them alone in half the "
                        "steps (docs/reproduction.md, \"A ViTPose of both images\")")
    parser.add_argument("--detector-error", type=float, default=1.0, metavar="SCALE",
                        help="the arms' and the test set's stand-in 2D detector makes SCALE times "
                        "the default's errors (0.5: a detector twice as good)")
    parser.add_argument("--tiny", action="store_true", help="a smoke run of every stage")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="recipe changes for every run, as extpose train takes them (on a "
                        "GPU machine: data.workers=14 batch_size=128, with --frames-per-step 128)")
    args = parser.parse_args()
    if args.pretrain and args.base:
        parser.error("--pretrain starts the base this script trains; --base gives one trained "
                     "already (start it with model.backbone_weights=... when you train it)")
    if args.detector_error < 0:
        parser.error(f"--detector-error must be >= 0; got {args.detector_error}")
    if args.pretrain_input != "rgb" and not args.pretrain:
        parser.error("--pretrain-input says what --pretrain STEPS reads; give --pretrain too")
    given_base = None
    if args.base:
        try:
            given_base = base_weights_of(Path(args.base))
        except FileNotFoundError as error:
            parser.error(str(error))

    detector = detection_noise(args.detector_error)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = (tiny_overrides(out, args.kind) if args.tiny else []) + list(args.overrides)
    report: dict = {"kind": args.kind, "arms": {}, "test": {}, "detection_noise": detector}
    base_folder = Path(args.base) if args.base else out / "base"
    if args.pretrain and not args.base:
        report["pretrain"] = pretrained_backbone(args, out / "keypoints" / "backbone.safetensors",
                                                 overrides)
        overrides.append(f"model.backbone_weights={report['pretrain']['weights']!r}")
    if not args.base:
        report["base"] = train_logged(base_recipe(args.kind, overrides), base_folder)
    base_weights = given_base or base_weights_of(base_folder)
    report["base_weights"] = str(base_weights)
    steps = 4 if args.tiny else args.arm_steps
    for name in args.arms:
        recipe = arm_recipe(args.kind, ARMS[name], base_weights, steps, args.frames_per_step,
                            overrides, detector)
        report["arms"][name] = train_logged(recipe, out / name)
    weights = {name: Path(report["arms"][name]["weights"]) for name in args.arms}
    for number, (cycle_steps, lr) in enumerate(args.cycles, 1):
        for name in args.arms:
            recipe = cycle_recipe(args.kind, ARMS[name], weights[name],
                                  4 if args.tiny else cycle_steps, lr, args.frames_per_step,
                                  overrides, detector)
            run = train_logged(recipe, out / f"{name}-cycle{number}")
            report["arms"][f"{name} cycle {number}"] = {**run, "lr": lr}
            weights[name] = Path(run["weights"])
    from extpose_sdk.datasets.base import RenderedOnce

    dataset = RenderedOnce(test_set(args.kind, args.tiny, detector))  # rendered once for all rows
    report["test"].update(baselines(base_weights, dataset, args.kind))
    report["test"]["base"] = evaluate(load_trained(base_weights, args.kind), dataset, ["rgb"], 1)
    for row in report["arms"]:  # the arms, then their cycles
        arm = ARMS[row.split(" cycle ")[0]]
        model = load_trained(Path(report["arms"][row]["weights"]), args.kind)
        report["test"].update(arm_rows(row, arm, model, dataset))
    (out / "reproduce.json").write_text(json.dumps(report, indent=1))
    plot(report, out / "reproduce.png")
    for name, row in report["test"].items():
        shown = "  ".join(f"{k} {row[k]:.3f}" for k in ("pa_mpjpe", "mpjpe", "pve", "accel",
                                                         "reproj_2d") if k in row)
        print(f"{name:38s} {shown}")
    print(f"wrote {out / 'reproduce.json'} and {out / 'reproduce.png'}")


if __name__ == "__main__":
    main()
