"""Reader and metric throughput on tiny fixtures (CPU): samples per second, PA-MPJPE per second.

    python benchmarks/datasets.py

Prints one line per measurement. The fixtures' images are 64x64, so image decoding is cheaper
than on the real data sets; the crop (warp to 256x256) and label work are the real code.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

import extpose_sdk
from extpose_sdk.datasets import fixtures
from extpose_sdk.metrics import PROTOCOLS


def rate(function, repeat: int) -> float:
    function()  # warm up
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    return repeat / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp())
    readers = {
        "3dpw": (fixtures.write_3dpw(root / "3dpw", frames=16, actors=1), {"split": "test"}),
        "freihand": (fixtures.write_freihand(root / "fh", evaluation=16), {"split": "evaluation"}),
        "ho3d": (fixtures.write_ho3d(root / "ho3d", sequences={"S": 16}), {"split": "train"}),
    }
    for name, (path, options) in readers.items():
        for images in (False, True):
            data = extpose_sdk.get_registries().dataset.build(name, root=path, images=images,
                                                             **options)
            n = len(data)
            per_second = rate(lambda data=data, n=n: [data[i] for i in range(n)], 3) * n
            print(f"{name:9s} images={images!s:5s} {per_second:8.0f} samples/s (1 thread)")
    gt = torch.randn(1024, 44, 3, dtype=torch.float64)
    pred = gt + 0.01 * torch.randn_like(gt)
    per_second = rate(lambda: PROTOCOLS["3dpw"].evaluate(pred, gt), 5) * 1024
    print(f"3dpw protocol (MPJPE + PA-MPJPE, 14 joints) {per_second:10.0f} samples/s")


if __name__ == "__main__":
    main()
