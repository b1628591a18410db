"""Whether one frame's 2D keypoints fit a model and an image, before anything is computed."""

from __future__ import annotations

from typing import Any

import numpy as np

from extpose_sdk.assembly import FitError
from extpose_sdk.subjects import Subject


class KeypointFitError(FitError):
    """Keypoints that do not fit the model or the video (the message says what does not fit)."""


def check_fit(keypoints: Any, shape: tuple[int, int], subject: Subject, frame: str, *,
              model: str = "", where: str = "keypoints") -> None:
    """Raise ``KeypointFitError`` when ``keypoints`` (one frame's ``Keypoints``) do not fit a
    model of ``subject`` (called ``model``) or an image of ``shape`` (H, W): keypoints of another
    subject (hand keypoints for a body model), a confident point far outside the image (more
    than the image's size beyond its border), or every point within [0, 1] (normalised, not
    pixels). ``frame`` and ``where`` name the frame and the source in the message."""
    if keypoints is None:
        return
    from extpose_sdk.keypoints.layouts import SUBJECTS

    holds = SUBJECTS.get(keypoints.layout)
    if holds is not None and holds != subject.name:
        raise KeypointFitError(
            f"{where}: layout {keypoints.layout!r} holds {holds} keypoints but "
            f"{model or 'the model'!r} is a {subject} model; give "
            f"{subject.name} keypoints (layout {' or '.join(subject.layouts())})"
        )
    points = np.asarray(keypoints.points)
    confident = points[..., 2] > 0
    if not confident.any():
        return
    height, width = shape
    x, y = points[..., 0], points[..., 1]
    far = confident & ((x < -width) | (x >= 2 * width) | (y < -height) | (y >= 2 * height))
    if far.any():
        n, k = np.argwhere(far)[0]
        raise KeypointFitError(
            f"{where}: {frame}: person {n} joint {k} is at ({x[n, k]:.0f}, {y[n, k]:.0f}), "
            f"far outside the {width}x{height} image; the keypoints belong to another video "
            "or resolution"
        )
    inside_unit = (x[confident] >= 0) & (x[confident] <= 1) & (y[confident] >= 0) & (
        y[confident] <= 1
    )
    if confident.sum() >= 4 and inside_unit.all() and min(height, width) > 16:
        raise KeypointFitError(
            f"{where}: {frame}: every keypoint lies within [0, 1] in a {width}x{height} "
            "image: they look normalised; give full-image pixel coordinates"
        )
