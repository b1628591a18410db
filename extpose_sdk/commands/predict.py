"""``extpose predict INPUT --out DIR [--render]``: meshes for a video, an image or a folder.

Writes ``DIR/results.npz`` and ``DIR/results.json`` (per frame and person: SMPL / MANO
parameters, camera, joints and vertices with a body model, projected keypoints, the box and 2D
keypoints used) and, with ``--render``, ``DIR/overlay.mp4`` (or PNGs for a single image). When
reading fails midway the results so far are still written, and the error names the frame.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="3D body / hand meshes for a video, an image or a folder of images"
    )
    parser.add_argument("input", nargs="?", help="video file, image, or directory of images")
    parser.add_argument(
        "--sample",
        choices=("body", "hand"),
        nargs="?",
        const="hand",
        help="generate a synthetic sample clip, its 2D keypoints and a synthetic body-model file "
        "under DIR/sample, and predict on it with a tiny model (nothing is downloaded)",
    )
    parser.add_argument("--out", default="out", help="output directory (default: ./out)")
    parser.add_argument(
        "--render", action="store_true", help="also write the overlay video / images"
    )
    parser.add_argument("--wireframe", action="store_true", help="draw the mesh as a wireframe")
    parser.add_argument(
        "--model", default="extpose-hamer", help="registered recipe (extpose plugins)"
    )
    parser.add_argument("--checkpoint", help="weights for the recipe; without it, random weights")
    parser.add_argument("--body-model", help="SMPL / MANO model file (.pkl or .npz) for meshes")
    parser.add_argument("--keypoints", help="2D keypoints file (COCO / OpenPose JSON, .npy/.npz)")
    parser.add_argument("--frames", type=int, default=1, help="frames per window (default 1)")
    parser.add_argument("--overlap", type=int, help="frames shared by windows (default frames/2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="auto", choices=("auto", "decord", "opencv"))
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="recipe option (repeatable), e.g. --option embed_dim=32",
    )  # fmt: skip
    parser.set_defaults(func=run)


def _options(pairs: list[str]) -> dict:
    import ast

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"extpose predict: --option needs KEY=VALUE, got {pair!r}")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


#: The tiny model size ``--sample`` uses (random weights: fast on a CPU, not meaningful).
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
    """A synthetic clip, its detected 2D keypoints and a synthetic body-model file in ``folder``."""
    from extpose_sdk.data.synthetic import synthetic_model_path, write_sample_video

    folder.mkdir(parents=True, exist_ok=True)
    model_path = synthetic_model_path(kind, folder)
    video, keypoints = folder / f"{kind}.mp4", folder / f"{kind}_keypoints.npz"
    write_sample_video(video, frames=frames, kind=kind, keypoints_path=keypoints,
                       model_path=model_path)  # fmt: skip
    return video, keypoints, model_path


def run(args) -> int:
    if args.sample:
        video, keypoints, model_path = make_sample(args.sample, Path(args.out) / "sample")
        print(f"sample: {video} with keypoints {keypoints.name} and body model {model_path.name}")
        args.input, args.keypoints = str(video), args.keypoints or str(keypoints)
        args.body_model = args.body_model or str(model_path)
        if args.model == "extpose-hamer":
            args.model = SAMPLE_MODEL[args.sample]
        if args.checkpoint is None:
            args.option = [f"{k}={v}" for k, v in SAMPLE_OPTIONS.items()] + args.option
        args.frames = max(args.frames, 8)
    if args.input is None:
        print(
            "extpose predict: give INPUT (a video, an image or a folder), or --sample",
            file=sys.stderr,
        )
        return 2
    from extpose_sdk.data.video import fixed_mmap_threshold
    from extpose_sdk.pipeline import RANDOM_WEIGHTS_NOTE, Pipeline

    fixed_mmap_threshold()  # memory stays flat over long videos (see the function)
    pipeline = Pipeline.from_plugins(
        model=args.model,
        checkpoint=args.checkpoint,
        body_model=args.body_model,
        keypoints=args.keypoints,
        frames=args.frames,
        overlap=args.overlap,
        device=args.device,
        **_options(args.option),
    )
    if pipeline.random_weights:
        print(f"extpose predict: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)
    return predict(pipeline, args.input, Path(args.out), render=args.render,
                   wireframe=args.wireframe, backend=args.backend)  # fmt: skip


def predict(pipeline, source, out: Path, *, render: bool = False, wireframe: bool = False,
            backend: str = "auto") -> int:  # fmt: skip
    """Run ``pipeline`` over ``source``, writing results (and overlays) under ``out``."""
    from tqdm import tqdm

    from extpose_sdk.data.video import VideoReadError, open_video
    from extpose_sdk.overlays import OverlayWriter, draw_frame
    from extpose_sdk.pipeline import RANDOM_WEIGHTS_NOTE
    from extpose_sdk.results import Results

    out.mkdir(parents=True, exist_ok=True)
    try:
        reader = open_video(source, backend=backend)
    except (VideoReadError, FileNotFoundError) as error:
        failed = Results(model=pipeline.name, random_weights=pipeline.random_weights,
                         complete=False, error=str(error))  # fmt: skip
        failed.save(out / "results.json")
        print(f"extpose predict: error: {error}", file=sys.stderr)
        return 1
    single_image = len(reader) == 1
    faces = getattr(pipeline.body_model, "faces", None)
    if faces is not None and hasattr(faces, "cpu"):
        faces = faces.cpu().numpy()
    writer = None
    if render:
        writer = OverlayWriter(out / ("overlay" if single_image else "overlay.mp4"),
                               fps=reader.fps or 25.0)  # fmt: skip

    def on_frame(image, result):
        writer.write(draw_frame(image, result, faces=None if faces is None else faces.astype("int64"),
                                wireframe=wireframe))  # fmt: skip

    bar = tqdm(total=len(reader), unit="frame", desc="predict", file=sys.stderr)
    try:
        results = pipeline.video(reader, save_to=out / "results.npz",
                                 on_frame=on_frame if writer else None, progress=bar.update)  # fmt: skip
    except (VideoReadError, FileNotFoundError) as error:
        partial = getattr(error, "results", None)
        if partial is not None:
            partial.save(out / "results.json")
        print(f"extpose predict: error: {error}; results so far in {out}", file=sys.stderr)
        return 1
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    results.save(out / "results.json")
    people = len(results.people)
    print(f"{len(results)} frames, {people} person-frames -> {out}/results.npz, results.json"
          + (f", {writer.path.name}" if writer else ""))  # fmt: skip
    if results.random_weights:
        print(f"note: {RANDOM_WEIGHTS_NOTE}")
    return 0
