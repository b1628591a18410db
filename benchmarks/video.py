"""Video prediction: frames per second and memory over a long generated video.

    python benchmarks/video.py [--frames 2000] [--window 8] [--backend auto]

Writes a synthetic video (a moving, colour-changing figure on noise; 160x120, MJPG), then runs
``Pipeline.video`` over it with a tiny random-weights model (ViTPose family, embed_dim 32, depth
2) so the figure measures the pipeline (reading, cropping, tracking, windows, the model call)
rather than a large network. Prints frames per second and the process's resident memory (now and
peak) at 500, 1000 and 2000 frames: with chunked reading these must not grow with length.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np

from extpose_sdk.data.video import fixed_mmap_threshold
from extpose_sdk.pipeline import Pipeline
from extpose_sdk.plugins import get_registries

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 4}
TINY_HEAD = {"dim": 32, "depth": 1, "heads": 2, "dim_head": 16, "mlp_dim": 64}


def write_clip(path: Path, frames: int, size=(120, 160), seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    h, w = size
    noise = rng.integers(0, 60, (8, h, w, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (w, h))
    for i in range(frames):
        frame = noise[i % 8].copy()
        x = 20 + int(40 * (1 + np.sin(i / 30)))
        cv2.circle(frame, (x + 20, 25), 10, (60, 180, 240), -1)
        cv2.rectangle(frame, (x + 10, 35), (x + 30, 80), ((3 * i) % 255, 120, 200), -1)
        writer.write(frame)
    writer.release()


def build_pipeline(window: int) -> tuple[Pipeline, str]:
    registries = get_registries()
    if "mano" in registries.head.names() and importlib.util.find_spec("extpose_sdk.model"):
        pipeline = Pipeline.from_plugins(
            model=None, backbone="vitpose", head="mano", modalities=("rgb",), frames=window,
            backbone_options=TINY, head_options=TINY_HEAD, detector=None,  # the whole frame
        )  # fmt: skip
        return pipeline, "vitpose (tiny) + mano head (tiny)"
    import torch

    class Readout(torch.nn.Module):  # until MeshRecoveryModel exists: the backbone and a linear map
        def __init__(self) -> None:
            super().__init__()
            self.vit = registries.backbone.build("vitpose", **TINY)
            self.linear = torch.nn.Linear(TINY["embed_dim"], 13)

        def forward(self, inputs, present=None):
            x = inputs["rgb"]
            b, t = x.shape[:2]
            tokens = self.vit(x.flatten(0, 1)[..., 32:-32])
            out = self.linear(tokens.mean(1)).reshape(b, t, 13)
            eye = torch.eye(3).expand(b, t, 1, 3, 3)

            class Output:
                global_orient, betas = eye, out[..., :10]
                pred_cam = torch.cat([1 + out[..., 10:11].abs(), out[..., 11:]], -1)

            return Output

    modality = {"rgb": registries.modality.build("rgb")}
    return Pipeline(Readout(), modality, subject="body", frames=window, random_weights=True), (
        "vitpose (tiny) + linear readout (no MeshRecoveryModel yet)"
    )


def rss_mb() -> float:
    """Resident memory now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--backend", default="auto")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace Python allocations (slower)"
    )
    parser.add_argument(
        "--glibc-default",
        action="store_true",
        help="keep glibc's growing mmap threshold (frame-sized buffers then land on the heap, "
        "which fragments and grows; by default they are mmapped and returned when freed)",
    )
    args = parser.parse_args()
    if not args.glibc_default:
        fixed_mmap_threshold()  # as extpose predict does
    if args.tracemalloc:
        tracemalloc.start()
    import torch

    torch.set_num_threads(1)
    pipeline, what = build_pipeline(args.window)
    marks = sorted({m for m in (500, 1000, 2000, args.frames) if m <= args.frames})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.avi"
        write_clip(path, args.frames)
        done = 0
        start = time.perf_counter()

        def progress(n: int) -> None:
            nonlocal done
            done += n
            if done in marks:
                seconds = time.perf_counter() - start
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                traced = ""
                if tracemalloc.is_tracing():
                    now, top = tracemalloc.get_traced_memory()
                    traced = f"  python now {now / 2**20:6.1f} MB, peak {top / 2**20:6.1f} MB"
                print(f"  {done:5d} frames  {done / seconds:6.1f} frames/s  "
                      f"rss {rss_mb():7.1f} MB  peak rss {peak:7.1f} MB{traced}", flush=True)  # fmt: skip

        print(f"model: {what}, random weights; window {args.window} frames; "
              f"{args.frames} frames 160x120; torch threads 1; "
              f"glibc mmap threshold {'default' if args.glibc_default else 'fixed at 128 KiB'}")  # fmt: skip
        results = pipeline.video(path, backend=args.backend, progress=progress)
        seconds = time.perf_counter() - start
    print(f"{len(results)} frames in {seconds:.1f} s: {len(results) / seconds:.1f} frames/s")


if __name__ == "__main__":
    main()
