"""``extpose convert``: official files into the forms the SDK reads without extra trust.

    extpose convert body-model SMPL_NEUTRAL.pkl SMPL_NEUTRAL.npz      # no chumpy needed
    extpose convert checkpoint epoch=35-step=1000000.ckpt hmr2.safetensors

Each conversion is a sub-command with ``add_parser(subparsers)`` below, so more can be added.
The target's folder is created when missing; a target that is the source is refused (it would
destroy the source).
"""

from __future__ import annotations

from pathlib import Path


def _check_target(source: str, target: str) -> None:
    """The target is not the source, and its folder exists (made when missing)."""
    if Path(target).exists() and Path(source).exists() and Path(target).samefile(source):
        raise ValueError(f"the target {target} is the source: converting onto it would destroy "
                         "it; give another target")  # fmt: skip
    try:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the folder of {target} ({error.strerror or error}); "
                         "give a target in a folder you can write to") from None  # fmt: skip


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert", help="convert official files (SMPL/MANO .pkl -> .npz, .ckpt -> .safetensors)"
    )
    conversions = parser.add_subparsers(dest="conversion", metavar="WHAT", required=True)
    for add in (_add_body_model, _add_checkpoint):
        add(conversions)


def _add_body_model(conversions) -> None:
    parser = conversions.add_parser(
        "body-model", help="a SMPL / MANO model .pkl (chumpy inside or not) -> .npz")
    parser.add_argument("source", help="the model file, e.g. SMPL_NEUTRAL.pkl or MANO_RIGHT.pkl")
    parser.add_argument("target", help="the .npz to write")
    parser.set_defaults(func=run_body_model)


def run_body_model(args) -> int:
    from extpose_sdk.body_models import convert_model_file

    _check_target(args.source, args.target)
    target, skipped = convert_model_file(args.source, args.target)  # errors: extpose: error: ...
    note = f" (left out, not arrays: {', '.join(skipped)})" if skipped else ""
    print(f"wrote {target}{note}")
    return 0


def _add_checkpoint(conversions) -> None:
    parser = conversions.add_parser(
        "checkpoint", help="an official HMR2.0 / HaMeR .ckpt -> .safetensors (+ .json)")
    parser.add_argument("source", help="the Lightning .ckpt")
    parser.add_argument("target", help="the .safetensors to write")
    parser.add_argument("--trust", "--trust-checkpoint", dest="trust", action="store_true",
                        help="unpickle objects the safe reader refuses (only for files you trust)")
    parser.set_defaults(func=run_checkpoint)


def run_checkpoint(args) -> int:
    from extpose_sdk.checkpoints import convert_checkpoint, official_extras

    _check_target(args.source, args.target)
    target = convert_checkpoint(args.source, args.target, extras=official_extras(),
                                trust=args.trust)
    print(f"wrote {target} and {target.with_suffix('.json')}")
    return 0
