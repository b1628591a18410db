"""Training throughput of the engine: samples/s and peak memory of real optimizer steps.

    python benchmarks/training.py                 # CPU: the synthetic-hand-base model size
    python benchmarks/training.py --steps 30 --processes 1 2
    python benchmarks/training.py --device cuda --size vit-h --frames 16   # on a GPU machine

With ``--peak-tflops`` (the device's dense peak at the run's precision, e.g. 989 for an H100
SXM in bf16) and ``--dropout 0`` (every token computed), each row also gives the model-FLOPs
utilisation: 6 x (backbone + head parameters) per token plus the attention products
(12 x depth x width x sequence length per token), fwd + bwd, over the measured tokens/s.

Each configuration is a real `extpose train` run (data from a small uint8 cache, model, losses,
AdamW, checkpoint-free) for `--steps` steps; the first `--warmup` steps are not timed. The
figures are medians of the logged per-step samples/s, and the peak resident memory (CPU) or
peak allocated memory (GPU) of the first process. Two processes run under torchrun (gloo on
CPU), each with half the threads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = {
    "small": {"img_size": [128, 128], "embed_dim": 128, "depth": 6, "num_heads": 4,
              "head_dim": 128, "head_depth": 2, "head_heads": 4, "head_dim_head": 32,
              "head_mlp_dim": 256},
    "vit-h": {},  # the official ViTPose-H + head
}


def recipe_text(size: str, crop: int, frames: int, modalities: list[str], checkpointing: bool,
                batch: int, steps: int, device: str, cache: Path, amp: str,
                dropout: float = 0.5) -> str:
    from extpose_sdk.engine.recipe import recipe_from_dict

    options = {"num_sequences": 2, "sequence_length": 16, "crop_size": crop,
               "augment": {"flip_prob": 0.0}, "cache_clip_length": 8}
    recipe = recipe_from_dict({
        "name": "benchmark",
        "model": {"recipe": "extpose-hamer", "modalities": modalities, "frames": frames,
                  "options": SIZES[size], "checkpointing": checkpointing,
                  "mean_params_samples": 8},
        "data": {"crop_size": crop, "cache": str(cache / f"{crop}"),
                 "train": [{"name": "synthetic-hand", "options": options}]},
        "optim": {"lr": 1e-4, "batch_size": batch, "max_steps": steps, "amp": amp},
        "train": {"device": device, "log_every": 1, "save_every": 10**9, "plot": False,
                  "tensorboard": False,
                  "modality_dropout": dropout if len(modalities) > 1 else 0.0},
    })
    return recipe.to_toml()


def run(args, frames: int, modalities: list[str], checkpointing: bool, processes: int,
        folder: Path) -> dict:
    name = f"T{frames}-{'+'.join(modalities)}-ckpt{int(checkpointing)}-p{processes}"
    path = folder / f"{name}.toml"
    batch = args.batch if frames == 1 else max(processes, args.batch // frames)
    path.write_text(recipe_text(args.size, args.crop, frames, modalities, checkpointing, batch,
                                args.steps, args.device, folder / "cache", args.amp,
                                args.dropout))
    out = folder / name
    threads = max(1, (os.cpu_count() or 1) // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "extpose_sdk", "train", str(path), "--out", str(out),
               "--no-progress"]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", *command[1:]]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "samples_per_s" in r][args.warmup:]
    row_mfu = None
    if args.peak_tflops and args.dropout == 0:
        row_mfu = mfu(out, frames, len(modalities), statistics.median(
            r["samples_per_s"] for r in steps), args.peak_tflops)
    return {"config": name, "frames": frames, "modalities": "+".join(modalities), "mfu": row_mfu,
            "checkpointing": checkpointing, "processes": processes, "batch": batch,
            "samples_per_s": statistics.median(r["samples_per_s"] for r in steps),
            "frames_per_s": statistics.median(r["samples_per_s"] for r in steps) * frames,
            "peak_memory_mb": max(r["memory_mb"] for r in steps),
            # the share of the steps' time spent waiting for batches (the loader's bound)
            "data_share": sum(r["data_s"] for r in steps)
            / sum(batch / r["samples_per_s"] for r in steps)}


def mfu(run: Path, frames: int, modalities: int, samples_per_s: float, peak_tflops: float) -> float:
    """Model-FLOPs utilisation of a run: the useful FLOPs per second over the device's peak."""
    import extpose_sdk

    model = extpose_sdk.load_model("extpose-hamer", checkpoint=str(
        sorted((run / "checkpoints").glob("step-*"))[-1] / "model.safetensors"))
    vit = model.backbone
    per_image = int(vit.grid_size[0] * vit.grid_size[1])
    sequence = frames * modalities * per_image
    params = sum(p.numel() for p in model.parameters())
    width, depth = vit.embed_dim, len(vit.blocks)
    flops_per_token = 6 * params + 12 * depth * width * sequence
    return flops_per_token * sequence * samples_per_s / (peak_tflops * 1e12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--crop", type=int, help="crop side (default: 128 small, 256 vit-h)")
    parser.add_argument("--batch", type=int, default=32, help="frames per step at T = 1")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--dropout", type=float, default=0.5, help="modality dropout (0 for MFU)")
    parser.add_argument("--peak-tflops", type=float, help="device peak, for the MFU column")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    args.crop = args.crop or (256 if args.size == "vit-h" else 128)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        configs = [(t, m, c, 1) for t in args.frames for m in (["rgb"], ["rgb", "skeleton"])
                   for c in (False, True)]
        configs += [(args.frames[0], ["rgb", "skeleton"], False, p) for p in args.processes if p > 1]
        for frames, modalities, checkpointing, processes in configs:
            row = run(args, frames, modalities, checkpointing, processes, folder)
            rows.append(row)
            print(f"{row['config']:32s} batch {row['batch']:3d}  {row['samples_per_s']:7.1f} "
                  f"samples/s  {row['frames_per_s']:7.1f} frames/s  "
                  f"peak {row['peak_memory_mb']:7.0f} MB  data {100 * row['data_share']:3.0f}%"
                  + (f"  MFU {100 * row['mfu']:.1f}%" if row["mfu"] is not None else ""),
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
