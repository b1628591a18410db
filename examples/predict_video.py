"""Meshes for a video, in Python: windows of frames, tracks, results written as they finish.

    python examples/predict_video.py clip.mp4 --keypoints clip_keypoints.npz \
        --checkpoint hamer.ckpt --body-model MANO_RIGHT.pkl --frames 16 --out out/

Writes ``out/results.npz``, ``out/results.json`` and ``out/overlay.mp4``; while it runs, finished
frames go to ``out/results.jsonl`` (kept if the process dies). An ``out`` holding results is not
overwritten. Without ``--checkpoint``: the shipped ``extpose-hamer-synthetic`` weights when
installed (synthetic hands only), else random weights.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def predict_video(video: Path, out: Path, *, checkpoint: str | None = None,
                  model: str | None = None, body_model: str | None = None,
                  keypoints: str | None = None, frames: int | None = None, **options):
    """The results for ``video``, saved under ``out`` with an overlay video."""
    from extpose_sdk import Pipeline
    from extpose_sdk.overlays import OverlayWriter, draw_frame

    if (out / "results.npz").exists():
        raise FileExistsError(f"{out} already holds results; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline.from_plugins(model=model, checkpoint=checkpoint, body_model=body_model,
                                     keypoints=keypoints, frames=frames, **options)
    faces = getattr(pipeline.body_model, "faces", None)
    faces = None if faces is None else faces.cpu().numpy()
    writer = None

    def opened(reader):  # the video is open: its frame rate for the overlay
        nonlocal writer
        writer = OverlayWriter(out / "overlay.mp4", fps=reader.fps or 25.0)

    def finished(frame, result):  # each frame, in order, once its window is done
        writer.write(draw_frame(frame, result, faces=faces, camera=pipeline.camera))

    try:
        return pipeline.video(video, save_to=[out / "results.npz", out / "results.json"],
                              on_start=opened, on_frame=finished, progress=True)
    finally:
        if writer is not None:
            writer.close()


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--out", default="out")
    parser.add_argument("--checkpoint")
    parser.add_argument("--model")
    parser.add_argument("--body-model")
    parser.add_argument("--keypoints")
    parser.add_argument("--frames", type=int, help="window length (default: the weights')")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    options = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in args.option)}
    if args.checkpoint is None and args.model is None:
        import extpose_sdk

        if "extpose-hamer-synthetic" in extpose_sdk.get_registries().weights:
            args.checkpoint = "extpose-hamer-synthetic"
    results = predict_video(Path(args.video), Path(args.out), checkpoint=args.checkpoint,
                            model=args.model, body_model=args.body_model,
                            keypoints=args.keypoints, frames=args.frames, **options)
    print(f"{len(results)} frames, {len(results.people)} person-frames, weights: "
          f"{results.weights or 'random'} -> {args.out}/")
    return results


if __name__ == "__main__":
    main()
