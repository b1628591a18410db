"""``extpose predict INPUT --out DIR [--render]``: meshes for a video, an image or a folder.

Writes ``DIR/results.npz`` and ``DIR/results.json`` (per frame and person: SMPL / MANO
parameters, camera, joints and vertices with a body model, projected keypoints, the box and 2D
keypoints used) and, with ``--render``, ``DIR/overlay.mp4`` (or PNGs for a single image).
``--part whole`` runs a body and a hand model as one (``extpose_sdk.whole_body``): per person
the body and both hands, the hands placed at the body's wrists (``--sample whole`` shows it).

``DIR`` is checked before anything is computed: it must be a folder (made if missing) that can
be written, without results of an earlier run unless ``--overwrite`` (which deletes them first).
While the clip runs, finished frames are appended to ``DIR/results.jsonl`` and flushed after
every window, so a kill keeps them; when reading fails midway, the keypoints do not fit, or on
Ctrl-C, every frame read so far is finished and written (``complete: false``), and the error
names the frame.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

from extpose_sdk.commands import add_checkpoint_arguments

#: What a run writes into ``--out`` (an earlier run's are not replaced without ``--overwrite``).
RESULT_FILES = ("results.npz", "results.json", "results.jsonl", "overlay.mp4", "overlay")


class OutputFolderError(ValueError):
    """``--out`` is a file, cannot be written, or holds an earlier run's results."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="3D body / hand meshes for a video, an image or a folder of images"
    )
    parser.add_argument("input", nargs="?", help="video file, image, or directory of images")
    parser.add_argument(
        "--sample",
        choices=("body", "hand", "whole"),
        nargs="?",
        const="hand",
        help="generate a synthetic sample clip (hand, the default, body, or whole: a body with "
        "hands and its COCO-WholeBody-133 keypoints), its 2D keypoints and synthetic body-model "
        "files under DIR/sample, and predict on it with the shipped synthetic weights "
        "(extpose-hamer-synthetic / extpose-hmr2-synthetic; a tiny random model where they are "
        "not installed); nothing is downloaded",
    )
    parser.add_argument(
        "--part", choices=("body", "hand", "whole"),
        help="what to reconstruct: body or hand (the default recipe of that part when --model "
        "is not given), or whole: the body and both hands of each person, a body model "
        "(--model, --checkpoint, --body-model: SMPL) and a hand model (--hand-model, "
        "--hand-checkpoint, --mano) run as one, hands placed at the body's wrists",
    )  # fmt: skip
    parser.add_argument("--out", default="out", help="output directory (default: ./out)")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace the results of an earlier run in --out (default: refuse)",
    )  # fmt: skip
    parser.add_argument(
        "--render", action="store_true", help="also write the overlay video / images"
    )
    parser.add_argument("--wireframe", action="store_true", help="draw the mesh as a wireframe")
    parser.add_argument(
        "--model", help="registered recipe (extpose plugins; default: the one the --checkpoint "
        "was trained with, as its weights name or its .json records it, else extpose-hamer)",
    )  # fmt: skip
    add_checkpoint_arguments(parser)
    parser.add_argument("--body-model", help="SMPL / MANO model file (.pkl or .npz) for meshes")
    whole = parser.add_argument_group("--part whole", "the hand model beside the body model")
    whole.add_argument("--hand-model", metavar="NAME",
                       help="hand recipe (default: the one --hand-checkpoint names, else "
                       "extpose-hamer)")  # fmt: skip
    whole.add_argument("--hand-checkpoint", metavar="FILE",
                       help="hand weights: a file or registered weights")
    whole.add_argument("--mano", metavar="FILE", help="MANO_RIGHT model file for hand meshes")
    parser.add_argument("--keypoints", help="2D keypoints file (COCO / OpenPose JSON, .npy/.npz)")
    parser.add_argument(
        "--keypoint-layout", metavar="NAME",
        help="layout of a .npy/.npz or COCO keypoint file when the file does not say "
        "(coco17, coco_wholebody133, openpose_body25, openpose_hand21)",
    )  # fmt: skip
    parser.add_argument(
        "--whole-frame", action="store_true",
        help="without --keypoints: run the whole frame as one person instead of detecting 2D "
        "keypoints with MediaPipe (the default detector, extpose-plugin-mediapipe)",
    )  # fmt: skip
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument(
        "--focal-length", type=float, metavar="F",
        help="the camera's focal length in pixels (principal point at the image centre); "
        "default: HMR2.0 / HaMeR's 5000 / 256 x max(W, H)",
    )  # fmt: skip
    camera.add_argument(
        "--intrinsics", metavar="FILE",
        help="the camera's intrinsics: JSON with fx, fy, cx, cy (pixels) or a 3 x 3 K",
    )  # fmt: skip
    parser.add_argument(
        "--frames", type=int, help="frames per window (default: the frames the checkpoint was "
        "trained with, else 1; --sample: at least 8)",
    )  # fmt: skip
    parser.add_argument("--overlap", type=int, help="frames shared by windows (default frames/2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--dtype", default="fp32", choices=("fp32", "bf16", "fp16", "auto"),
        help="number format of the model: fp32 (default: the official numbers), bf16 (faster "
        "where the CPU / GPU has it natively), fp16 (GPU), auto (bf16 where native)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads for the model (default: torch's)"
    )  # fmt: skip
    parser.add_argument("--backend", default="auto", choices=("auto", "decord", "opencv"))
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="recipe option (repeatable), e.g. --option embed_dim=32",
    )  # fmt: skip
    parser.set_defaults(func=run)


