"""``extpose eval``: score a registered model on a registered data set with a benchmark protocol.

    extpose eval --model hamer --checkpoint hamer.ckpt --dataset freihand --root FreiHAND \\
        --split evaluation --body-model MANO_RIGHT.pkl --json freihand.json
    extpose eval --model hmr2 --checkpoint hmr2.ckpt --dataset 3dpw --root 3DPW \\
        --body-model SMPL_NEUTRAL.pkl --gt-body-model male=SMPL_MALE.pkl \\
        --gt-body-model female=SMPL_FEMALE.pkl --json 3dpw.json

Without ``--joint-regressor-extra`` a 3DPW / H36M score uses approximated J19 joints; the table
and the JSON say so (``j19_approximated``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from extpose_sdk.commands import add_checkpoint_arguments


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a model on a data set (MPJPE, PA-MPJPE, PVE, accel, F-scores)"
    )
    parser.add_argument("--model", required=True, help="registered model recipe (hmr2, hamer...)")
    add_checkpoint_arguments(parser)
    parser.add_argument("--dataset", required=True, help="registered data set (3dpw, freihand...)")
    parser.add_argument("--root", help="the data set's folder (official layout); the synthetic "
                        "sets need none")
    parser.add_argument("--split", help="data-set split (default: the data set's own)")
    parser.add_argument("--protocol", help="metric protocol (default: the data set's name)")
    parser.add_argument("--clip-length", type=int, help="evaluate clips of T frames")
    parser.add_argument("--overlap", type=int, default=0, metavar="N",
                        help="with --clip-length T: the windows extpose predict runs a video in, "
                        "T frames overlapping by N, each frame scored once from the window where "
                        "it is most central (predict's default: T // 2); default 0: clips that "
                        "do not overlap")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1...")
    parser.add_argument("--body-model", help="SMPL / MANO model file for the predictions' joints "
                        "(needed when the model does not output joints); 'synthetic': the "
                        "synthetic sets' own, which the synthetic weights were trained with")
    parser.add_argument("--gt-body-model", action="append", default=[], metavar="[GENDER=]PATH",
                        help="body-model file(s) for ground truth given as parameters (3DPW: "
                             "male=...pkl female=...pkl); repeatable")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="model recipe option (repeatable), e.g. --option embed_dim=32")
    parser.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                        help="data-set option (repeatable), e.g. --dataset-option stride=8")
    parser.add_argument("--joint-regressor-extra", metavar="PATH",
                        help="HMR2.0's SMPL_to_J19.pkl: the 19 extra SMPL joints the 3DPW / H36M "
                             "protocols score (without it they are approximated)")
    parser.add_argument("--json", help="write per-sample results and the summary here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


GENDERS = ("male", "female", "neutral")


def _check_writable(path: Path) -> None:
    """``--json`` can be written: not a folder, in a folder that exists (made) and takes files."""
    import tempfile

    if path.is_dir():
        raise ValueError(f"--json {path} is a folder; give a file path such as {path / 'eval.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        raise ValueError(f"cannot write --json {path} ({error.strerror or error}); choose a "
                         "path you can write to") from None  # fmt: skip


def _body_model(path: str, subject, regressor: str | None = None):
    """``subject``'s SMPL / MANO model in ``path`` (its gender is the file's: SMPL_MALE.pkl...),
    or the synthetic sets' own (``synthetic``)."""
    try:
        from extpose_sdk.body_models import load_body_model
    except ImportError as error:  # pragma: no cover - body models are another part of the SDK
        raise SystemExit(f"extpose eval: body models are unavailable: {error}") from error
    if path == "synthetic":
        from extpose_sdk.datasets.synthetic import synthetic_model_path

        path = str(synthetic_model_path(subject))
    kind = subject.body_model
    if kind == "smpl" and regressor:
        return load_body_model(kind, path, joint_regressor_extra=regressor)
    return load_body_model(kind, path)


def run(args) -> int:
    import extpose_sdk
    from extpose_sdk.engine.distributed import distributed_context
    from extpose_sdk.metrics import PROTOCOLS, get_protocol

    protocol_name = args.protocol or args.dataset
    if protocol_name not in PROTOCOLS:
        print(f"extpose eval: no protocol for data set {args.dataset!r}; pass --protocol "
              f"({', '.join(PROTOCOLS)})", file=sys.stderr)
        return 2
    protocol = get_protocol(protocol_name)
    from extpose_sdk.commands.predict import _options, check_device

    check_device(args.device)
    for flag, value, least in (("--batch-size", args.batch_size, 1), ("--workers", args.workers, 0),
                               ("--clip-length", args.clip_length, 1)):  # fmt: skip
        if value is not None and value < least:
            raise ValueError(f"{flag} must be {least} or more, got {value}")
    if args.overlap and not args.clip_length:
        raise ValueError("--overlap needs --clip-length T (the window it overlaps)")
    if args.overlap and not 0 <= args.overlap < args.clip_length:
        raise ValueError(f"--overlap must be in [0, --clip-length={args.clip_length}), "
                         f"got {args.overlap}")
    if args.json:
        _check_writable(Path(args.json))  # before the evaluation, not after it
    model_options = _options(args.option)
    for key in sorted(set(model_options) & {"checkpoint", "trust_checkpoint"}):
        raise ValueError(f"--option {key}=...: give --{key.replace('_', '-')} instead")
    if args.trust_checkpoint:
        model_options["trust_checkpoint"] = True
    args.model_options = model_options
    options = _options(args.dataset_option, "--dataset-option")
    if args.root is not None:
        options["root"] = args.root
    if args.split:
        options["split"] = args.split
    if args.clip_length:
        options["clip_length"] = args.clip_length
    from extpose_sdk.plugins import ComponentBuildError

    try:
        dataset = extpose_sdk.get_registries().dataset.build(args.dataset, **options)
    except ComponentBuildError as error:
        if "root" not in error.missing:
            raise
        raise ValueError(f"--dataset {args.dataset} reads its files from a folder: give --root "
                         "(the data set's folder, official layout)") from None
    if args.overlap:
        from extpose_sdk.datasets.base import PipelineWindows, SequenceDataset

        if not isinstance(dataset, SequenceDataset):
            raise ValueError(f"--overlap: data set {args.dataset!r} is read as a stream, not by "
                             "sequence; evaluate it without --overlap")
        dataset = PipelineWindows(dataset, args.clip_length, args.overlap)
    with distributed_context(args.device) as dist:
        return _evaluate(args, dataset, protocol, dist)


def _evaluate(args, dataset, protocol, dist) -> int:
    import extpose_sdk
    from extpose_sdk.engine.evaluate import Evaluator

    model = extpose_sdk.load_model(args.model, checkpoint=args.checkpoint,
                                   **args.model_options).to(dist.device)
    gt_models = {}
    for item in args.gt_body_model:
        gender, sep, path = item.partition("=")
        if not sep or gender not in GENDERS:  # a bare path (which may hold '=') is neutral
            gender, path = "neutral", item
        gt_models[gender] = _body_model(path, protocol.subject, args.joint_regressor_extra)
    evaluator = Evaluator(
        protocol,
        body_model=_body_model(args.body_model, protocol.subject, args.joint_regressor_extra) if args.body_model else None,
        gt_body_model=gt_models.get("neutral") if set(gt_models) == {"neutral"} else gt_models or None,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=dist.device,
        progress=not args.no_progress,
    )
    result = evaluator.run(model, dataset, name=args.dataset)
    if dist.first:
        print(result.table())
        if args.json:
            print(f"wrote {result.write_json(args.json)}")
    return 0
