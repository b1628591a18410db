"""The official HMR2.0 / HaMeR crop: box -> centre and scale -> 2x3 affine -> 256x256 crop.

The steps, as the official preprocessing does them:

1. ``center = (xy1 + xy2) / 2``, ``scale = wh / 200`` (HaMeR's demo rescales the box by 2.0).
2. The box is expanded to the 192x256 aspect of the backbone, and the crop is the square of side
   ``bbox_size = max(h, 4/3 w)`` around the centre.
3. An affine maps the square (optionally rotated, scaled, shifted and mirrored) onto the
   ``size`` x ``size`` crop; ``cv2.warpAffine`` with ``INTER_LINEAR`` and border 0 applies it.
   Before a large downsampling (``bbox_size / size / 2 > 1.1``) the image is blurred, as the
   demo does.
4. BGR -> RGB, then ImageNet normalisation in 0..255 units.

A horizontal flip (augmentation, and HaMeR's left hands, which the model sees as right hands)
mirrors the full image first (``x -> W - 1 - x``); here the mirror is folded into the affine, so
one ``transform`` maps full-image pixels to crop pixels in every case and keypoints follow the
image through ``transform_points``::

    from extpose_sdk.data.crops import make_crop, warp, normalize
    crop = make_crop([x1, y1, x2, y2], image_width=image.shape[1])
    patch = warp(image_bgr, crop)              # (256, 256, 3) uint8 BGR
    x = normalize(patch, bgr=True)             # (3, 256, 256) float32 RGB, ImageNet-normalised
    points_in_crop = transform_points(keypoints, crop.transform)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from extpose_sdk.data.sample import CROP_SIZE
from extpose_sdk.modalities import IMAGENET_MEAN, IMAGENET_STD

#: Width, height of the backbone's input (the crop's central 192 columns).
BBOX_SHAPE = (192, 256)
#: The box scale unit of the official code: ``scale = wh / 200``.
SCALE_UNIT = 200.0


@attrs.frozen
class Crop:
    """Where a crop lies in its full image.

    Attributes:
        transform: (2, 3) float64 affine, full-image px -> crop px (``cv2.warpAffine``).
        center: (2,) crop centre x, y in full-image px (before any flip).
        scale: (2,) box width, height / 200 (after ``rescale``, before the aspect expansion).
        bbox_size: side of the square full-image region the crop covers (before ``zoom``).
        size: side of the crop in px.
        flipped: whether the full image was mirrored before cropping.
        rotation: in-plane rotation in degrees (official sign).
        zoom: the augmentation scale factor applied to ``bbox_size``.
    """

    transform: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    bbox_size: float
    size: int = CROP_SIZE
    flipped: bool = False
    rotation: float = 0.0
    zoom: float = 1.0

    @property
    def inverse(self) -> np.ndarray:
        """(2, 3) affine crop px -> full-image px."""
        return invert_transform(self.transform)


def box_to_center_scale(box, rescale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``center = (xy1 + xy2) / 2`` and ``scale = rescale * wh / 200`` of ``box`` (x1, y1, x2, y2)."""
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.shape != (4,):
        raise ValueError(f"box: expected shape (4,) x1, y1, x2, y2, got {np.shape(box)}")
    center = (box[:2] + box[2:]) / 2.0
    scale = rescale * (box[2:] - box[:2]) / SCALE_UNIT
    return center, scale


def expand_to_aspect(size_wh, aspect_wh: tuple[float, float] = BBOX_SHAPE) -> np.ndarray:
    """Grow width or height of ``size_wh`` so that it has the aspect ``aspect_wh`` (never shrink)."""
    w, h = (float(v) for v in np.asarray(size_wh, dtype=np.float64).reshape(2))
    wt, ht = aspect_wh
    if h / max(w, 1e-12) < ht / wt:
        return np.array([w, max(w * ht / wt, h)])
    return np.array([max(h * wt / ht, w), h])


def bbox_size_of(scale) -> float:
    """Side of the square crop region: ``max`` of the aspect-expanded box = ``max(h, 4/3 w)``."""
    return float(expand_to_aspect(np.asarray(scale, dtype=np.float64) * SCALE_UNIT).max())


