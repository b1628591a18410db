"""Synthetic data-set speed: samples per second on CPU (one process), frames and clips.

    python benchmarks/synthetic.py [--samples 40] [--kind body|hand] [--image-size 256]
    python benchmarks/synthetic.py --kind body --workers 2 --samples 200

Each sample is posed, rendered (painter's algorithm over a textured background, occluders),
augmented and cropped to 256x256, as a training ``DataLoader`` worker would do it. Also prints
the time split between the body model, the renderer and the crop/augmentation. With
``--workers N``, also the frames a second that N worker processes draw against one, as
``benchmarks/rgb_backbones.py`` draws a pretraining's frames (128 px crops).
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--kind", choices=["body", "hand", "both"], default="both")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--clip-length", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0,
                        help="also time rgb_backbones.rendered with this many worker processes")
    args = parser.parse_args()

    import torch

    from extpose_sdk.datasets.synthetic import SyntheticDataset

    torch.set_num_threads(1)  # as in a DataLoader worker
    kinds = ["body", "hand"] if args.kind == "both" else [args.kind]
    size = (args.image_size, args.image_size)
    with tempfile.TemporaryDirectory() as cache:
        for kind in kinds:
            frames = SyntheticDataset(cache, "train", kind=kind, num_sequences=64,
                                      sequence_length=32, image_size=size)
            frames[0]  # model file written and loaded
            n = args.samples
            start = time.perf_counter()
            for i in range(n):
                frames[i * 7 % len(frames)]
            per_frame = (time.perf_counter() - start) / n
            clips = SyntheticDataset(cache, "train", kind=kind, num_sequences=16,
                                     sequence_length=32, clip_length=args.clip_length,
                                     image_size=size)
            m = max(1, n // args.clip_length)
            start = time.perf_counter()
            for i in range(m):
                clips[i % len(clips)]
            per_clip = (time.perf_counter() - start) / m

            start = time.perf_counter()
            for i in range(n):
                frames.pose_frames(i % 64, [i % 32])
            pose = (time.perf_counter() - start) / n
            start = time.perf_counter()
            for i in range(n):
                frames.render(i % 64, [i % 32])
            render = (time.perf_counter() - start) / n - pose
            faces = len(frames.pose_frames(0, [0])["faces"])
            print(f"synthetic-{kind} ({faces} faces, image {size[0]}x{size[1]} -> crop 256): "
                  f"{1 / per_frame:6.1f} frames/s, "
                  f"{args.clip_length / per_clip:6.1f} frames/s in clips of {args.clip_length} "
                  f"({1 / per_clip:.1f} clips/s); per frame: body model {pose * 1e3:.1f} ms, "
                  f"render {render * 1e3:.1f} ms, crop+augment "
                  f"{(per_frame - pose - render) * 1e3:.1f} ms")

        if args.workers:
            workers_against_one(kind, args.samples, args.workers)


def workers_against_one(kind: str, frames: int, workers: int) -> None:
    """Frames a second of the pretraining's draw, in this process and in ``workers``."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import rgb_backbones

    rates = {}
    for count in (0, workers):
        start = time.perf_counter()
        rgb_backbones.rendered("train", frames, seed=11, augment=True, kind=kind, workers=count)
        rates[count] = frames / (time.perf_counter() - start)
    print(f"synthetic-{kind} pretraining frames (128 px, augmented): {rates[0]:.1f} frames/s in "
          f"one process, {rates[workers]:.1f} in {workers} workers "
          f"({rates[workers] / rates[0]:.2f}x)")


if __name__ == "__main__":
    main()
