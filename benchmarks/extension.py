"""Cost of the ExtPose extension per frame: tokens, estimated FLOPs, time and peak memory.

For T in {1, 4, 16} x {rgb, rgb+skeleton} x masks, at a small ViT on CPU by default:

    python benchmarks/extension.py                      # small ViT, CPU
    python benchmarks/extension.py --size h --device cuda --dtype bf16 --frames 1024 \
        --attention sdpa xformers                       # ViT-H as the paper timed it (GPU)
    python benchmarks/extension.py --dropout 0.5 --packing groups segments --masks frame full
                                                        # training-like presence: packing ways

FLOPs are estimated analytically (2 x multiply-adds of the linear layers plus the attention
products over the tokens each query may see), so masks that cut attention show their saving.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from extpose_sdk.extend import ExtendedViT, ModalityDropout, parse_mask
from extpose_sdk.vit import ViT, ViTConfig

SIZES = {
    "small": dict(embed_dim=192, depth=4, num_heads=3),
    "h": dict(embed_dim=1280, depth=32, num_heads=16),
}


def estimated_flops(config: ViTConfig, T: int, M: int, mask: str) -> float:
    """FLOPs of one clip: linear layers per token plus attention over the allowed keys."""
    D, N = config.embed_dim, config.grid_size[0] * config.grid_size[1]
    tokens = T * M * N
    linear = 2 * tokens * (4 * D * D + 2 * D * int(D * config.mlp_ratio))  # qkv+proj, mlp
    allowed = parse_mask(mask).allowed(T, M, 1).sum().item() * N * N  # key-query pairs
    attention = 2 * 2 * allowed * D  # q.k and weights.v
    patch = 2 * tokens * D * 3 * config.patch_size**2
    return config.depth * (linear + attention) + patch


def measure(extended, inputs, device, repeats):
    """Seconds per call and peak memory; ``inputs`` is ``(clip dict, presence dict)``."""
    with torch.no_grad():
        extended(*inputs)  # warm-up (mask cache, kernels)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(repeats):
            extended(*inputs)
        if device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:  # the process's peak resident set so far (monotone over the rows)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return (time.perf_counter() - start) / repeats, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--frames", type=int, default=16, help="frames per batch (clips x T)")
    parser.add_argument("--T", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--masks", nargs="+", default=["frame", "paper", "full"])
    parser.add_argument("--attention", nargs="+", default=["sdpa"])
    parser.add_argument("--packing", nargs="+", default=["auto"], help="auto, groups, segments")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="drop each modality of a clip with this probability, as in training")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    config = ViTConfig(**SIZES[args.size])
    vit = ViT(config).to(device=device, dtype=dtype).eval()
    H, W = config.img_size
    print(f"ViT {args.size}: D={config.embed_dim} depth={config.depth} heads={config.num_heads}, "
          f"{args.frames} frames per batch, {device} {args.dtype}, threads={torch.get_num_threads()}")
    header = (f"{'attention':>9} {'packing':>8} {'T':>3} {'modalities':>12} {'mask':>6} "
              f"{'tokens/frame':>12} "
              f"{'GFLOP/frame':>11} {'ms/frame':>9} {'peak MiB':>9}")
    print("(peak: CUDA max allocated on a GPU; on CPU the process's peak resident memory so far)")
    if args.dropout:
        print(f"(each modality of a clip dropped with p={args.dropout}; tokens/frame and FLOPs are "
              "for everything present)")
    print(header)
    for backend in args.attention:
        for packing in args.packing:
            for T in args.T:
                clips = max(1, args.frames // T)
                for names in (("rgb",), ("rgb", "skeleton")):
                    inputs = {
                        n: torch.randn(clips, T, 3, H, W, device=device, dtype=dtype) for n in names
                    }
                    present = ModalityDropout(args.dropout, seed=0)(
                        {n: torch.ones(clips, T, dtype=torch.bool, device=device) for n in names}
                    )
                    for mask in args.masks:
                        if T == 1 and mask != args.masks[0]:
                            continue  # one frame: every mask is the same
                        spec = parse_mask(mask)
                        expressible = spec.unrestricted(spec.sequence_frames(T), len(names))
                        if packing == "segments" and not expressible:
                            continue  # segments cannot express this mask
                        extended = ExtendedViT(vit, mask=mask, attention=backend, packing=packing)
                        seconds, peak = measure(extended, (inputs, present), device, args.repeats)
                        frames = clips * T
                        tokens = len(names) * vit.num_tokens
                        gflop = estimated_flops(config, T, len(names), mask) / T / 1e9
                        print(f"{backend:>9} {packing:>8} {T:>3} {'+'.join(names):>12} {mask:>6} "
                              f"{tokens:>12} {gflop:>11.2f} {1000 * seconds / frames:>9.2f} "
                              f"{peak / 2**20:>9.1f}")


if __name__ == "__main__":
    main()
