"""Backbone speed on CPU: the ExtPose-extended timm ViT against timm's own forward.

    python benchmarks/backbones.py [--batch 2] [--size 128 96] [--depth 4] [--repeats 5]

For each timm family (plain ViT, DINOv2 with registers, EVA-02) and the SDK's ViTPose, at a small
size: milliseconds of timm's ``forward_features`` (the shared ViT's own forward for ViTPose) on B
images, of the extended model at T=1 with RGB only (the ratio should be about 1.0: the extension
costs nothing when unused), and of the extended model at T=8 with RGB + skeleton under the
paper's mask (one sequence of 16 images per clip), with its ratio to 8 frames of the base forward.
"""

from __future__ import annotations

import argparse
import time

import torch

from extpose_sdk import get_registries
from extpose_sdk.extend import ExtendedViT

BACKBONES = [
    "timm:vit_small_patch16_224",
    "timm:vit_small_patch14_reg4_dinov2",
    "timm:eva02_small_patch14_224",
    "vitpose",
]


def best_ms(fn, argument, repeats: int) -> float:
    """Best wall time of ``fn(argument)`` in milliseconds, after one warm-up call."""
    with torch.inference_mode():
        fn(argument)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn(argument)
            best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 96), metavar=("H", "W"))
    parser.add_argument("--embed-dim", type=int, default=192)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = tuple(args.size)
    B, T = args.batch, args.frames
    print(
        f"B={B}, {size[0]}x{size[1]}, width {args.embed_dim}, depth {args.depth}, "
        f"{args.heads} heads, fp32, CPU, {args.threads} thread(s), best of {args.repeats}"
    )
    header = (
        f"{'backbone':36s} {'tokens':>6s} {'base ms':>8s} {'T=1 rgb ms':>10s} {'ratio':>6s} "
        f"{'T=' + str(T) + ' rgb+skel ms':>16s} {'/ ' + str(T) + ' base':>8s}"
    )
    print(header)
    for name in BACKBONES:
        torch.manual_seed(0)
        vit = get_registries().backbone.build(
            name, img_size=size, embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads
        ).eval()
        extended = ExtendedViT(vit, mask="paper").eval()
        base_forward = vit.model.forward_features if hasattr(vit, "model") else vit
        x = torch.randn(B, 3, *size)
        clip = {"rgb": torch.randn(B, T, 3, *size), "skeleton": torch.randn(B, T, 3, *size)}
        base = best_ms(base_forward, x, args.repeats)
        single = best_ms(extended, {"rgb": x[:, None]}, args.repeats)
        video = best_ms(extended, clip, args.repeats)
        print(
            f"{name:36s} {vit.num_tokens:6d} {base:8.2f} {single:10.2f} {single / base:6.2f} "
            f"{video:16.1f} {video / (T * base):8.2f}"
        )


if __name__ == "__main__":
    main()
