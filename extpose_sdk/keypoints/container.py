"""``Keypoints``: the 2D keypoints of the people (or hands) in one frame, and their checks.

Coordinates are full-image pixels (x right, y down, integer values at pixel centres, the
convention of OpenCV and of COCO); the third channel is a confidence in ``[0, inf)`` where 0 means
"missing" (COCO's visibility flag 0, an undetected OpenPose joint).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from extpose_sdk.keypoints.layouts import get_layout


def validate_keypoints(
    points: Any, layout: str | None = None, *, what: str = "keypoints"
) -> np.ndarray:
    """``points`` as a float32 ``(N, K, 3)`` array, or a ``ValueError`` saying what is wrong.

    Rejected: a shape other than ``(N, K, 3)`` (a ``(N, K, 2)`` array gets confidence 1), ``K``
    other than the layout's, a NaN or infinite confidence, a negative confidence, and a NaN or
    infinite coordinate on a joint with confidence > 0 (a missing joint's coordinates are ignored
    and set to 0). Points outside the image are allowed: renderers clip them at the crop border.
    """
    points = np.array(points, dtype=np.float32, copy=True)
    if points.ndim != 3 or points.shape[-1] not in (2, 3):
        raise ValueError(f"{what}: expected shape (N, K, 3) or (N, K, 2), got {points.shape}")
    if points.shape[-1] == 2:
        points = np.concatenate([points, np.ones_like(points[..., :1])], axis=-1)
    if layout is not None:
        expected = get_layout(layout).num_keypoints
        if points.shape[1] != expected:
            raise ValueError(
                f"{what}: layout {layout!r} has {expected} keypoints, got {points.shape[1]} "
                f"(shape {points.shape})"
            )
    confidence = points[..., 2]
    if not np.isfinite(confidence).all():
        n, k = np.argwhere(~np.isfinite(confidence))[0]
        raise ValueError(f"{what}: confidence is NaN or infinite (person {n}, joint {k})")
    if (confidence < 0).any():
        n, k = np.argwhere(confidence < 0)[0]
        raise ValueError(f"{what}: negative confidence {confidence[n, k]} (person {n}, joint {k})")
    bad = ~np.isfinite(points[..., :2]).all(axis=-1) & (confidence > 0)
    if bad.any():
        n, k = np.argwhere(bad)[0]
        raise ValueError(
            f"{what}: coordinates are NaN or infinite on a joint with confidence > 0 "
            f"(person {n}, joint {k}); give missing joints confidence 0"
        )
    points[confidence == 0, :2] = np.nan_to_num(
        points[confidence == 0, :2], nan=0.0, posinf=0.0, neginf=0.0
    )
    return points


def boxes_from_keypoints(
    points: np.ndarray, *, threshold: float = 0.0, padding: float = 0.0
) -> np.ndarray:
    """``(N, 4)`` boxes ``x1, y1, x2, y2`` around each person's joints with confidence > threshold.

    ``padding`` grows each side by that fraction of the box's width / height (0.1 = 10 %). A
    person with no such joint gets a NaN box.
    """
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"boxes_from_keypoints: expected shape (N, K, 3), got {points.shape}")
    valid = points[..., 2] > threshold
    x = np.where(valid, points[..., 0], np.nan)
    y = np.where(valid, points[..., 1], np.nan)
    boxes = np.full((points.shape[0], 4), np.nan, dtype=np.float32)
    has = valid.any(axis=1)
    if has.any():
        boxes[has] = np.stack(
            [
                np.nanmin(x[has], 1),
                np.nanmin(y[has], 1),
                np.nanmax(x[has], 1),
                np.nanmax(y[has], 1),
            ],
            axis=1,
        )
        size = boxes[has, 2:] - boxes[has, :2]
        boxes[has, :2] -= padding * size
        boxes[has, 2:] += padding * size
    return boxes


def _as_boxes(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float32)


@attrs.define
class Keypoints:
    """2D keypoints of the N people (or hands) in one frame.

    Attributes:
        points: ``(N, K, 3)`` float32: full-image pixel x, y and confidence (0 = missing).
        layout: keypoint layout name (``coco17``, ``coco_wholebody133``, ``openpose_body25``,
            ``openpose_hand21``); ``K`` must match it.
        boxes: ``(N, 4)`` float32 ``x1, y1, x2, y2`` (full-image pixels); from the keypoints when
            not given (NaN for a person with no confident joint).
        scores: ``(N,)`` float32 per-person scores (detector score; mean confidence if not given).
        frame: the frame this belongs to (index, COCO image id or file name), if known.
        is_right: ``(N,)`` bool, for hands: True for a right hand (None when unknown).
    """

    points: np.ndarray
    layout: str
    boxes: np.ndarray | None = attrs.field(default=None, converter=_as_boxes)
    scores: np.ndarray | None = attrs.field(default=None, converter=_as_boxes)
    frame: int | str | None = None
    is_right: np.ndarray | None = attrs.field(
        default=None, converter=lambda v: None if v is None else np.asarray(v, dtype=bool)
    )

    def __attrs_post_init__(self) -> None:
        self.points = validate_keypoints(self.points, self.layout)
        n = self.points.shape[0]
        if self.boxes is None:
            self.boxes = boxes_from_keypoints(self.points)
        if self.boxes.shape != (n, 4):
            raise ValueError(f"Keypoints.boxes: expected shape ({n}, 4), got {self.boxes.shape}")
        if self.scores is None:
            self.scores = self.points[..., 2].mean(axis=1) if n else np.zeros(0, np.float32)
        if self.scores.shape != (n,):
            raise ValueError(f"Keypoints.scores: expected shape ({n},), got {self.scores.shape}")
        if self.is_right is not None and self.is_right.shape != (n,):
            raise ValueError(
                f"Keypoints.is_right: expected shape ({n},), got {self.is_right.shape}"
            )

    def __len__(self) -> int:
        return self.points.shape[0]

    @property
    def xy(self) -> np.ndarray:
        """``(N, K, 2)`` pixel coordinates."""
        return self.points[..., :2]

    @property
    def confidence(self) -> np.ndarray:
        """``(N, K)`` confidences."""
        return self.points[..., 2]

    def to(self, layout: str, *, side: str | None = None) -> Keypoints:
        """The same people in another layout (see ``extpose_sdk.keypoints.layouts.convert``)."""
        from extpose_sdk.keypoints.layouts import convert

        is_right = self.is_right
        if side is not None:
            is_right = np.full(len(self), side == "right")
        return Keypoints(
            convert(self.points, self.layout, layout, side=side),
            layout,
            scores=self.scores,
            frame=self.frame,
            is_right=is_right,
        )