def _rotate(point: np.ndarray, degrees: float) -> np.ndarray:
    radians = math.pi * degrees / 180.0
    c, s = math.cos(radians), math.sin(radians)
    return np.array([point[0] * c - point[1] * s, point[0] * s + point[1] * c])


def square_transform(center, bbox_size: float, size: int = CROP_SIZE, *,
                     rotation: float = 0.0, zoom: float = 1.0) -> np.ndarray:
    """(2, 3) affine mapping the ``bbox_size * zoom`` square at ``center`` onto ``size`` px.

    As the official code: three points (centre, centre + half-down, centre + half-right) of the
    rotated source square go to the crop's centre, bottom-middle and right-middle.
    """
    import cv2

    center = np.asarray(center, dtype=np.float64).reshape(2)
    half = bbox_size * zoom * 0.5
    src = np.stack([center, center + _rotate(np.array([0.0, half]), rotation),
                    center + _rotate(np.array([half, 0.0]), rotation)])
    d = size * 0.5
    dst = np.array([[d, d], [d, 2 * d], [2 * d, d]])
    return cv2.getAffineTransform(src.astype(np.float32), dst.astype(np.float32)).astype(np.float64)


def flip_transform(image_width: int) -> np.ndarray:
    """(2, 3) affine of the horizontal mirror of an image ``image_width`` px wide: x -> W - 1 - x."""
    return np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) affine ``outer(inner(p))``."""
    outer3 = np.vstack([outer, [0.0, 0.0, 1.0]])
    inner3 = np.vstack([inner, [0.0, 0.0, 1.0]])
    return (outer3 @ inner3)[:2]


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """The inverse (2, 3) affine."""
    t3 = np.vstack([np.asarray(transform, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(t3)[:2]


def make_crop(box, *, image_width: int | None = None, rescale: float = 1.0,
              size: int = CROP_SIZE, rotation: float = 0.0, zoom: float = 1.0,
              translate=(0.0, 0.0), flip: bool = False) -> Crop:
    """The crop of ``box`` (x1, y1, x2, y2 full-image px), official preprocessing.

    ``rescale`` enlarges the box (a subject's ``crop_rescale``; HaMeR's demo: 2.0 for hands);
    ``rotation`` (degrees),
    ``zoom`` (crop region side multiplier) and ``translate`` (centre shift as a fraction of
    ``bbox_size``) are the augmentation's; ``flip`` mirrors the image first (needs
    ``image_width``), as for augmentation and HaMeR's left hands.
    """
    center, scale = box_to_center_scale(box, rescale)
    bbox_size = bbox_size_of(scale)
    shifted = center + np.asarray(translate, dtype=np.float64).reshape(2) * bbox_size
    if flip:
        if image_width is None:
            raise ValueError("make_crop(flip=True) needs image_width")
        mirror = flip_transform(image_width)
        flipped_center = np.array([image_width - 1.0 - shifted[0], shifted[1]])
        transform = compose(square_transform(flipped_center, bbox_size, size, rotation=rotation,
                                             zoom=zoom), mirror)
    else:
        transform = square_transform(shifted, bbox_size, size, rotation=rotation, zoom=zoom)
    return Crop(transform=transform, center=center, scale=scale, bbox_size=bbox_size, size=size,
                flipped=bool(flip), rotation=float(rotation), zoom=float(zoom))


def needs_blur(crop: Crop) -> float:
    """Gaussian sigma of the demo's anti-alias blur (0 when ``bbox_size / size / 2 <= 1.1``)."""
    factor = crop.bbox_size * crop.zoom / crop.size / 2.0
    return (factor - 1.0) / 2.0 if factor > 1.1 else 0.0


