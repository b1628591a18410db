"""Held-out scores of trained synthetic weights, with each input and against the baselines.

    python benchmarks/held_out.py --kind hand extpose-hamer-synthetic
    python benchmarks/held_out.py --kind hand runs/hand-kp-t8/checkpoints/step-0000900/model.safetensors
    python benchmarks/held_out.py --kind body runs/body-t1/best/model.safetensors@1 --json body.json

Each WEIGHTS (a ``.safetensors`` written by ``extpose train``, or registered weights by name;
``@T`` after it: score at T frames a window, default 8) is scored on held-out test sequences
(test split, seed 2 unless ``--seed``: no training or validation run uses it; 8 sequences of
16 frames as clips of 8 unless told) seeing RGB + skeleton, the skeleton only and RGB only
(those of them it was trained with); then the same weights' head predicting the mean
articulation (orientation, shape and camera still read from the input) and always the mean.
``--detector-error SCALE``: a stand-in detector making SCALE times the default's errors (0: the
true joints); ``--overlap N``: T-frame weights on the windows ``extpose predict`` runs,
overlapping by N.
docs/reproduction.md's held-out tables of shipped weights come from here. Prints a table (mm;
2D error as a fraction of the crop) and, with ``--json``, writes the scores (an existing file is
never overwritten).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import reproduce  # noqa: E402  (this folder's protocol: its loading and scoring)

INPUTS = (("rgb+skeleton", ["rgb", "skeleton"]), ("skeleton only", ["skeleton"]),
          ("rgb only", ["rgb"]))


def held_out_set(kind: str, sequences: int, length: int, seed: int = 2,
                 detector_error: float = 1.0):
    """``sequences`` test sequences of ``length`` frames of ``kind``, as clips of 8, with a
    stand-in detector making ``detector_error`` times the default's errors."""
    import extpose_sdk

    return extpose_sdk.get_registries().dataset.build(
        f"synthetic-{kind}", split="test", seed=seed, crop_size=128, clip_length=8,
        num_sequences=sequences, sequence_length=length,
        **reproduce.detector_option(detector_error))


def parse_weights(text: str) -> tuple[str, int]:
    """``path[@frames]`` -> (path, frames); frames default to 8."""
    path, at, frames = text.rpartition("@")
    if not at:
        return text, 8
    if not frames.isdigit() or int(frames) < 1:
        raise ValueError(f"{text!r}: the frames after '@' must be a positive whole number")
    return path, int(frames)


def detector_error(dataset, threshold: float | None = None) -> dict[str, float]:
    """How far the stand-in detector's drawn joints (those the skeleton image shows: confidence
    at least ``threshold``, by default ``SkeletonRenderer``'s; the detector's dropped joints lie
    far off with low confidence) lie from the true 2D joints, as a fraction of the crop side (the
    unit of the models' 2D error)."""
    import numpy as np
    import torch

    from extpose_sdk.data.crops import to_crop_normalized, transform_points
    from extpose_sdk.keypoints.layouts import convert
    from extpose_sdk.modalities.skeleton import DEFAULT_THRESHOLD
    from extpose_sdk.subjects import get_subject

    subject = get_subject(dataset.kind)
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    errors = []
    for i in range(len(dataset)):
        clip = dataset[i]
        truth = convert(clip["keypoints_2d"][:, : subject.label_joints].numpy(),
                        subject.label_layout, clip["detected_layout"])
        frames = zip(clip["detected_keypoints_2d"].numpy(), clip["crop_transform"].numpy(),
                     strict=True)
        detected = np.stack([to_crop_normalized(transform_points(points, transform),
                                                dataset.crop_size)
                             for points, transform in frames])
        kept = (detected[..., 2] >= threshold) & (truth[..., 2] > 0) & clip["valid"].numpy()[:, None]
        errors.append(np.linalg.norm(detected[..., :2] - truth[..., :2], axis=-1)[kept])
    error = torch.as_tensor(np.concatenate(errors))
    return {"mean": round(float(error.mean()), 4), "median": round(float(error.median()), 4)}


