"""Export a model to ONNX, run it with ONNX Runtime, and compare its outputs with PyTorch's.

    python examples/export_onnx.py --out tiny.onnx            # a tiny random model: seconds on a CPU
    python examples/export_onnx.py --checkpoint hamer.ckpt --model extpose-hamer --frames 8 \
        --out hamer-T8.onnx                                     # the official size: minutes

Without ``--checkpoint`` the model has random weights and, unless ``--full-size``, a tiny size
(32 wide, one block), so that the whole round trip runs in seconds; with one, the size is the
checkpoint's. ``--option KEY=VALUE`` passes recipe options. Needs ``pip install
'extpose-sdk[export]'`` (onnx, onnxscript, onnxruntime). docs/export.md says what the file takes
and gives; ``extpose export`` does the same export from the command line.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

#: The recipe options of the default tiny model (random weights, seconds on a CPU).
TINY = dict(embed_dim=32, depth=1, num_heads=2, head_dim=32, head_depth=1, head_heads=2,
            head_dim_head=8, head_mlp_dim=16)


def export_and_compare(out: Path, *, model: str | None = "extpose-hamer",
                       checkpoint: str | None = None, frames: int = 2, batch: int = 2,
                       overwrite: bool = False, **options) -> dict[str, float]:
    """Export ``model`` to ``out`` (ONNX), run it with ONNX Runtime on random crops (one skeleton
    image absent) and return the largest difference from PyTorch per output (absolute; relative
    where PyTorch's value is above 1, as float32 keeps about 7 digits of a depth of 10^4)."""
    import numpy as np
    import onnxruntime
    import torch

    import extpose_sdk
    from extpose_sdk.checkpoints import checkpoint_config, resolve_weights
    from extpose_sdk.export import export_model

    weights = resolve_weights(checkpoint, model)
    config = checkpoint_config(weights.path)
    name = weights.model or config.get("model") or model
    torch.manual_seed(0)  # random weights when there is no checkpoint
    net = extpose_sdk.load_model(name, checkpoint=weights.path, **options).eval()

    # 1. Export: the graph (network up to the head's parameters) and a JSON of how to feed it.
    #    check=False: this example does the comparison itself, below.
    result = export_model(net, out, format="onnx", frames=frames, overwrite=overwrite,
                          checkpoint_config=config, weights=weights.label, model_name=name,
                          check=False)
    spec = result.spec
    print(f"wrote {result.path} and {result.spec_path.name} in {result.seconds:.1f} s")

    # 2. Inputs as the JSON describes them: one (B, T, C, S, S) crop tensor per modality, then
    #    `present` (B, T, M). Real crops come from extpose_sdk.data.crops (spec["preprocessing"]).
    generator = torch.Generator().manual_seed(1)
    feed = {}
    for entry in spec["inputs"]:
        shape = [batch if axis == "batch" else axis for axis in entry["shape"]]
        if entry["name"] == "present":
            present = torch.ones(shape, dtype=torch.bool)
            present[0, -1, -1] = False  # the last frame of clip 0 has no image of the last modality
            feed["present"] = present
        else:
            feed[entry["name"]] = torch.randn(shape, generator=generator)

    # 3. ONNX Runtime, with nothing of PyTorch or the SDK: the file and the JSON are enough.
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: feed[i.name].numpy() for i in session.get_inputs()})
    names = [o.name for o in session.get_outputs()]

    # 4. PyTorch: the same crops, with `present` per modality.
    modalities = list(spec["preprocessing"]["modalities"])
    with torch.no_grad():
        want = net({m: feed[m] for m in modalities},
                   present={m: feed["present"][..., i] for i, m in enumerate(modalities)})
    differences = {}
    for name_, value in zip(names, got, strict=True):
        reference = getattr(want, name_).numpy()
        assert value.shape == reference.shape, (name_, value.shape, reference.shape)
        error = np.abs(value - reference) / np.maximum(np.abs(reference), 1.0)
        differences[name_] = float(error.max())
        print(f"{name_:14s} {str(tuple(value.shape)):22s} largest difference "
              f"{differences[name_]:.2g}")
    if weights.path is None:
        print("note: random weights (no --checkpoint): the outputs are not meaningful")
    return differences


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="model.onnx", help="the .onnx file (and its .json)")
    parser.add_argument("--model", help="registered recipe (default: the checkpoint's, else "
                        "extpose-hamer)")
    parser.add_argument("--checkpoint", help="a weights file or registered weights by name")
    parser.add_argument("--frames", type=int, default=2, help="frames per clip (default 2)")
    parser.add_argument("--batch", type=int, default=2, help="clips in the comparison batch")
    parser.add_argument("--full-size", action="store_true",
                        help="without --checkpoint: the recipe's own size, not the tiny one")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    options = {} if args.checkpoint or args.full_size else dict(TINY)
    options.update({k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in args.option)})
    model = args.model or (None if args.checkpoint else "extpose-hamer")
    differences = export_and_compare(Path(args.out), model=model, checkpoint=args.checkpoint,
                                     frames=args.frames, batch=args.batch,
                                     overwrite=args.overwrite, **options)
    worst = max(differences.values())
    print(f"largest difference over all outputs: {worst:.2g}")
    if not worst <= 1e-4:
        raise SystemExit(f"ONNX Runtime and PyTorch differ by {worst:.2g} (more than 1e-4)")
    return differences


if __name__ == "__main__":
    main()