def warp(image: np.ndarray, crop: Crop, *, anti_alias: bool = True) -> np.ndarray:
    """The ``size`` x ``size`` crop of ``image`` (H, W, C), INTER_LINEAR, border 0, same dtype.

    ``anti_alias`` blurs first when the crop downsamples a lot, as the official demo does.
    """
    import cv2

    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image: expected shape (H, W) or (H, W, C), got {image.shape}")
    sigma = needs_blur(crop) if anti_alias else 0.0
    if sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return cv2.warpAffine(image, crop.transform, (crop.size, crop.size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def normalize(patch: np.ndarray, *, bgr: bool = False, color_scale=None) -> np.ndarray:
    """(3, H, W) float32 RGB, ImageNet-normalised, from an (H, W, 3) 0..255 ``patch``.

    ``bgr=True`` for OpenCV images (swapped to RGB first); ``color_scale`` (3,) multiplies the
    RGB channels and clips to 0..255 (the colour augmentation) before normalising.
    """
    patch = np.asarray(patch, dtype=np.float32)
    if patch.ndim != 3 or patch.shape[2] != 3:
        raise ValueError(f"patch: expected shape (H, W, 3), got {patch.shape}")
    if bgr:
        patch = patch[..., ::-1]
    if color_scale is not None:
        patch = np.clip(patch * np.asarray(color_scale, dtype=np.float32).reshape(1, 1, 3), 0, 255)
    patch = (patch - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(patch.transpose(2, 0, 1), dtype=np.float32)


def denormalize(x) -> np.ndarray:
    """(H, W, 3) uint8 RGB back from a (3, H, W) ImageNet-normalised crop (array or tensor)."""
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
    image = x.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def transform_points(points, transform: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to ``points`` (..., 2+) x, y; extra columns (confidence) are kept."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-1] < 2:
        raise ValueError(f"points: expected shape (..., 2) or (..., 3), got {points.shape}")
    transform = np.asarray(transform, dtype=np.float64)
    out = points.copy()
    out[..., :2] = points[..., :2] @ transform[:, :2].T + transform[:, 2]
    return out


def to_crop_normalized(points_crop_px, size: int = CROP_SIZE) -> np.ndarray:
    """Crop px -> crop-normalised ``px / size - 0.5`` (extra columns kept)."""
    out = np.asarray(points_crop_px, dtype=np.float64).copy()
    out[..., :2] = out[..., :2] / size - 0.5
    return out


def from_crop_normalized(points, size: int = CROP_SIZE) -> np.ndarray:
    """Crop-normalised -> crop px (extra columns kept)."""
    out = np.asarray(points, dtype=np.float64).copy()
    out[..., :2] = (out[..., :2] + 0.5) * size
    return out


def crop_entries(image, box, points=None, *, size: int = CROP_SIZE, rescale: float = 1.0,
                 flip: bool = False, image_width: int | None = None,
                 bgr: bool = True) -> dict[str, Any]:
    """The sample-layout entries of one crop: ``center``, ``scale``, ``crop_transform``,
    ``keypoints_2d`` (crop-normalised, when ``points`` (K, 2|3) full-image px are given) and
    ``rgb`` (when ``image`` is an (H, W, 3) array, BGR with ``bgr=True``, or a path, read as
    RGB by ``extpose_sdk.data.video.read_image``; None leaves it out).
    """
    import torch

    if isinstance(image, (str, Path)):
        from extpose_sdk.data.video import read_image

        image, bgr = read_image(image), False
    if image is not None and image_width is None:
        image_width = image.shape[1]
    crop = make_crop(box, image_width=image_width, rescale=rescale, size=size, flip=flip)
    out: dict[str, Any] = {
        "center": torch.as_tensor(crop.center, dtype=torch.float32),
        "scale": torch.as_tensor(crop.scale, dtype=torch.float32),
        "crop_transform": torch.as_tensor(crop.transform, dtype=torch.float32),
    }
    if points is not None:
        points = np.asarray(points, dtype=np.float64)
        if points.shape[-1] == 2:
            points = np.concatenate([points, np.ones_like(points[..., :1])], axis=-1)
        inside = to_crop_normalized(transform_points(points, crop.transform), size)
        out["keypoints_2d"] = torch.as_tensor(inside, dtype=torch.float32)
    if image is not None:
        out["rgb"] = torch.from_numpy(normalize(warp(image, crop), bgr=bgr))
    return out
