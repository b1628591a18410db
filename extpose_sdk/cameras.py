"""Cameras: the official weak-perspective crop camera, its full-image translation, projection.

HMR2.0 and HaMeR predict ``pred_cam = [s, tx, ty]`` for a crop seen by a pinhole camera of focal
length 5000 px at a crop size of 256 px. ``crop_cam_to_translation`` turns it into the camera-frame
translation of the body; ``cam_crop_to_full`` re-expresses it for the whole image
(``full_image_cam_t`` for one person's box), and ``project`` is the one pinhole projection
(``u = fx x / z + cx``) that every part of the SDK uses, on numpy arrays and torch tensors:
the model's crop-normalised 2D joints, the pipeline's full-image keypoints, the renderer, the
data-set readers. ``perspective_projection`` adds a pose (``R p + t``) and intrinsics ``K``.

A whole image is seen, by default, as HMR2.0 / HaMeR assume: focal ``5000 / 256 * max(W, H)``,
principal point at the centre (``Camera.official``). A user who knows their camera gives it
(``Camera``, ``Camera.read(path)``, or a focal length), and the full-image translations,
projections and overlays use it instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
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


@attrs.frozen
class Camera:
    """A pinhole camera's intrinsics in pixels: ``u = fx * x / z + cx``, ``v = fy * y / z + cy``
    (camera frame, OpenCV axes)."""

    fx: float
    fy: float
    cx: float
    cy: float

    def __attrs_post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(values)) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"a camera needs positive finite focal lengths and a finite "
                             f"principal point; got fx={self.fx}, fy={self.fy}, cx={self.cx}, "
                             f"cy={self.cy}")

    @classmethod
    def of(cls, focal, principal=None, image_size: tuple[int, int] | None = None) -> Camera:
        """From a focal length (scalar or (fx, fy)) and a principal point (default: the centre
        of ``image_size`` (H, W))."""
        fx, fy = np.broadcast_to(np.asarray(focal, dtype=np.float64), (2,))
        if principal is None:
            if image_size is None:
                raise ValueError("Camera.of needs principal or image_size")
            principal = (image_size[1] / 2.0, image_size[0] / 2.0)
        cx, cy = (float(v) for v in principal)
        return cls(float(fx), float(fy), cx, cy)

    @classmethod
    def official(cls, shape: tuple[int, int]) -> Camera:
        """What HMR2.0 / HaMeR assume for a whole image of ``shape`` (H, W)."""
        return cls.of(full_image_focal(shape), image_size=shape)

    @classmethod
    def read(cls, path: str | Path) -> Camera:
        """A JSON file: ``{"fx": ..., "fy": ..., "cx": ..., "cy": ...}`` or ``{"K": 3 x 3}``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such intrinsics file: {path}")
        try:
            data = json.loads(path.read_text())
            if "K" in data:
                K = np.asarray(data["K"], dtype=np.float64)
                if K.shape != (3, 3):
                    raise ValueError(f"K has shape {K.shape}, not (3, 3)")
                return cls(K[0, 0], K[1, 1], K[0, 2], K[1, 2])
            return cls(*(float(data[k]) for k in ("fx", "fy", "cx", "cy")))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: intrinsics must be JSON with fx, fy, cx, cy (pixels) or a "
                             f"3 x 3 K; {type(error).__name__}: {error}") from None

    def project(self, points) -> np.ndarray:
        """(..., 2) pixel positions of camera-frame points (..., 3) (``project``; points behind
        the camera are clamped to a depth of 1e-9)."""
        return project(np.asarray(points, dtype=np.float64), (self.fx, self.fy),
                       (self.cx, self.cy), min_depth=1e-9)

    def as_dict(self) -> dict[str, float]:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy}


def camera_for(camera: Camera | float | None, shape: tuple[int, int]) -> Camera:
    """The camera of an image of ``shape`` (H, W): ``camera`` itself, a focal length with the
    principal point at the centre, or (``None``) the official assumption."""
    if camera is None:
        return Camera.official(shape)
    if isinstance(camera, Camera):
        return camera
    return Camera.of(float(camera), image_size=shape)


def describe_camera(camera: Camera | float | None) -> dict[str, Any]:
    """What results record about the camera they were computed with."""
    if camera is None:
        return {"source": "default", "focal_length": "5000 / 256 * max(W, H)",
                "principal_point": "image centre"}
    if isinstance(camera, Camera):
        return {"source": "user", **camera.as_dict()}
    return {"source": "user", "focal_length": float(camera), "principal_point": "image centre"}


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


def full_image_cam_t(pred_cam, box, shape: tuple[int, int], rescale: float,
                     camera: Camera | float | None = None) -> np.ndarray:
    """``(3,)`` full-image camera translation from the crop camera ``(s, tx, ty)`` of the crop of
    ``box`` (x1, y1, x2, y2, enlarged by ``rescale``) in an image of ``shape`` (H, W), seen by
    ``camera`` (``camera_for``; default: the official assumption, as ``cam_crop_to_full``).

    The crop saw the body's origin at ``box centre + (tx, ty) * s * size / 2`` pixels, at a
    scale of ``s * size / 2`` pixels per metre; the depth gives that scale with the camera's
    mean focal length, and the origin is placed on the ray through that pixel."""
    from extpose_sdk.data.crops import bbox_size_of, box_to_center_scale

    cam = camera_for(camera, shape)
    center, scale = box_to_center_scale(box, rescale)  # float64
    size = float(bbox_size_of(scale))
    s, tx, ty = (float(v) for v in np.asarray(pred_cam, dtype=np.float64))
    tz = (cam.fx + cam.fy) / (size * s + 1e-9)
    u = center[0] + tx * s * size / 2
    v = center[1] + ty * s * size / 2
    return np.array([(u - cam.cx) * tz / cam.fx, (v - cam.cy) * tz / cam.fy, tz], np.float32)


def project_full_image(points_3d, cam_t, shape: tuple[int, int],
                       camera: Camera | float | None = None) -> np.ndarray:
    """``(..., J, 2)`` full-image pixels of body-frame ``points_3d`` moved by ``cam_t``
    (``(..., 3)``), seen by ``camera`` (``camera_for``: default the official assumption)."""
    cam = camera_for(camera, shape)
    points = np.asarray(points_3d, dtype=np.float64) + np.asarray(cam_t, dtype=np.float64)[..., None, :]
    return project(points, (cam.fx, cam.fy), (cam.cx, cam.cy)).astype(np.float32)


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
