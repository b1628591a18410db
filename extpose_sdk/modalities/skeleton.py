"""The skeleton modality: 2D keypoints drawn as an image aligned with the RGB crop.

    from extpose_sdk.modalities.skeleton import SkeletonRenderer
    renderer = SkeletonRenderer("coco17", size=(256, 256))
    images = renderer.render(keypoints, transforms)   # (N, K, 3) px, (N, 2, 3) -> (N, 256, 256, 3) uint8

``transforms`` are the same 2x3 affine matrices that cut the RGB crops out of the full image
(full-image pixels -> crop pixels, the ``cv2.warpAffine`` convention: integer coordinates are pixel
centres). A keypoint at full-image pixel ``(u, v)`` is drawn at ``M @ (u, v, 1)``, so it lands on
the crop pixel that shows image pixel ``(u, v)``, under any rotation, scale or flip of the affine.

Drawing: each limb is a line in its layout colour, ``limb_width`` pixels thick at a 256-pixel crop
(scaled with the crop's shorter side), then a filled dot of ``joint_radius`` at every joint, on a
black background. Joints with confidence below ``threshold`` (and every joint with confidence 0)
are left out together with their limbs; with ``low_confidence="fade"`` the colour of the others is
scaled by their confidence (a limb by the lower of its two). Limbs are clipped at the crop border in
floating point before OpenCV sees them, so points far outside the image are harmless.
"""

from __future__ import annotations

import cv2
import numpy as np

from extpose_sdk.keypoints.container import validate_keypoints
from extpose_sdk.keypoints.layouts import KeypointLayout, get_layout
from extpose_sdk.modalities import CropEvidence, Modality

_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel positions at 1/16 pixel
_ONE = 1 << _SHIFT
LOW_CONFIDENCE_MODES = ("hide", "fade")
#: Joints with a lower confidence are not drawn (``SkeletonRenderer(threshold=...)``).
DEFAULT_THRESHOLD = 0.3


def _check_transforms(transforms: np.ndarray, n: int) -> np.ndarray:
    transforms = np.asarray(transforms, dtype=np.float64)
    if transforms.shape == (2, 3):
        transforms = np.broadcast_to(transforms, (n, 2, 3))
    if transforms.shape != (n, 2, 3):
        raise ValueError(
            f"transforms: expected shape ({n}, 2, 3) or (2, 3), got {transforms.shape}"
        )
    if not np.isfinite(transforms).all():
        raise ValueError("transforms: contain NaN or infinite values")
    return transforms


