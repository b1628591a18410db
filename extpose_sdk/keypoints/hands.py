"""Where a person's hands are, from the person's 2D body keypoints: a box and the hand's own
keypoints for the hand model, or the reason there is none.

    from extpose_sdk.keypoints.hands import hand_evidence
    left = hand_evidence(points, "coco_wholebody133", "left", (480, 640))
    left.box, left.keypoints, left.source, left.missing

A hand is found, in this order:

1. from its own keypoints when the layout has them (COCO-WholeBody-133: 21 per hand, converted
   to ``openpose_hand21``): at least ``min_points`` of them with confidence >= ``threshold``;
   the box is tight around those (the hand pipeline enlarges it, HaMeR's 2.0);
2. else from the wrist and the elbow (any body layout) when both are confident: a square box of
   side ``0.8 |wrist - elbow|`` centred ``0.4 (wrist - elbow)`` beyond the wrist, where a hand of
   ordinary proportions (about 0.75 of the forearm's length) lies; no hand keypoints then (the
   skeleton modality is absent for that hand).

Otherwise the hand is missing, with the reason: ``occluded`` when the detector reported its
points (the hand's or the wrist) with a low confidence, ``no keypoints`` when it reported none of
them (confidence 0, or a layout without the hand and the wrist). A box found with less than half of it inside the image is missing
too: ``out of the image``.
"""

from __future__ import annotations

import attrs
import numpy as np

from extpose_sdk.keypoints.layouts import convert, get_layout

OCCLUDED = "occluded"
OUT_OF_IMAGE = "out of the image"
NO_KEYPOINTS = "no keypoints"
#: Why a hand can be missing, as results record it.
MISSING_REASONS = (OCCLUDED, OUT_OF_IMAGE, NO_KEYPOINTS)
#: The layout the hand model reads.
HAND_LAYOUT = "openpose_hand21"
#: Where a hand lies from the wrist, along the forearm, and its size, as fractions of the
#: forearm's length in the image.
HAND_OFFSET, HAND_SIZE = 0.4, 0.8


@attrs.frozen
class HandEvidence:
    """One hand of one person in one frame.

    Attributes:
        side: ``left`` or ``right`` (the person's).
        box: (4,) x1, y1, x2, y2 full-image pixels, or None when the hand is missing.
        keypoints: (21, 3) ``openpose_hand21`` pixels and confidence, or None (no hand keypoints:
            the box came from the wrist and elbow, or the hand is missing).
        source: ``hand keypoints``, ``wrist and elbow``, or ``""`` when missing.
        missing: ``""``, or why the hand is missing (one of ``MISSING_REASONS``).
    """

    side: str
    box: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    source: str = ""
    missing: str = ""


def hand_evidence(points: np.ndarray, layout: str, side: str, shape: tuple[int, int], *,
                  threshold: float = 0.3, min_points: int = 4) -> HandEvidence:
    """The ``side`` (``left`` / ``right``) hand of one person whose keypoints ``points`` (K, 3)
    are in ``layout``, in an image of ``shape`` (H, W); see the module docstring."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    points = np.asarray(points, dtype=np.float32)
    names = get_layout(layout).names
    seen = []  # confidences of the points that locate this hand
    if f"{side}_hand_wrist" in names:
        hand = convert(points, layout, HAND_LAYOUT, side=side)
        seen.append(hand[:, 2])
        confident = hand[:, 2] >= threshold
        if confident.sum() >= min_points:
            box = _box(hand[confident, :2].min(0), hand[confident, :2].max(0))
            return _inside(HandEvidence(side, box, hand, "hand keypoints"), shape)
    if f"{side}_wrist" in names and f"{side}_elbow" in names:
        wrist = points[names.index(f"{side}_wrist")]
        elbow = points[names.index(f"{side}_elbow")]
        seen.append(wrist[2:])  # the wrist locates the hand; the elbow only orients it
        forearm = wrist[:2] - elbow[:2]
        length = float(np.hypot(*forearm))
        if min(wrist[2], elbow[2]) >= threshold and length > 0:
            centre = wrist[:2] + HAND_OFFSET * forearm
            half = HAND_SIZE * length / 2
            return _inside(HandEvidence(side, _box(centre - half, centre + half),
                                        None, "wrist and elbow"), shape)
    reported = any((confidence > 0).any() for confidence in seen)
    return HandEvidence(side, missing=OCCLUDED if reported else NO_KEYPOINTS)


def _box(low: np.ndarray, high: np.ndarray, least: float = 4.0) -> np.ndarray:
    """The box ``low``..``high`` (x, y), at least ``least`` pixels on each side."""
    centre, half = (low + high) / 2, np.maximum((high - low) / 2, least / 2)
    return np.concatenate([centre - half, centre + half]).astype(np.float64)


def _inside(found: HandEvidence, shape: tuple[int, int]) -> HandEvidence:
    """``found``, or the hand missing as out of the image when less than half its box is in."""
    height, width = shape
    x1, y1, x2, y2 = found.box
    inside = max(0.0, min(x2, width) - max(x1, 0.0)) * max(0.0, min(y2, height) - max(y1, 0.0))
    if inside < 0.5 * (x2 - x1) * (y2 - y1):
        return HandEvidence(found.side, missing=OUT_OF_IMAGE)
    return found