def score(weights: str, frames: int, kind: str, dataset, overlap: int = 0,
          ) -> dict[str, dict[str, float]]:
    """The weights with each input they were trained with, and the mean articulation and
    always the mean seeing what the weights see; ``overlap``: on T-frame windows overlapping by
    that many frames, as ``extpose predict`` runs them (0: clips of 8 that do not overlap)."""
    from extpose_sdk.engine.evaluate import mean_articulation, mean_prediction

    model = reproduce.load_trained(weights, kind)
    trained_on = list(model.modalities)  # RGB-only weights are scored with RGB only
    rows = {name: reproduce.evaluate(model, dataset, inputs, frames, overlap)
            for name, inputs in INPUTS if set(inputs) <= set(trained_on)}
    for name, baseline in (("mean articulation", mean_articulation),
                           ("always the mean", mean_prediction)):
        rows[name] = reproduce.evaluate(baseline(model), dataset, trained_on, frames, overlap)
    articulation = rows["mean articulation"]["pa_mpjpe"]
    for row in rows.values():
        row["pa_x_articulation"] = round(row["pa_mpjpe"] / articulation, 3)
    return rows


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| input | PA-MPJPE | x mean artic. | MPJPE | PVE | accel. | 2D |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['pa_mpjpe']:.2f} | {row['pa_x_articulation']:.2f} | "
                     f"{row['mpjpe']:.1f} | {row['pve']:.1f} | {row['accel']:.1f} | "
                     f"{row['reproj_2d']:.3f} |")
    return "\n".join(lines)


def add_set_arguments(parser: argparse.ArgumentParser) -> None:
    """The held-out set's options (and ``--json``), shared with ``ray_split.py``."""
    parser.add_argument("--kind", choices=["hand", "body"], required=True)
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--length", type=int, default=16, help="frames a sequence")
    parser.add_argument("--detector-error", type=float, default=1.0, metavar="SCALE",
                        help="the test clips' stand-in detector makes SCALE times the default's "
                        "errors (0: the true joints), at test time only")
    parser.add_argument("--seed", type=int, default=2,
                        help="the test split's seed (default 2, the held-out sequences every "
                        "table in docs/reproduction.md uses; 1 is the training runs' validation, "
                        "3 the shipped-weights test's clips; others: sequences no run has seen, "
                        "to confirm a finding on new ones)")
    parser.add_argument("--json", type=Path, help="write the scores here (a new file)")


def checked_set(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The held-out set the arguments ask for, rendered once for every row; refuses an
    existing ``--json``, the validation split and a negative detector error first."""
    if args.json is not None and args.json.exists():
        parser.error(f"{args.json} exists; give a new file (earlier scores are kept)")
    if args.seed == 1:
        parser.error("--seed 1 is the training runs' validation split, not held out; "
                     "give 2 (the default) or an unused seed such as 4")
    if args.detector_error < 0:
        parser.error(f"--detector-error must be >= 0; got {args.detector_error}")
    from extpose_sdk.datasets.base import RenderedOnce

    return RenderedOnce(held_out_set(args.kind, args.sequences, args.length, args.seed,
                                     detector_error=args.detector_error))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", metavar="WEIGHTS[@T]")
    add_set_arguments(parser)
    parser.add_argument("--overlap", type=int, default=0, metavar="N",
                        help="score T-frame weights on the windows extpose predict runs, "
                        "overlapping by N frames, each frame from the window where it is most "
                        "central (predict's default: T // 2); default 0: clips of T that do not "
                        "overlap")
    args = parser.parse_args(argv)
    try:
        runs = [parse_weights(text) for text in args.weights]
    except ValueError as error:
        parser.error(str(error))
    for weights, frames in runs:
        if frames > 1 and not 0 <= args.overlap < frames:
            parser.error(f"--overlap must be in [0, {frames}) for {weights}@{frames}; "
                         f"got {args.overlap}")
        if frames not in (1, 8) and not args.overlap:
            parser.error(f"{weights}@{frames}: the test clips are of 8 frames; score a window "
                         f"of {frames} with --overlap (e.g. {frames // 2}, predict's default)")
    dataset = checked_set(parser, args)
    report = {"kind": args.kind, "sequences": args.sequences, "length": args.length,
              "seed": args.seed,
              "detector_error_scale": args.detector_error, "overlap": args.overlap,
              "detector_2d": detector_error(dataset), "scores": {}}
    print(f"the stand-in detector's drawn joints lie {report['detector_2d']['mean']:.3f} of the "
          f"crop from the truth (median {report['detector_2d']['median']:.3f})")
    for weights, frames in runs:
        report["scores"][f"{weights}@{frames}"] = rows = score(weights, frames, args.kind,
                                                               dataset, args.overlap)
        windows = (f"windows overlapping by {args.overlap}" if frames > 1 and args.overlap
                   else "clips of 8")
        print(f"\n{weights} (T = {frames}), {args.kind}, {args.sequences} x {args.length} frames "
              f"held out ({windows}):\n{table(rows)}", flush=True)
        if args.json is not None:  # after each, so a later failure keeps what was scored
            args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
