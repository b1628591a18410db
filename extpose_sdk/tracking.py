"""Several people across frames: boxes matched by overlap (IoU), with stable ids.

    tracker = BoxTracker(iou_threshold=0.3, max_missed=5, matching="hungarian")
    for boxes in boxes_per_frame:          # (N, 4) x1, y1, x2, y2 full-image pixels
        ids = tracker.update(boxes)        # (N,) int track ids, stable while a person is seen

A box is matched to the track whose last box overlaps it most (IoU above ``iou_threshold``), with
each track and each box used at most once; unmatched boxes start new tracks (ids are never
reused); a track unseen for more than ``max_missed`` frames ends. ``matching="hungarian"``
maximises the total IoU (scipy), ``"greedy"`` takes the best pairs first.
"""

from __future__ import annotations

import attrs
import numpy as np

MATCHINGS = ("hungarian", "greedy")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU between boxes ``a (N, 4)`` and ``b (M, 4)`` given as x1, y1, x2, y2."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_boxes(
    iou: np.ndarray, threshold: float, matching: str = "hungarian"
) -> list[tuple[int, int]]:
    """Pairs ``(row, column)`` of ``iou`` with IoU >= ``threshold``, each row / column once."""
    if matching not in MATCHINGS:
        raise ValueError(f"unknown matching {matching!r}; available: {', '.join(MATCHINGS)}")
    if iou.size == 0:
        return []
    if matching == "hungarian":
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-iou)
        return [
            (r, c)
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
            if iou[r, c] >= threshold
        ]
    pairs = []
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        r, c = np.unravel_index(flat, iou.shape)
        if iou[r, c] < threshold:
            break
        if r not in used_rows and c not in used_cols:
            pairs.append((int(r), int(c)))
            used_rows.add(r)
            used_cols.add(c)
    return pairs


@attrs.define
class Track:
    id: int
    box: np.ndarray
    missed: int = 0


@attrs.define
class BoxTracker:
    """Assigns stable ids to boxes frame after frame (see the module docstring)."""

    iou_threshold: float = 0.3
    max_missed: int = 5
    matching: str = "hungarian"
    tracks: list[Track] = attrs.field(factory=list)
    next_id: int = 0

    def __attrs_post_init__(self) -> None:
        if self.matching not in MATCHINGS:
            raise ValueError(
                f"unknown matching {self.matching!r}; available: {', '.join(MATCHINGS)}"
            )

    def update(self, boxes: np.ndarray) -> np.ndarray:
        """The ``(N,)`` track ids of this frame's ``(N, 4)`` boxes."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids = np.full(len(boxes), -1, dtype=np.int64)
        previous = np.stack([t.box for t in self.tracks]) if self.tracks else np.zeros((0, 4))
        pairs = match_boxes(box_iou(previous, boxes), self.iou_threshold, self.matching)
        matched_tracks = set()
        for t, b in pairs:
            track = self.tracks[t]
            track.box, track.missed = boxes[b], 0
            ids[b] = track.id
            matched_tracks.add(t)
        for t, track in enumerate(self.tracks):
            if t not in matched_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for b in np.flatnonzero(ids < 0):
            self.tracks.append(Track(self.next_id, boxes[b]))
            ids[b] = self.next_id
            self.next_id += 1
        return ids
