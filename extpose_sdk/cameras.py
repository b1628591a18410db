"""Cameras: the official weak-perspective crop camera, its full-image translation, projection.

HMR2.0 and HaMeR predict ``pred_cam = [s, tx, ty]`` for a crop seen by a pinhole camera of focal
length 5000 px at a crop size of 256 px. ``crop_cam_to_translation`` turns it into the camera-frame
translation of the body; ``cam_crop_to_full`` re-expresses it for the whole image, and
``perspective_projection`` projects 3D points with any intrinsics (a user's own, when known).
"""

from __future__ import annotations

import numpy as np
import torch

#: The official focal length (pixels) and crop size of HMR2.0 / HaMeR.
FOCAL_LENGTH = 5000.0
CROP_SIZE = 256.0


def crop_cam_to_translation(
    pred_cam: torch.Tensor, focal_length: float = FOCAL_LENGTH, crop_size: float = CROP_SIZE
) -> torch.Tensor:
    """``(..., 3)`` crop camera ``[s, tx, ty]`` -> ``(..., 3)`` translation ``[tx, ty, tz]`` (torch or numpy).

    ``tz = 2 f / (crop_size * s)``: a body of unit extent spans ``s`` of the normalised crop.
    """
    _check_last(pred_cam, 3, "pred_cam")
    s, tx, ty = pred_cam[..., 0], pred_cam[..., 1], pred_cam[..., 2]
    tz = 2 * focal_length / (crop_size * s + 1e-9)
    return _stack((tx, ty, tz), like=pred_cam)


def full_image_focal_length(image_size: torch.Tensor) -> torch.Tensor:
    """The official default focal length for a whole image: ``5000 / 256 * max(W, H)``.

    ``image_size`` is ``(..., 2)`` holding ``(W, H)``.
    """
    _check_last(image_size, 2, "image_size")
    return FOCAL_LENGTH / CROP_SIZE * _max_last(image_size)


def cam_crop_to_full(
    pred_cam: torch.Tensor,
    box_center: torch.Tensor,
    box_size: torch.Tensor,
    image_size: torch.Tensor,
    focal_length: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Crop camera -> camera-frame translation for the full image.

    Args:
        pred_cam: ``(..., 3)`` ``[s, tx, ty]`` of the crop.
        box_center: ``(..., 2)`` crop centre in full-image pixels.
        box_size: ``(...)`` side of the square crop in full-image pixels.
        image_size: ``(..., 2)`` ``(W, H)`` of the full image.
        focal_length: full-image focal length; the official default when None.

    Works on torch tensors and numpy arrays alike.

    Returns:
        ``(..., 3)`` translation so that projecting with ``focal_length`` and the principal point
        at the image centre puts the body where the crop saw it.
    """
    _check_last(pred_cam, 3, "pred_cam")
    _check_last(box_center, 2, "box_center")
    _check_last(image_size, 2, "image_size")
    if focal_length is None:
        focal_length = full_image_focal_length(image_size)
    s, tx, ty = pred_cam[..., 0], pred_cam[..., 1], pred_cam[..., 2]
    cx, cy = box_center[..., 0], box_center[..., 1]
    w, h = image_size[..., 0], image_size[..., 1]
    bs = box_size * s + 1e-9
    tz = 2 * focal_length / bs
    return _stack((2 * (cx - w / 2) / bs + tx, 2 * (cy - h / 2) / bs + ty, tz), like=pred_cam)


def intrinsics(
    focal_length: torch.Tensor | float, principal_point: torch.Tensor
) -> torch.Tensor:
    """``(..., 3, 3)`` pinhole intrinsics from a focal length (scalar or ``(..., 1|2)``)."""
    _check_last(principal_point, 2, "principal_point")
    f = torch.as_tensor(focal_length, dtype=principal_point.dtype, device=principal_point.device)
    f = f.expand(*principal_point.shape[:-1], 2) if f.dim() == 0 else f.expand_as(principal_point)
    K = torch.zeros(*principal_point.shape[:-1], 3, 3, dtype=principal_point.dtype,
                    device=principal_point.device)
    K[..., 0, 0], K[..., 1, 1] = f[..., 0], f[..., 1]
    K[..., :2, 2] = principal_point
    K[..., 2, 2] = 1.0
    return K


def perspective_projection(
    points: torch.Tensor,
    translation: torch.Tensor | None = None,
    K: torch.Tensor | None = None,
    *,
    focal_length: torch.Tensor | float | None = None,
    principal_point: torch.Tensor | None = None,
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Project ``(..., N, 3)`` camera-frame points to ``(..., N, 2)`` pixels.

    Give either intrinsics ``K`` ``(..., 3, 3)`` (e.g. the user's calibration) or a focal length
    and principal point. ``translation`` ``(..., 3)`` and ``rotation`` ``(..., 3, 3)`` are applied
    first (``R p + t``).
    """
    _check_last(points, 3, "points")
    if rotation is not None:
        points = points @ rotation.transpose(-1, -2)
    if translation is not None:
        _check_last(translation, 3, "translation")
        points = points + translation.unsqueeze(-2)
    if K is None:
        if focal_length is None or principal_point is None:
            raise ValueError("perspective_projection needs K, or focal_length and principal_point")
        K = intrinsics(focal_length, principal_point)
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"K must be (..., 3, 3); got {tuple(K.shape)}")
    projected = points / points[..., 2:3]
    return (projected @ K.transpose(-1, -2))[..., :2]


def _stack(parts, like):
    if isinstance(like, torch.Tensor):
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def _max_last(x):
    return x.max(dim=-1).values if isinstance(x, torch.Tensor) else np.max(x, axis=-1)


def _check_last(x: torch.Tensor, size: int, name: str) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}); got {tuple(x.shape)}")
