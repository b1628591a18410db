"""CPU inference: fp32 against bf16, at ViT-H size, and what bf16 changes in the outputs.

    python benchmarks/cpu_inference.py [--size h] [--frames 1] [--repeats 3] [--threads N]
        [--checkpoint runs/hand/checkpoints/step-N/model.safetensors]

Times one forward of ExtPose-HaMeR (RGB + skeleton, T frames, random weights, inference mode)
in float32 and with bf16 weights (``extpose predict --dtype bf16``), as the best of
``--repeats`` after a warm-up, and prints ms per frame, their ratio and the largest output
differences. With ``--checkpoint`` (a trained ExtPose .safetensors), it also scores that model
on 64 held-out synthetic frames in both formats: the effect of bf16 on the metrics.
"""

from __future__ import annotations

import argparse
import time

import torch

SIZES = {"h": {}, "b": {"embed_dim": 768, "depth": 12, "num_heads": 12},
         "s": {"embed_dim": 384, "depth": 12, "num_heads": 6}}


def best_ms(model, inputs, repeats: int) -> float:
    with torch.inference_mode():
        model(inputs)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model(inputs)
            best = min(best, time.perf_counter() - start)
    return best * 1000


def speed(size: str, frames: int, repeats: int) -> None:
    import extpose_sdk

    torch.manual_seed(0)
    model = extpose_sdk.load_model("extpose-hamer", **SIZES[size]).eval()
    inputs = {m: torch.randn(1, frames, 3, 256, 256) for m in model.modalities}
    with torch.inference_mode():
        exact = model(inputs)
    fp32_ms = best_ms(model, inputs, repeats)
    model.to(torch.bfloat16)
    fast_inputs = {m: x.to(torch.bfloat16) for m, x in inputs.items()}
    with torch.inference_mode():
        fast = model(fast_inputs)
    bf16_ms = best_ms(model, fast_inputs, repeats)
    print(f"ViT-{size.upper()}, rgb+skeleton, T = {frames}, {torch.get_num_threads()} threads")
    print(f"  fp32 {fp32_ms / frames:9.1f} ms/frame")
    print(f"  bf16 {bf16_ms / frames:9.1f} ms/frame   ratio bf16 / fp32 {bf16_ms / fp32_ms:.2f}")
    for name in ("pred_cam", "hand_pose", "betas"):
        a, b = getattr(exact, name).float(), getattr(fast, name).float()
        print(f"  max |bf16 - fp32| {name:9s} {float((a - b).abs().max()):.4f}"
              f"  (values up to {float(a.abs().max()):.3f})")


def metrics(checkpoint: str) -> None:
    import extpose_sdk
    from extpose_sdk.engine.data import WithModalities
    from extpose_sdk.engine.evaluate import Evaluator
    from extpose_sdk.engine.model import load_training_body_model
    from extpose_sdk.metrics import protocol_for_joint_set

    model = extpose_sdk.load_model("extpose-hamer", checkpoint=checkpoint).eval()
    model.set_body_model(load_training_body_model("synthetic", "hand"))
    clips = extpose_sdk.get_registries().dataset.build(
        "synthetic-hand", split="test", seed=2, num_sequences=8, sequence_length=8,
        clip_length=8, crop_size=128)
    data = WithModalities(clips, modalities=list(model.modalities), size=128)
    evaluator = Evaluator(protocol_for_joint_set("mano21"), batch_size=2, progress=False)
    rows = {"fp32": evaluator.run(model, data).summary}
    model.backbone.to(torch.bfloat16)
    model.head.to(torch.bfloat16)
    rows["bf16"] = evaluator.run(_Cast(model), data).summary
    print(f"trained model {checkpoint}, 64 held-out frames:")
    for name, row in rows.items():
        print(f"  {name}: " + "  ".join(f"{k} {row[k]:.3f}" for k in ("pa_mpjpe", "mpjpe",
                                                                     "reproj_2d")))


class _Cast(torch.nn.Module):
    """The model fed bf16 images, its outputs back in float32 for the float32 body model."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.modalities = model.modalities

    def forward(self, inputs, present=None):
        return self.model({m: x.to(torch.bfloat16) for m, x in inputs.items()}, present=present)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="h")
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--checkpoint")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    speed(args.size, args.frames, args.repeats)
    if args.checkpoint:
        metrics(args.checkpoint)


if __name__ == "__main__":
    main()