def clip_segments(p: np.ndarray, q: np.ndarray, low: np.ndarray, high: np.ndarray):
    """Clip segments ``p -> q`` (``(..., 2)``) to the box ``low..high`` (Liang-Barsky).

    Returns the clipped end points and a mask of segments that keep any length inside the box.
    """
    d = q - p
    t0 = np.zeros(p.shape[:-1])
    t1 = np.ones(p.shape[:-1])
    inside = np.ones(p.shape[:-1], dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in range(2):
            for num, den in (
                (p[..., axis] - low[axis], -d[..., axis]),
                (high[axis] - p[..., axis], d[..., axis]),
            ):
                parallel = den == 0
                inside &= ~(parallel & (num < 0))
                t = num / den
                entering = den < 0
                t0 = np.where(~parallel & entering, np.maximum(t0, t), t0)
                t1 = np.where(~parallel & ~entering, np.minimum(t1, t), t1)
    inside &= t0 <= t1
    return p + t0[..., None] * d, p + t1[..., None] * d, inside


class SkeletonRenderer:
    """Draws keypoints of one layout into crop-aligned RGB skeleton images.

    Args:
        layout: keypoint layout name or ``KeypointLayout``.
        size: ``(H, W)`` of the crops.
        limb_width: line thickness in pixels at a 256-pixel crop (scaled with ``min(H, W)``).
        joint_radius: joint dot radius in pixels at a 256-pixel crop (0: no dots).
        threshold: joints with a lower confidence are not drawn (nor their limbs).
        low_confidence: ``"hide"`` draws the others at full colour; ``"fade"`` scales colour by
            confidence (clipped to 1).
        antialias: anti-aliased lines (``cv2.LINE_AA``) instead of 8-connected ones.
    """

    def __init__(
        self,
        layout: str | KeypointLayout,
        size: tuple[int, int] = (256, 256),
        *,
        limb_width: float = 4.0,
        joint_radius: float = 4.0,
        threshold: float = DEFAULT_THRESHOLD,
        low_confidence: str = "hide",
        antialias: bool = True,
    ) -> None:
        if low_confidence not in LOW_CONFIDENCE_MODES:
            raise ValueError(
                f"low_confidence must be one of {LOW_CONFIDENCE_MODES}, got {low_confidence!r}"
            )
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (H, W) with positive sides, got {size}")
        self.layout = get_layout(layout)
        self.size = (int(size[0]), int(size[1]))
        scale = min(self.size) / 256.0
        self.thickness = max(1, round(limb_width * scale))
        self.radius = max(0, round(joint_radius * scale)) if joint_radius > 0 else 0
        self.threshold = float(threshold)
        self.low_confidence = low_confidence
        self.line_type = cv2.LINE_AA if antialias else cv2.LINE_8
        limbs = np.array(self.layout.limbs, dtype=np.int64).reshape(-1, 2)
        self._limb_a, self._limb_b = limbs[:, 0], limbs[:, 1]
        self._limb_colours = np.array(self.layout.limb_colours, dtype=np.float64).reshape(-1, 3)
        self._joint_colours = np.array(self.layout.joint_colours, dtype=np.float64)

    def project(self, keypoints: np.ndarray, transforms: np.ndarray) -> np.ndarray:
        """``(N, K, 2)`` crop-pixel positions of full-image keypoints ``(N, K, 2|3)``."""
        xy = np.asarray(keypoints, dtype=np.float64)[..., :2]
        transforms = _check_transforms(transforms, xy.shape[0])
        return np.einsum("nij,nkj->nki", transforms[:, :, :2], xy) + transforms[:, None, :, 2]

    def render(self, keypoints: np.ndarray, transforms: np.ndarray) -> np.ndarray:
        """Skeleton images ``(N, H, W, 3)`` uint8 (RGB) for keypoints ``(N, K, 2|3)`` in full-image
        pixels and the crops' affine ``transforms`` ``(N, 2, 3)`` (or one ``(2, 3)`` for all)."""
        points = validate_keypoints(keypoints, self.layout.name)
        n = points.shape[0]
        crop_xy = self.project(points, transforms)
        confidence = points[..., 2]
        visible = (confidence > 0) & (confidence >= self.threshold)
        if self.low_confidence == "fade":
            strength = np.clip(confidence, 0.0, 1.0)
        else:
            strength = np.ones_like(confidence)

        h, w = self.size
        margin = self.thickness + 1.0
        low, high = np.array([-margin, -margin]), np.array([w - 1 + margin, h - 1 + margin])
        p, q, inside = clip_segments(crop_xy[:, self._limb_a], crop_xy[:, self._limb_b], low, high)
        draw_limb = inside & visible[:, self._limb_a] & visible[:, self._limb_b]
        limb_strength = np.minimum(strength[:, self._limb_a], strength[:, self._limb_b])
        p_fixed = np.round(p * _ONE).astype(np.int64)
        q_fixed = np.round(q * _ONE).astype(np.int64)

        reach = self.radius + 1.0
        draw_joint = (
            visible
            & (crop_xy[..., 0] > -reach) & (crop_xy[..., 0] < w - 1 + reach)
            & (crop_xy[..., 1] > -reach) & (crop_xy[..., 1] < h - 1 + reach)
        )  # fmt: skip
        centre_fixed = np.round(np.where(draw_joint[..., None], crop_xy, 0.0) * _ONE).astype(
            np.int64
        )

        images = np.zeros((n, h, w, 3), dtype=np.uint8)
        for i in range(n):
            image = images[i]
            for l in np.flatnonzero(draw_limb[i]):
                colour = tuple(float(c) for c in self._limb_colours[l] * limb_strength[i, l])
                cv2.line(image, tuple(p_fixed[i, l].tolist()), tuple(q_fixed[i, l].tolist()),
                         colour, self.thickness, self.line_type, _SHIFT)  # fmt: skip
            if self.radius:
                for k in np.flatnonzero(draw_joint[i]):
                    colour = tuple(float(c) for c in self._joint_colours[k] * strength[i, k])
                    cv2.circle(image, tuple(centre_fixed[i, k].tolist()), self.radius * _ONE,
                               colour, -1, self.line_type, _SHIFT)  # fmt: skip
        return images


class SkeletonModality(Modality):
    """The ``skeleton`` modality: ``CropEvidence.keypoints`` drawn with ``SkeletonRenderer``.

    Args:
        layout: force a keypoint layout; by default ``evidence.keypoint_layout`` is used.
        **renderer_options: passed to ``SkeletonRenderer`` (``limb_width``, ``threshold``...).
    """

    name = "skeleton"
    channels = 3

    def __init__(self, layout: str | None = None, **renderer_options) -> None:
        self.layout = layout
        self.renderer_options = renderer_options
        self._renderers: dict[tuple[str, tuple[int, int]], SkeletonRenderer] = {}

    def renderer(self, layout: str, size: tuple[int, int]) -> SkeletonRenderer:
        key = (layout, tuple(size))
        if key not in self._renderers:
            self._renderers[key] = SkeletonRenderer(layout, size, **self.renderer_options)
        return self._renderers[key]

    def _layout_of(self, evidence: CropEvidence) -> str:
        layout = self.layout or evidence.keypoint_layout
        if layout is None:
            raise ValueError(
                "the skeleton modality needs evidence.keypoint_layout (or SkeletonModality(layout=...))"
            )
        return layout

    def available(self, evidence: CropEvidence) -> bool:
        if evidence.keypoints is None:
            return False
        renderer = self.renderer(self._layout_of(evidence), evidence.size)
        keypoints = np.asarray(evidence.keypoints, dtype=np.float32)
        if keypoints.shape[-1] == 2:  # no confidence column: every joint counts as seen
            return keypoints.size > 0
        confidence = keypoints[..., 2]
        return bool(((confidence > 0) & (confidence >= renderer.threshold)).any())

    def render(self, evidence: CropEvidence) -> np.ndarray:
        if evidence.keypoints is None:
            raise ValueError("the skeleton modality needs evidence.keypoints, a (K, 3) array")
        keypoints = np.asarray(evidence.keypoints, dtype=np.float32)
        if keypoints.ndim != 2:
            raise ValueError(
                f"evidence.keypoints: expected shape (K, 3) or (K, 2), got {keypoints.shape}"
            )
        renderer = self.renderer(self._layout_of(evidence), evidence.size)
        return renderer.render(keypoints[None], np.asarray(evidence.transform)[None])[0]
