"""Cameras: the official weak-perspective crop camera, its full-image translation, projection.

HMR2.0 and HaMeR predict ``pred_cam = [s, tx, ty]`` for a crop seen by a pinhole camera of focal
length 5000 px at a crop size of 256 px. ``crop_cam_to_translation`` turns it into the camera-frame
translation of the body; ``cam_crop_to_full`` re-expresses it for the whole image
(``full_image_cam_t`` for one person's box), and ``project`` is the one pinhole projection
(``u = fx x / z + cx``) that every part of the SDK uses, on numpy arrays and torch tensors:
the model's crop-normalised 2D joints, the pipeline's full-image keypoints, the renderer, the
data-set readers. ``perspective_projection`` adds a pose (``R p + t``) and intrinsics ``K``.
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


def project(points, focal, principal=0.0, *, skew=0.0, min_depth: float | None = None):
    """Pinhole projection of camera-frame points ``(..., 3)`` to pixels ``(..., 2)``:
    ``u = fx * x / z + skew * y / z + cx``, ``v = fy * y / z + cy`` (numpy or torch).

    ``focal`` and ``principal`` are scalars or ``(..., 2)`` (``(fx, fy)``, ``(cx, cy)``)
    broadcasting with the points' leading dimensions; ``min_depth`` clamps ``z`` from below
    (points behind the camera stay finite, for drawing)."""
    _check_last(points, 3, "points")
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    if min_depth is not None:
        z = z.clamp_min(min_depth) if isinstance(z, torch.Tensor) else np.maximum(z, min_depth)
    fx, fy = _pair(focal)
    cx, cy = _pair(principal)
    u = fx * x / z + cx
    if not (isinstance(skew, (int, float)) and skew == 0):
        u = u + skew * y / z
    return _stack((u, fy * y / z + cy), like=points)


def full_image_focal(shape: tuple[int, int]) -> float:
    """The official full-image focal length of an image of ``shape`` (H, W)."""
    return float(full_image_focal_length(np.array([shape[1], shape[0]])))


def full_image_cam_t(pred_cam, box, shape: tuple[int, int], rescale: float) -> np.ndarray:
    """``(3,)`` full-image camera translation from the crop camera ``(s, tx, ty)`` of the crop of
    ``box`` (x1, y1, x2, y2, enlarged by ``rescale``) in an image of ``shape`` (H, W)."""
    from extpose_sdk.data.crops import bbox_size_of, box_to_center_scale

    center, scale = box_to_center_scale(box, rescale)  # float64
    image_size = np.array([shape[1], shape[0]], dtype=np.float64)
    translation = cam_crop_to_full(np.asarray(pred_cam, dtype=np.float64), center,
                                   bbox_size_of(scale), image_size, full_image_focal(shape))
    return translation.astype(np.float32)


def project_full_image(points_3d, cam_t, shape: tuple[int, int]) -> np.ndarray:
    """``(..., J, 2)`` full-image pixels of body-frame ``points_3d`` moved by ``cam_t``
    (``(..., 3)``), seen with the official focal length, principal point at the centre."""
    points = np.asarray(points_3d, dtype=np.float64) + np.asarray(cam_t, dtype=np.float64)[..., None, :]
    centre = (shape[1] / 2.0, shape[0] / 2.0)
    return project(points, full_image_focal(shape), centre).astype(np.float32)


def perspective_projection(
    points: torch.Tensor,
    translation: torch.Tensor | None = None,
    K: torch.Tensor | None = None,
    *,
    focal_length: torch.Tensor | float | None = None,
    principal_point: torch.Tensor | None = None,
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Project ``(..., N, 3)`` points to ``(..., N, 2)`` pixels (``project``), after the pose
    ``R p + t``: ``rotation`` ``(..., 3, 3)`` and ``translation`` ``(..., 3)``.

    Give either intrinsics ``K`` ``(..., 3, 3)`` (e.g. the user's calibration, skew included)
    or a focal length (scalar or ``(..., 1|2)``) and principal point ``(..., 2)``.
    """
    _check_last(points, 3, "points")
    if rotation is not None:
        points = points @ rotation.transpose(-1, -2)
    if translation is not None:
        _check_last(translation, 3, "translation")
        points = points + translation.unsqueeze(-2)
    if K is not None:
        if K.shape[-2:] != (3, 3):
            raise ValueError(f"K must be (..., 3, 3); got {tuple(K.shape)}")
        focal = torch.stack((K[..., 0, 0], K[..., 1, 1]), -1)
        return project(points, focal[..., None, :], K[..., None, :2, 2], skew=K[..., 0, 1, None])
    if focal_length is None or principal_point is None:
        raise ValueError("perspective_projection needs K, or focal_length and principal_point")
    _check_last(principal_point, 2, "principal_point")
    focal = torch.as_tensor(focal_length, dtype=points.dtype, device=points.device)
    if focal.dim() > 0:
        focal = focal.expand(*focal.shape[:-1], 2)[..., None, :]
    return project(points, focal, principal_point[..., None, :])


def _pair(value):
    """``(a, b)`` of a scalar (both) or a ``(..., 2)`` array / tensor."""
    if isinstance(value, (int, float)) or np.ndim(value) == 0:
        return value, value
    if isinstance(value, (tuple, list)):
        value = np.asarray(value)
    return value[..., 0], value[..., 1]


def _stack(parts, like):
    if isinstance(like, torch.Tensor):
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def _max_last(x):
    return x.max(dim=-1).values if isinstance(x, torch.Tensor) else np.max(x, axis=-1)


def _check_last(x: torch.Tensor, size: int, name: str) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}); got {tuple(x.shape)}")
