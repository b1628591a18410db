"""Meshes for one image, in Python: build a ``Pipeline``, call it, draw the result.

    python examples/predict_image.py hand.jpg --keypoints hand_keypoints.npz \
        --checkpoint hamer.ckpt --body-model MANO_RIGHT.pkl --out hand_overlay.png

Without ``--keypoints`` the whole image is one person (or hand). Without ``--checkpoint`` it uses
the shipped ``extpose-hamer-synthetic`` weights when installed (synthetic hands only), else random
weights (the mesh is then not meaningful). ``--option KEY=VALUE`` passes recipe options.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def predict_image(image: Path, out: Path, *, checkpoint: str | None = None,
                  model: str | None = None, body_model: str | None = None,
                  keypoints: str | None = None, **options):
    """The results for ``image``, with an overlay written to ``out`` (a .png)."""
    import cv2

    from extpose_sdk import Pipeline
    from extpose_sdk.assembly import keypoint_source_for
    from extpose_sdk.data.video import read_image
    from extpose_sdk.overlays import draw_frame

    pipeline = Pipeline.from_plugins(model=model, checkpoint=checkpoint, body_model=body_model,
                                     frames=1, **options)
    picture = read_image(image)  # (H, W, 3) RGB uint8
    detections = next(iter(keypoint_source_for(keypoints))) if keypoints else None
    results = pipeline(picture, keypoints=detections)
    faces = getattr(pipeline.body_model, "faces", None)
    drawn = draw_frame(picture, results.frames[0], camera=pipeline.camera,
                       faces=None if faces is None else faces.cpu().numpy())
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another --out")
    cv2.imwrite(str(out), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    return results


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--out", default="overlay.png")
    parser.add_argument("--checkpoint")
    parser.add_argument("--model")
    parser.add_argument("--body-model")
    parser.add_argument("--keypoints", help="a keypoint file (.npz / COCO / OpenPose) for it")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    options = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in args.option)}
    if args.checkpoint is None and args.model is None:
        import extpose_sdk

        if "extpose-hamer-synthetic" in extpose_sdk.get_registries().weights:
            args.checkpoint = "extpose-hamer-synthetic"
    results = predict_image(Path(args.image), Path(args.out), checkpoint=args.checkpoint,
                            model=args.model, body_model=args.body_model,
                            keypoints=args.keypoints, **options)
    for person in results.frames[0].people:
        print(f"box {person.box.round(1).tolist()}: camera translation "
              f"{person.cam_t.round(3).tolist()}, {len(person.params)} parameter sets")
    print(f"weights: {results.weights or 'random'}; overlay: {args.out}")
    return results


if __name__ == "__main__":
    main()
