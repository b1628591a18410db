"""Fine-tune trained ExtPose weights on your own data, then predict with the result.

    python examples/finetune_synthetic.py --out runs/finetuned              # about 10 min, 2 cores
    python examples/finetune_synthetic.py --kind body --out runs/finetuned-body
    python examples/finetune_synthetic.py --out /tmp/ft --steps 2          # a smoke run

``--weights`` is registered weights by name or a ``.safetensors`` that ``extpose train`` wrote;
the default is the weights the plugins ship for ``--kind`` (``extpose-hamer-synthetic`` for
hands, ``extpose-hmr2-synthetic`` for bodies; they know the synthetic world only). "Your data"
here is the synthetic set drawn with a seed no other run uses (42); for real data, put a
registered data set in ``data.train`` (``extpose plugins`` lists them: ``freihand``, ``ho3d``,
``3dpw``, ``tar-shards`` for the official WebDataset shards, or your own plugin's) and your
MANO / SMPL file in ``model.body_model``. The recipe is the one the weights were trained with
(``training/synthetic-hand.toml`` / ``synthetic-body.toml``), changed by the same ``key=value``
overrides ``extpose train`` takes; the run resumes from ``--out`` when stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

WEIGHTS = {"hand": "extpose-hamer-synthetic", "body": "extpose-hmr2-synthetic"}


def finetune(out: Path, steps: int, weights: str | None = None,
             overrides: tuple[str, ...] = (), kind: str = "hand") -> Path:
    """Train from ``weights`` (registered weights or a file; default: the shipped ones for
    ``kind``) on a few new sequences of ``kind`` ("hand" or "body"); the path of the final
    weights. ``overrides`` change the recipe further (``key=value``)."""
    from extpose_sdk.engine.loop import train
    from extpose_sdk.engine.recipe import load_recipe

    weights = weights or WEIGHTS[kind]
    your_data = (f'[{{ name = "synthetic-{kind}", options = {{ seed = 42, num_sequences = 64, '
                 'sequence_length = 8, crop_size = 128, augment = { flip_prob = 0.0 } } }]')
    recipe = load_recipe(f"synthetic-{kind}", [
        f"model.checkpoint={str(weights)!r}",
        f"data.train={your_data}",
        "data.val={}", "data.workers=0",
        f"max_steps={steps}", "lr=3e-5", f"warmup_steps={min(50, steps // 10)}",
        f"save_every={max(1, steps // 4)}", "eval_every=0", *overrides,
    ])
    result = train(recipe, out, progress=True)
    return result.checkpoint / "model.safetensors"


def predict(weights: Path, out: Path, kind: str = "hand") -> float:
    """Predict on a new synthetic clip of ``kind`` with the fine-tuned weights; how far the
    meshes' 2D joints land from the clip's keypoints (a fraction of the box; random weights:
    about 1)."""
    from extpose_sdk import Pipeline
    from extpose_sdk.datasets.synthetic import synthetic_model_path, write_sample_video
    from extpose_sdk.results import keypoint_error

    video, keypoints = out / "clip.mp4", out / "clip_keypoints.npz"
    model_file = synthetic_model_path(kind, out)  # your MANO_RIGHT.pkl / SMPL file for real data
    write_sample_video(video, frames=16, kind=kind, seed=43, keypoints_path=keypoints,
                       model_path=model_file)
    pipeline = Pipeline.from_plugins(checkpoint=weights, body_model=model_file,
                                     keypoints=keypoints)
    results = pipeline.video(video, save_to=[out / "results.json"])
    return keypoint_error(results, pipeline.subject.detector_layout, pipeline.subject)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/finetuned", help="run folder (resumed if there)")
    parser.add_argument("--kind", choices=sorted(WEIGHTS), default="hand")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--weights", help="registered weights or a .safetensors file to start "
                        "from (default: the shipped ones for --kind)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    weights = finetune(out, args.steps, args.weights, kind=args.kind)
    error = predict(weights, out, args.kind)
    print(f"fine-tuned weights: {weights}")
    print(f"2D joints on a new clip: {error:.3f} of the box size from its keypoints "
          f"-> {out / 'results.json'}")


if __name__ == "__main__":
    main()
