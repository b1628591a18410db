"""Score trained checkpoints on the held-out synthetic hand sequences, with and without depth.

    python examples/extpose-plugin-depth/scripts/evaluate.py --json runs/depth-eval.json \
        runs/depth-start/without-depth/model.safetensors runs/depth-without/checkpoints/latest \
        runs/depth-with/checkpoints/latest

The held-out set is the recipe's ``data.val`` (``training/depth-hand.toml``: 8 test sequences of
32 frames, seed 1), rendered once. Each checkpoint is scored by the engine's ``Evaluator``, as
training validates (the modality images at the crop size, ``engine.data.WithModalities``); a
model with the ``depth`` modality is scored twice: with its depth images, and with depth absent
(the samples without ``depth``: the modality is then rendered from evidence that has none, so it
is zeros and marked absent, as at inference without a depth file).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


class Frozen:
    """A list of samples as a data set."""

    def __init__(self, samples, name):
        self.samples, self.name = samples, name

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return dict(self.samples[i])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help=".safetensors files or checkpoint folders")
    parser.add_argument("--recipe", default=str(HERE / "training" / "depth-hand.toml"))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import extpose_sdk
    from extpose_sdk.engine.data import WithModalities
    from extpose_sdk.engine.evaluate import Evaluator
    from extpose_sdk.engine.model import load_training_body_model
    from extpose_sdk.engine.recipe import load_recipe
    from extpose_sdk.metrics import protocol_for_joint_set

    recipe = load_recipe(args.recipe)
    val = recipe.data.val
    started = time.time()
    dataset = extpose_sdk.get_registries().dataset.build(val["name"], split=val.get("split", "test"),
                                                         **val.get("options", {}))
    samples = [dataset[i] for i in range(len(dataset))]
    without = [{k: v for k, v in s.items() if k not in ("depth", "has_depth")} for s in samples]
    print(f"rendered {len(samples)} held-out frames in {time.time() - started:.0f} s")
    size = recipe.data.crop_size
    results = []
    for checkpoint in args.checkpoints:
        path = Path(checkpoint)
        if path.is_dir():
            path = path.resolve() / "model.safetensors"
        model = extpose_sdk.load_model(recipe.model.recipe, checkpoint=str(path)).eval()
        model.set_body_model(load_training_body_model(recipe.model.body_model, model.subject))
        protocol = protocol_for_joint_set(model.subject.joint_set)
        runs = [("with depth", samples)] if "depth" in model.modalities else [("-", samples)]
        if "depth" in model.modalities:
            runs.append(("depth absent", without))
        for condition, data in runs:
            evaluator = Evaluator(protocol, batch_size=16, progress=False)
            wrapped = WithModalities(Frozen(data, val["name"]), modalities=model.modalities,
                                     size=size)
            summary = evaluator.run(model, wrapped).summary
            row = {"checkpoint": str(checkpoint), "modalities": list(model.modalities),
                   "condition": condition, **{k: float(v) for k, v in summary.items()}}
            results.append(row)
            print(json.dumps(row))
    print(f"done in {time.time() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
