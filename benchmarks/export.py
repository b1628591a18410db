"""``extpose export``: how long exporting takes, and one forward in ONNX Runtime vs PyTorch (CPU).

    python benchmarks/export.py                 # small ViT, T = 4, RGB + skeleton, batch 1
    python benchmarks/export.py --frames 1 --threads 2

Prints one row per format: the export time (tracing, conversion, saving; the check against
PyTorch apart), the file size, and the median time of one forward of the exported file next to
the PyTorch model's (``MeshRecoveryModel`` with ``present``, as the pipeline runs it), with the
largest output difference. Random weights: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

import extpose_sdk
from extpose_sdk.export import (
    difference,
    example_inputs,
    export_model,
    reference_outputs,
    run_exported,
)

#: The small size measured: the ViT of benchmarks/extension.py and a small head.
SIZE = dict(embed_dim=192, depth=4, num_heads=3, head_dim=256, head_depth=2, head_heads=4,
            head_dim_head=64, head_mlp_dim=512)


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="extpose-hamer")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = extpose_sdk.load_model(args.model, **SIZE)
    names = tuple(model.modalities)
    inputs = example_inputs(model, names, args.frames, batch=args.batch, seed=1)
    print(f"{args.model} {SIZE}, crops {tuple(inputs[0].shape)} x {len(names)} ({'+'.join(names)}), "
          f"mask {model.mask}, fp32, {args.threads} thread(s), torch {torch.__version__}")
    print(f"{'format':>12} {'export s':>9} {'MiB':>6} {'runtime ms':>11} {'PyTorch ms':>11} "
          f"{'ratio':>6} {'max diff':>9}")
    with torch.inference_mode():
        pytorch_ms = median_ms(lambda: reference_outputs(model, names, inputs), args.repeat)
    with tempfile.TemporaryDirectory() as folder:
        for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
            out = Path(folder) / f"model-{fmt}{suffix}"
            result = export_model(model, out, format=fmt, frames=args.frames, check=False)
            size = sum(p.stat().st_size for p in out.parent.glob(out.name + "*")) / 2**20
            if fmt == "onnx":
                import onnxruntime

                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = options.inter_op_num_threads = args.threads
                session = onnxruntime.InferenceSession(str(out), options,
                                                       providers=["CPUExecutionProvider"])
                feed = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
                runtime_ms = median_ms(partial(session.run, None, feed), args.repeat)
            else:
                loaded = torch.jit.load(str(out))
                with torch.inference_mode():
                    runtime_ms = median_ms(partial(loaded, *inputs), args.repeat)
            got = run_exported(out, inputs, fmt)
            want = reference_outputs(model, names, inputs)
            diff = difference(got, want)
            print(f"{fmt:>12} {result.seconds:9.1f} {size:6.1f} {runtime_ms:11.1f} "
                  f"{pytorch_ms:11.1f} {runtime_ms / pytorch_ms:6.2f} {diff:9.1e}")


if __name__ == "__main__":
    main()
