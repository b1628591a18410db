"""Keypoints in numpy files: ``.npy`` holding one array, or ``.npz`` with named arrays.

Shapes: ``(T, N, K, 3)`` (frames of people), ``(T, K, 3)`` (one person per frame) or ``(K, 3)``
(one frame, one person); a last axis of 2 means confidence 1. A ``.npz`` holds ``keypoints`` and
optionally ``layout`` (a string), ``boxes`` ``(T, N, 4)``, ``scores`` ``(T, N)`` and ``is_right``
``(T, N)`` (hands: True for a right hand; left hands are mirrored for HaMeR). Files are read with
``allow_pickle=False``: object arrays are refused.

    save_keypoints("clip.npz", frames)               # list of Keypoints with equal N
    frames = list(NumpyKeypointSource("clip.npz")())
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from extpose_sdk.keypoints.container import Keypoints
from extpose_sdk.keypoints.files import KeypointFileError
from extpose_sdk.keypoints.layouts import LAYOUTS, get_layout, layout_for_count

#: How a user of ``extpose predict`` passes ``layout=``.
LAYOUT_FLAG = "pass layout= (extpose predict: --keypoint-layout NAME)"


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise KeypointFileError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise KeypointFileError(f"{path}: not a plain numpy file ({error})") from None
    except (OSError, EOFError) as error:
        raise KeypointFileError(f"{path}: not a readable .npy / .npz file ({error})") from None
    if isinstance(loaded, np.ndarray):
        return {"keypoints": loaded}
    with loaded:
        if "keypoints" not in loaded.files:
            raise KeypointFileError(
                f"{path}: .npz without a 'keypoints' array (has {', '.join(loaded.files)})"
            )
        try:
            return {name: loaded[name] for name in loaded.files}
        except ValueError as error:
            raise KeypointFileError(f"{path}: not a plain numpy file ({error})") from None


class NumpyKeypointSource:
    """Keypoints per frame from a ``.npy`` / ``.npz`` file.

    Args:
        path: the file.
        layout: keypoint layout; by default the file's ``layout`` or the one with K keypoints.
    """

    def __init__(self, path: str | Path, *, layout: str | None = None) -> None:
        self.path = Path(path)
        self.layout = layout

    def __iter__(self) -> Iterator[Keypoints]:
        return self()

    def __call__(self) -> Iterator[Keypoints]:
        arrays = _load(self.path)
        points = arrays["keypoints"]
        if points.dtype.kind not in "fiu":
            raise KeypointFileError(
                f"{self.path}: keypoints must be numbers, got dtype {points.dtype}"
            )
        if points.ndim not in (2, 3, 4) or points.shape[-1] not in (2, 3):
            raise KeypointFileError(
                f"{self.path}: keypoints must have shape (T, N, K, 3), (T, K, 3) or (K, 3) "
                f"(last axis 2 or 3), got {points.shape}"
            )
        if points.ndim == 3:
            points = points[:, None]
        elif points.ndim == 2:
            points = points[None, None]
        layout = self.layout
        if layout is None and "layout" in arrays:
            layout = str(arrays["layout"])
        if layout is None:
            try:
                layout = layout_for_count(points.shape[2])
            except ValueError as error:
                raise KeypointFileError(f"{self.path}: {error}; {LAYOUT_FLAG}") from None
        try:
            get_layout(layout)
        except KeyError:
            where = "the file's 'layout' array" if self.layout is None else "layout="
            raise KeypointFileError(
                f"{self.path}: unknown keypoint layout {layout!r} (from {where}); known: "
                f"{', '.join(LAYOUTS)}: {LAYOUT_FLAG}"
            ) from None
        boxes = arrays.get("boxes")
        scores = arrays.get("scores")
        is_right = arrays.get("is_right")
        for t in range(points.shape[0]):
            try:
                yield Keypoints(
                    points[t],
                    layout,
                    boxes=None if boxes is None else boxes[t],
                    scores=None if scores is None else scores[t],
                    frame=t,
                    is_right=None if is_right is None else is_right[t],
                )
            except (ValueError, IndexError) as error:
                raise KeypointFileError(f"{self.path}: frame {t}: {error}") from None


def save_keypoints(path: str | Path, frames: list[Keypoints]) -> None:
    """Save frames of ``Keypoints`` (same layout and number of people) as ``.npz``, with
    ``is_right`` when the frames have it."""
    if not frames:
        raise ValueError("save_keypoints: no frames")
    layouts = {f.layout for f in frames}
    counts = {len(f) for f in frames}
    if len(layouts) > 1 or len(counts) > 1:
        raise ValueError(
            f"save_keypoints: frames need one layout and one number of people; got {layouts}, {counts}"
        )
    sides = {f.is_right is None for f in frames}
    if len(sides) > 1:
        raise ValueError("save_keypoints: some frames have is_right and some do not")
    extra = {} if sides == {True} else {"is_right": np.stack([f.is_right for f in frames])}
    np.savez(
        path,
        keypoints=np.stack([f.points for f in frames]),
        boxes=np.stack([f.boxes for f in frames]),
        scores=np.stack([f.scores for f in frames]),
        layout=np.array(layouts.pop()),
        **extra,
    )
