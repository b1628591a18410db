"""Skeleton rendering speed: crops rendered per second on CPU, per layout.

    python benchmarks/skeleton.py [--crops 1000] [--size 256]

People are random but plausible: keypoints spread over a box, most joints confident, each crop
with its own rotation / scale affine, as in training with augmentation.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from extpose_sdk.keypoints import get_layout
from extpose_sdk.modalities.skeleton import SkeletonRenderer


def batch(layout: str, crops: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    k = get_layout(layout).num_keypoints
    centre = rng.uniform(300, 700, (crops, 1, 2))
    xy = centre + rng.normal(0, 80, (crops, k, 2))
    confidence = np.where(
        rng.uniform(size=(crops, k, 1)) < 0.1, 0.1, rng.uniform(0.4, 1, (crops, k, 1))
    )
    keypoints = np.concatenate([xy, confidence], -1)
    transforms = np.empty((crops, 2, 3))
    for i in range(crops):
        m = cv2.getRotationMatrix2D(
            tuple(centre[i, 0]), rng.uniform(-30, 30), size / 300 * rng.uniform(0.8, 1.2)
        )
        m[:, 2] += size / 2 - centre[i, 0]
        transforms[i] = m
    return keypoints, transforms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{'layout':20s} {'crops':>6s} {'seconds':>8s} {'crops/s':>9s}   (best of {args.repeats}, {args.size}x{args.size}, 1 thread)"
    )
    cv2.setNumThreads(1)
    for layout in ["coco17", "openpose_body25", "openpose_hand21", "coco_wholebody133"]:
        keypoints, transforms = batch(layout, args.crops, args.size)
        renderer = SkeletonRenderer(layout, size=(args.size, args.size))
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            renderer.render(keypoints, transforms)
            best = min(best, time.perf_counter() - start)
        print(f"{layout:20s} {args.crops:6d} {best:8.3f} {args.crops / best:9.0f}")


if __name__ == "__main__":
    main()
