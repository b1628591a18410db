"""How much of a model's PA-MPJPE lies along the camera's view ray, on the held-out sequences.

    python benchmarks/ray_split.py --kind body runs/a/model.safetensors runs/b/model.safetensors
    python benchmarks/ray_split.py --kind hand extpose-hamer-synthetic --json split.json

The skeleton image tells a model where the joints lie in the image, nothing about their depth.
So each WEIGHTS, seeing each input it was trained with (frame by frame), is scored three ways
on the held-out sequences of ``held_out.py``: its PA-MPJPE, and the same mean taken over the
aligned joints' errors along the view ray alone (``depth``: what a perfect 2D reading would
leave, were the depths as they are) and across the image alone. Then its head predicting the
mean articulation, the same three ways. A skeleton's gain over RGB reaches down to the depth
column only; bones of known length tie depth to 2D, so it is a guide, not a bound. Prints a
table (mm) and, with ``--json``, writes the scores (an existing file is never overwritten).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import held_out  # noqa: E402  (this folder's held-out set and inputs)
import reproduce  # noqa: E402

VARIANTS = ("PA-MPJPE", "depth", "across the image")


def split(pred: torch.Tensor, gt: torch.Tensor, protocol) -> dict[str, torch.Tensor]:
    """Per-frame PA-MPJPE ``(B,)`` in mm of ``pred`` ``(B, K, 3)`` against ``gt`` ``(B, K, 3|4)``
    (camera axes: z along the view ray), and the same mean over the aligned joints' errors
    along the ray alone (``depth``: what a perfect 2D reading would leave) and across the image
    alone."""
    from extpose_sdk.metrics import mpjpe, procrustes_align

    valid = gt[..., 3] > 0 if gt.shape[-1] == 4 else None
    selected = None if valid is None else protocol.select(valid[..., None])[..., 0]
    truth = protocol.select(gt[..., :3])
    residual = procrustes_align(protocol.select(pred), truth, selected) - truth
    along = torch.cat([torch.zeros_like(residual[..., :2]), residual[..., 2:]], dim=-1)
    parts = {"PA-MPJPE": residual, "depth": along, "across the image": residual - along}
    return {name: mpjpe(truth + part, truth, selected) * protocol.to_mm
            for name, part in parts.items()}


@torch.no_grad()
def score(model, dataset, modalities, batch_size: int = 32) -> dict[str, float]:
    """The mean of ``split`` over every labelled frame of ``dataset`` with ``model`` seeing
    ``modalities``."""
    from extpose_sdk.data.inputs import model_inputs
    from extpose_sdk.data.sample import collate
    from extpose_sdk.datasets.base import SequenceFrames
    from extpose_sdk.engine.data import WithModalities
    from extpose_sdk.metrics import protocol_for_joint_set

    protocol = protocol_for_joint_set(dataset.subject.joint_set)
    model.modalities = tuple(modalities)
    frames = WithModalities(SequenceFrames(dataset), modalities=modalities,
                            size=dataset.crop_size)
    loader = torch.utils.data.DataLoader(frames, batch_size=batch_size, collate_fn=collate)
    totals = dict.fromkeys(VARIANTS, 0.0)
    count = 0
    for batch in loader:
        inputs, present = model_inputs(batch, modalities, size=dataset.crop_size)
        pred = model(inputs, present=present).pred_keypoints_3d
        scores = split(pred.double(), batch["keypoints_3d"].double(), protocol)
        for name, values in scores.items():
            totals[name] += float(values.sum())
        count += len(pred)
    return {name: round(total / count, 3) for name, total in totals.items()}


def score_weights(weights: str, kind: str, dataset) -> dict[str, dict[str, float]]:
    """``score`` of the weights with each input they were trained with, then of their mean
    articulation seeing what they see."""
    from extpose_sdk.engine.evaluate import mean_articulation

    model = reproduce.load_trained(weights, kind)
    trained_on = list(model.modalities)
    rows = {name: score(model, dataset, inputs)
            for name, inputs in held_out.INPUTS if set(inputs) <= set(trained_on)}
    rows["mean articulation"] = score(mean_articulation(model), dataset, trained_on)
    return rows


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| input | " + " | ".join(VARIANTS) + " |", "| --- |" + " ---: |" * len(VARIANTS)]
    lines += [f"| {name} | " + " | ".join(f"{row[v]:.2f}" for v in VARIANTS) + " |"
              for name, row in rows.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", metavar="WEIGHTS")
    held_out.add_set_arguments(parser)
    args = parser.parse_args(argv)
    dataset = held_out.checked_set(parser, args)
    report = {"kind": args.kind, "sequences": args.sequences, "length": args.length,
              "seed": args.seed, "detector_error_scale": args.detector_error, "scores": {}}
    for weights in args.weights:
        report["scores"][weights] = rows = score_weights(weights, args.kind, dataset)
        print(f"\n{weights}, {args.kind}, {args.sequences} x {args.length} frames held out, "
              f"PA-MPJPE (mm):\n{table(rows)}", flush=True)
        if args.json is not None:  # after each, so a later failure keeps what was scored
            args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
