"""``extpose export MODEL --checkpoint CKPT --format onnx|torchscript --frames T --out FILE``.

Writes ``FILE`` (and, for ONNX models over 2 GB, ``FILE.data``) and ``FILE`` with suffix
``.json``: the inputs (names, shapes with the dynamic batch axis, dtypes), the outputs, and the
preprocessing a user needs to feed it (crop size, normalisation, crop rescale, the skeleton
image's layout and colours, the mask, frames, modalities). The body model is not exported (it
needs the user's licensed file). See docs/export.md.
"""

from __future__ import annotations

from extpose_sdk.commands import add_checkpoint_arguments


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX or TorchScript (+ a JSON of inputs, outputs and "
        "preprocessing)",
    )  # fmt: skip
    parser.add_argument(
        "model", nargs="?", help="registered recipe (extpose plugins; default: the one the "
        "--checkpoint weights name)",
    )  # fmt: skip
    add_checkpoint_arguments(parser)
    parser.add_argument("--format", default="onnx", help="onnx (default) or torchscript")
    parser.add_argument(
        "--frames", type=int, help="frames per clip, fixed in the exported model (default: the "
        "frames the checkpoint was trained with, else 1)",
    )  # fmt: skip
    parser.add_argument(
        "--modalities", help="comma-separated inputs, e.g. rgb,skeleton (default: the model's)"
    )
    parser.add_argument("--out", required=True, help="the file to write (e.g. model.onnx)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace FILE and its JSON (default: refuse)"
    )
    parser.add_argument(
        "--no-check", dest="check", action="store_false",
        help="skip running the exported file against PyTorch",
    )  # fmt: skip
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="recipe option (repeatable), e.g. --option embed_dim=32",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    import extpose_sdk
    from extpose_sdk.checkpoints import checkpoint_config, resolve_weights
    from extpose_sdk.commands.predict import _options
    from extpose_sdk.export import ExportError, _check_request, export_model

    _check_request(args.format, args.out, args.overwrite)  # before building anything
    options = _options(args.option)
    for key in sorted(set(options) & {"checkpoint", "frames", "modalities", "trust_checkpoint"}):
        raise ValueError(f"--option {key}=...: give --{key.replace('_', '-')} instead")
    if args.trust_checkpoint:
        options["trust_checkpoint"] = True
    weights = resolve_weights(args.checkpoint, args.model)
    config = checkpoint_config(weights.path)
    model_name = weights.model or config.get("model")  # registered weights or the file's JSON
    if model_name is None:
        raise ExportError("give MODEL (a recipe: extpose plugins lists them), or --checkpoint "
                          "with weights that name their recipe (registered weights, or an "
                          "ExtPose .safetensors with its JSON)")
    frames = args.frames if args.frames is not None else int(config.get("frames") or 1)
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else None
    with torch.random.fork_rng(devices=[]):  # random weights (no checkpoint) from seed 0
        torch.manual_seed(0)
        model = extpose_sdk.load_model(model_name, checkpoint=weights.path, **options)
    result = export_model(model, args.out, format=args.format, frames=frames,
                          modalities=modalities, overwrite=args.overwrite,
                          checkpoint_config=config, weights=weights.label,
                          model_name=model_name, check=args.check)
    inputs = ", ".join(f"{i['name']} {tuple(i['shape'])}" for i in result.spec["inputs"])
    print(f"wrote {', '.join(result.spec['files'])} and {result.spec_path.name} "
          f"({args.format}, {result.seconds:.1f} s) in {result.path.parent}")
    print(f"inputs: {inputs}")
    check = result.spec.get("check", {})
    if check.get("checked"):
        print(f"checked with {check['runtime']} at batch sizes {check['batch_sizes']}: largest "
              f"difference from PyTorch {check['max_diff']:.2g}")
    elif "why" in check:
        print(f"not checked: {check['why']}")
    if weights.path is None:
        print("note: random weights (no --checkpoint): the exported model is not meaningful")
    print("the body model (SMPL / MANO) is not in the exported file; see the JSON's body_model")
    return 0
