"""The paper's mask at the cost of its FLOPs: ms per frame of full, frame, paper (dense mask, the
old path) and paper (merged by log-sum-exp, the new path), and the issue's goal check.

    python benchmarks/masks.py                       # ViT-B width at depth 2, T=16, rgb+skeleton
    python benchmarks/masks.py --size h --depth 1    # ViT-H width
    python benchmarks/masks.py --device cuda --dtype bf16 --size h --depth 32   # a GPU
    python benchmarks/masks.py --size s --T 4 --train        # forward + backward (CPU merges)

Every layer of a ViT costs the same, so ``--depth`` scales every row alike and leaves the ratios
as they are. The rows are timed in rounds (one call of each per round, median over the rounds),
so a machine that is loaded by other work slows them alike. Goal (issue 20):
``paper ms/frame <= full ms/frame x (paper FLOPs / full FLOPs) x 1.1``, with the FLOPs of the
whole model (``extension.estimated_flops``: linear layers and the attention products the mask
allows); the ratio of the attention products alone is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import torch
from extension import estimated_flops  # benchmarks/extension.py, beside this script

from extpose_sdk import mask_paths
from extpose_sdk.extend import ExtendedViT, parse_mask
from extpose_sdk.vit import ViT, ViTConfig

SIZES = {
    "s": dict(embed_dim=384, depth=12, num_heads=6),
    "b": dict(embed_dim=768, depth=12, num_heads=12),
    "h": dict(embed_dim=1280, depth=32, num_heads=16),
}
ROWS = (("full", "full", True), ("frame", "frame", True), ("paper-dense", "paper", False),
        ("paper-merged", "paper", True))


def attention_products(mask: str, T: int, M: int) -> int:
    """Key-query block pairs the mask allows (a block: one image's tokens)."""
    return int(parse_mask(mask).allowed(T, M, 1).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="b")
    parser.add_argument("--depth", type=int, default=2, help="blocks (the size's own: 0)")
    parser.add_argument("--T", type=int, default=16)
    parser.add_argument("--modalities", type=int, default=2)
    parser.add_argument("--clips", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train", action="store_true",
                        help="time forward + backward (train mode, gradients) instead")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    size = dict(SIZES[args.size], **({"depth": args.depth} if args.depth else {}))
    config = ViTConfig(**size)
    torch.manual_seed(0)
    vit = ViT(config).to(device=device, dtype=dtype).eval()
    T, M = args.T, args.modalities
    H, W = config.img_size
    inputs = {f"m{i}": torch.randn(args.clips, T, 3, H, W, device=device, dtype=dtype)
              for i in range(M)}
    frames = args.clips * T

    def call(mask: str, merged: bool) -> torch.Tensor:
        extended = ExtendedViT(vit, mask=mask, attention="sdpa").train(args.train)
        with torch.set_grad_enabled(args.train), mock.patch.object(
            mask_paths, "merges", mask_paths.merges if merged else (lambda *a: False)
        ):
            out = extended(inputs).tokens
            if args.train:
                out.square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out.detach()

    outputs = {name: call(mask, merged) for name, mask, merged in ROWS}  # warm-up
    seconds = {name: [] for name, _, _ in ROWS}
    cpu_seconds = {name: [] for name, _, _ in ROWS}
    for _ in range(args.rounds):
        for name, mask, merged in ROWS:
            start, cpu_start = time.perf_counter(), time.process_time()
            call(mask, merged)
            seconds[name].append(time.perf_counter() - start)
            cpu_seconds[name].append(time.process_time() - cpu_start)
    ms = {name: 1000 * statistics.median(s) / frames for name, s in seconds.items()}
    cpu_ms = {name: 1000 * statistics.median(s) / frames for name, s in cpu_seconds.items()}

    print(f"ViT {args.size}: D={config.embed_dim} depth={config.depth} heads={config.num_heads} "
          f"{H}x{W} ({config.grid_size[0] * config.grid_size[1]} tokens/image), T={T}, "
          f"{M} modalities, {args.clips} clip(s), {device} {args.dtype}, "
          f"threads={torch.get_num_threads()}, median of {args.rounds} rounds, "
          f"{'forward + backward' if args.train else 'forward, no gradients'}")
    print("(ms: wall clock; cpu ms: this process's CPU time, less moved by other work on the "
          "machine)")
    full_flops = estimated_flops(config, T, M, "full")
    print(f"{'path':>13} {'GFLOP/frame':>11} {'FLOPs/full':>10} {'attn/full':>9} "
          f"{'ms/frame':>9} {'ms/full':>7} {'cpu ms/frame':>12} {'cpu/full':>8}")
    for name, mask, _ in ROWS:
        flops = estimated_flops(config, T, M, mask)
        products = attention_products(mask, T, M) / attention_products("full", T, M)
        print(f"{name:>13} {flops / T / 1e9:>11.2f} {flops / full_flops:>10.3f} "
              f"{products:>9.3f} {ms[name]:>9.2f} {ms[name] / ms['full']:>7.3f} "
              f"{cpu_ms[name]:>12.2f} {cpu_ms[name] / cpu_ms['full']:>8.3f}")
    difference = (outputs["paper-merged"].float() - outputs["paper-dense"].float()).abs().max()
    print(f"paper-merged vs paper-dense: max abs difference {difference.item():.2e}")
    ratio = estimated_flops(config, T, M, "paper") / full_flops
    products = attention_products("paper", T, M) / attention_products("full", T, M)
    for label, r in (("model FLOPs", ratio), ("attention products only", products)):
        for clock, t in (("wall", ms), ("cpu", cpu_ms)):
            bound = t["full"] * r * 1.1
            verdict = "holds" if t["paper-merged"] <= bound else "FAILS"
            print(f"goal ({label}, {clock}): paper {t['paper-merged']:.2f} ms/frame <= full "
                  f"{t['full']:.2f} x {r:.3f} x 1.1 = {bound:.2f}: {verdict}")


if __name__ == "__main__":
    main()