def _options(pairs: list[str], flag: str = "--option") -> dict:
    """``KEY=VALUE`` pairs as a dict; values are Python literals when they parse (32, 1e-3,
    True, (1, 2)), else strings."""
    import ast

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"{flag} needs KEY=VALUE with a name as KEY, got {pair!r} "
                             f"(e.g. {flag} embed_dim=32)")  # fmt: skip
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


def check_device(device: str) -> None:
    """A clear error for a device this machine does not have (before building anything)."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise ValueError(f"--device {device!r}: {error} (e.g. --device cpu, cuda, cuda:1)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU is available here; use --device cpu")


def check_output_folder(out: Path, *, overwrite: bool = False) -> None:
    """Before computing anything: ``out`` is (or is made) a folder that can be written, and
    holds no results of an earlier run (``overwrite=True`` deletes them instead)."""
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {out} is a file, not a folder; give a folder path "
                                "(it is created if missing)")  # fmt: skip
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise OutputFolderError(f"cannot write into --out {out} ({error.strerror or error}); "
                                "choose a folder you can write to") from None  # fmt: skip
    earlier = [name for name in RESULT_FILES if (out / name).exists()]
    if earlier and not overwrite:
        raise OutputFolderError(
            f"{out} already holds results of an earlier run ({', '.join(earlier)}); pass "
            "--overwrite to replace them, or choose another --out"
        )
    for name in earlier:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


#: The weights ``--sample`` uses when their plugin is installed.
SAMPLE_WEIGHTS = {"body": "extpose-hmr2-synthetic", "hand": "extpose-hamer-synthetic"}
#: The tiny model size ``--sample`` uses without them (random weights: fast, not meaningful).
SAMPLE_OPTIONS = {
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 4,
    "head_dim": 32,
    "head_depth": 1,
    "head_heads": 2,
    "head_dim_head": 16,
    "head_mlp_dim": 64,
}
SAMPLE_MODEL = {"body": "extpose-hmr2", "hand": "extpose-hamer"}


def make_sample(kind: str, folder: Path, frames: int = 24) -> tuple[Path, Path, Path]:
    """A synthetic clip, its detected 2D keypoints and a synthetic body-model file in ``folder``
    (``whole``: the SMPL-format file; the MANO-format one is written beside it)."""
    from extpose_sdk.datasets.synthetic import (
        synthetic_model_path,
        write_sample_video,
        write_whole_body_sample,
    )

    folder.mkdir(parents=True, exist_ok=True)
    if kind == "whole":
        model_path, hand_path = synthetic_model_path("body", folder), synthetic_model_path("hand", folder)
        video, keypoints = folder / "whole.mp4", folder / "whole_keypoints.npz"
        write_whole_body_sample(video, frames=frames, size=(384, 384), keypoints_path=keypoints,
                                model_path=model_path, hand_model_path=hand_path)
        return video, keypoints, model_path
    model_path = synthetic_model_path(kind, folder)
    video, keypoints = folder / f"{kind}.mp4", folder / f"{kind}_keypoints.npz"
    write_sample_video(video, frames=frames, kind=kind, keypoints_path=keypoints,
                       model_path=model_path)  # fmt: skip
    return video, keypoints, model_path


def run(args) -> int:
    if args.input is None and not args.sample:
        print(
            "extpose predict: give INPUT (a video, an image or a folder), or --sample",
            file=sys.stderr,
        )
        return 2
    frames = max(args.frames or 1, 8) if args.sample else args.frames  # --sample: windows of 8
    if frames is not None and frames < 1:
        raise ValueError(f"--frames must be 1 or more, got {args.frames}")
    if args.overlap is not None and frames is not None and not 0 <= args.overlap < frames:
        raise ValueError(f"--overlap must be in [0, {frames}) (below --frames), got {args.overlap}")
    options = _options(args.option)
    if args.sample and args.part not in (None, args.sample):
        raise ValueError(f"--sample {args.sample} with --part {args.part}: the sample is of one "
                         f"part; give --sample {args.part}")
    part = args.sample or args.part
    hand_flags = [f for f, v in (("--hand-model", args.hand_model),
                                 ("--hand-checkpoint", args.hand_checkpoint),
                                 ("--mano", args.mano)) if v is not None]  # fmt: skip
    if hand_flags and part != "whole":
        raise ValueError(f"{', '.join(hand_flags)}: only with --part whole (the hand model "
                         "beside the body model); for a hand model alone give --model, "
                         "--checkpoint and --body-model")
    for key in sorted(set(options) & {"model", "checkpoint", "body_model", "keypoints", "frames",
                                      "overlap", "device", "trust_checkpoint"}):  # fmt: skip
        raise ValueError(f"--option {key}=...: give --{key.replace('_', '-')} instead")
    if args.trust_checkpoint:
        options["trust_checkpoint"] = True
    check_device(args.device)
    from extpose_sdk.precision import resolve_dtype

    dtype = resolve_dtype(args.dtype, args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be 1 or more, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    check_output_folder(out, overwrite=args.overwrite)  # before anything is computed
    sample_keypoints = False
    part_options: dict[str, dict] = {"body": {}, "hand": {}}
    if args.sample == "whole":
        video, keypoints, model_path = make_sample(args.sample, Path(args.out) / "sample")
        from extpose_sdk.datasets.synthetic import synthetic_model_path

        hand_path = synthetic_model_path("hand", model_path.parent)
        print(f"sample: {video} with keypoints {keypoints.name} and body models "
              f"{model_path.name}, {hand_path.name}")
        sample_keypoints = args.keypoints is None
        args.input, args.keypoints = str(video), args.keypoints or str(keypoints)
        args.body_model, args.mano = args.body_model or str(model_path), args.mano or str(hand_path)
        from extpose_sdk.plugins import get_registries

        for name, checkpoint_flag, model_flag in (("body", "checkpoint", "model"),
                                                  ("hand", "hand_checkpoint", "hand_model")):
            if getattr(args, checkpoint_flag) is None and getattr(args, model_flag) is None and (
                    SAMPLE_WEIGHTS[name] in get_registries().weights):
                setattr(args, checkpoint_flag, SAMPLE_WEIGHTS[name])
            if getattr(args, checkpoint_flag) is None:
                part_options[name] = dict(SAMPLE_OPTIONS)
    elif args.sample:
        video, keypoints, model_path = make_sample(args.sample, Path(args.out) / "sample")
        print(f"sample: {video} with keypoints {keypoints.name} and body model {model_path.name}")
        sample_keypoints = args.keypoints is None  # the sample's own: their layout is known
        args.input, args.keypoints = str(video), args.keypoints or str(keypoints)
        args.body_model = args.body_model or str(model_path)
        if args.checkpoint is None and args.model is None:
            from extpose_sdk.plugins import get_registries

            if SAMPLE_WEIGHTS[args.sample] in get_registries().weights:
                args.checkpoint = SAMPLE_WEIGHTS[args.sample]
        if args.model is None and args.checkpoint is None:
            args.model = SAMPLE_MODEL[args.sample]
        if args.checkpoint is None:
            options = {**SAMPLE_OPTIONS, **options}
    from extpose_sdk.assembly import keypoint_source_for
    from extpose_sdk.data.video import fixed_mmap_threshold
    from extpose_sdk.pipeline import RANDOM_WEIGHTS_NOTE, Pipeline

    keypoints = args.keypoints
    if keypoints is not None and args.keypoint_layout is not None:
        if Path(keypoints).is_dir():
            raise ValueError("--keypoint-layout applies to .npy/.npz and COCO JSON files; an "
                             "OpenPose folder's layout is BODY_25 (drop --keypoint-layout)")  # fmt: skip
        keypoints = keypoint_source_for(keypoints, layout=args.keypoint_layout)
    if args.whole_frame and keypoints is not None:
        raise ValueError("--whole-frame runs a model without keypoints; drop it, or "
                         "--keypoints" + (" / --sample" if args.sample else ""))  # fmt: skip
    fixed_mmap_threshold()  # memory stays flat over long videos (see the function)
    from extpose_sdk.cameras import Camera

    camera = Camera.read(args.intrinsics) if args.intrinsics else args.focal_length
    if camera is not None and not isinstance(camera, Camera) and not camera > 0:
        raise ValueError(f"--focal-length must be a positive number of pixels, got {camera}")
    common = dict(camera=camera, keypoints=keypoints, frames=frames, overlap=args.overlap,
                  device=args.device, dtype=dtype,
                  **({"detector": None} if args.whole_frame else {}))
    if part == "whole":
        from extpose_sdk.whole_body import WHOLE_BODY

        pipeline = Pipeline.from_plugins(
            model=WHOLE_BODY, body=args.model, hand=args.hand_model,
            body_checkpoint=args.checkpoint, hand_checkpoint=args.hand_checkpoint,
            smpl=args.body_model, mano=args.mano, body_options=part_options["body"],
            hand_options=part_options["hand"], **common, **options,
        )  # fmt: skip
    else:
        if part is not None and args.model is None and args.checkpoint is None:
            args.model = SAMPLE_MODEL[part]
        pipeline = Pipeline.from_plugins(model=args.model, checkpoint=args.checkpoint,
                                         body_model=args.body_model, **common, **options)
        if part is not None and pipeline.subject.name != part:
            raise ValueError(f"--part {part}: {pipeline.name!r} is a {pipeline.subject} model; "
                             f"give a {part} recipe with --model")
    if keypoints is None:
        pipeline.keypoint_detector()  # no keypoints: MediaPipe, or say now what to install
    if pipeline.random_weights:
        print(f"extpose predict: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)
    with _terminate_like_ctrl_c():
        return predict(pipeline, args.input, out, render=args.render, wireframe=args.wireframe,
                       backend=args.backend, overwrite=args.overwrite,
                       keypoint_layout=pipeline.subject.detector_layout if sample_keypoints
                       else None)  # fmt: skip


def _faces(body_model):
    """The ``(F, 3)`` int64 faces of a body model, or None."""
    faces = getattr(body_model, "faces", None)
    if faces is not None and hasattr(faces, "cpu"):
        faces = faces.cpu().numpy()
    return None if faces is None else faces.astype("int64")


@contextlib.contextmanager
def _terminate_like_ctrl_c():
    """SIGTERM (``kill``, a job scheduler) stops like Ctrl-C: the frames done are written."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt("terminated (SIGTERM)")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def predict(pipeline, source, out: Path, *, render: bool = False, wireframe: bool = False,
            backend: str = "auto", overwrite: bool = False,
            keypoint_layout: str | None = None) -> int:  # fmt: skip
    """Run ``pipeline`` over ``source``, writing results (and overlays) under ``out``; with
    ``keypoint_layout`` (the given keypoints' layout) also say how far the meshes' 2D joints
    land from them (``extpose_sdk.results.keypoint_error``).

    Errors are raised (the ``extpose`` command prints them) after the frames done are written.
    """
    from tqdm import tqdm

    from extpose_sdk.data.video import IMAGE_SUFFIXES
    from extpose_sdk.overlays import OverlayWriter, draw_frame
    from extpose_sdk.pipeline import RANDOM_WEIGHTS_NOTE

    out = Path(out)
    check_output_folder(out, overwrite=overwrite)
    targets = [out / "results.npz", out / "results.json"]
    single_image = isinstance(source, (str, Path)) and Path(source).suffix.lower() in IMAGE_SUFFIXES
    faces = _faces(pipeline.body_model)
    hand_faces = _faces(getattr(pipeline, "hand_model", None))  # a whole-body pipeline's hands
    writer = None
    bar = tqdm(unit="frame", desc="predict", file=sys.stderr)

    def on_start(reader):  # the video is open (once, by the pipeline): its fps and length
        nonlocal writer
        bar.total = len(reader) or None
        if render:
            writer = OverlayWriter(out / ("overlay" if single_image else "overlay.mp4"),
                                   fps=reader.fps or 25.0)  # fmt: skip

    def on_frame(image, result):
        writer.write(draw_frame(image, result, faces=faces, hand_faces=hand_faces,
                                wireframe=wireframe, camera=pipeline.camera))  # fmt: skip

    try:
        # failures (the video cannot be opened, breaks midway, Ctrl-C) are saved by the
        # pipeline, the frames done with complete: false
        results = pipeline.video(source, save_to=targets, backend=backend, on_start=on_start,
                                 on_frame=on_frame if render else None, progress=bar.update)
    except BaseException as error:
        partial = getattr(error, "results", None)
        if partial is not None and len(partial):
            bar.close()
            print(f"extpose predict: stopped; the {len(partial)} frames finished are in {out}/ "
                  "(results.npz, results.json; complete: false)", file=sys.stderr)  # fmt: skip
        raise
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    people = len(results.people)
    print(f"{len(results)} frames, {people} person-frames -> {out}/results.npz, results.json"
          + (f", {writer.path.name}" if writer else ""))  # fmt: skip
    if results.non_finite:
        print(f"warning: {results.non_finite} person-frames hold NaN or infinite numbers "
              "(written as null): the weights or the input are broken", file=sys.stderr)  # fmt: skip
    if results.random_weights:
        print(f"note: {RANDOM_WEIGHTS_NOTE}")
    else:
        print(f"weights: {results.weights}")
    whole = [p for p in results.people if p.hands_missing is not None]
    if whole:
        from collections import Counter

        found = sum((p.left_hand is not None) + (p.right_hand is not None) for p in whole)
        reasons = Counter(r for p in whole for r in p.hands_missing.values())
        print(f"hands: {found} of {2 * len(whole)} found"
              + "".join(f"; {n} {reason}" for reason, n in sorted(reasons.items())))
    if keypoint_layout is not None:
        from extpose_sdk.results import keypoint_error

        error = keypoint_error(results, keypoint_layout, pipeline.subject)
        print(f"the meshes' 2D joints lie {error:.3f} of the box size from the given keypoints "
              "(median over frames)")
    return 0
