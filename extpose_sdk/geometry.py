"""Rotations: the 6D representation (official HMR2.0 / HaMeR layout), matrices and axis-angle.

All functions are batched over leading dimensions and differentiable. They are the SDK's one set
of rotation helpers: the model, the engine's losses, the body models, the augmentation and the
data-set readers use them. Each takes torch tensors, or numpy arrays (computed in float64 and
given back as numpy)::

    geometry.axis_angle_to_rotmat(np.array([0.0, 0.0, np.pi / 2]))   # (3, 3) numpy
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F


def _numpy_too(function):
    """Let a tensor function take a numpy array (float64) and give back a numpy array.
    Applied below the definitions (not as a decorator, so mutation testing reaches them)."""

    @functools.wraps(function)
    def wrapper(x, *args, **kwargs):
        if isinstance(x, np.ndarray):
            return function(torch.from_numpy(np.asarray(x, dtype=np.float64)), *args,
                            **kwargs).numpy()
        return function(x, *args, **kwargs)

    return wrapper


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """``(..., 6)`` -> ``(..., 3, 3)`` in the official layout.

    The 6 numbers are read as two 3-vectors ``a1 = x[0:3]``, ``a2 = x[3:6]``; Gram-Schmidt gives
    ``b1, b2`` and ``b3 = b1 x b2``, which are the matrix's *columns*.
    """
    if x.shape[-1] != 6:
        raise ValueError(f"rot6d_to_rotmat expects (..., 6); got {tuple(x.shape)}")
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def rotmat_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` -> ``(..., 6)``: the inverse of ``rot6d_to_rotmat`` on rotations."""
    _check_rotmat(R)
    return torch.cat((R[..., :, 0], R[..., :, 1]), dim=-1)


def axis_angle_to_rotmat(axis_angle: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` rotation vectors -> ``(..., 3, 3)`` by Rodrigues' formula (stable near 0)."""
    if axis_angle.shape[-1] != 3:
        raise ValueError(f"axis_angle_to_rotmat expects (..., 3); got {tuple(axis_angle.shape)}")
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
    theta = theta2.clamp_min(1e-12).sqrt()
    small = theta2 < 1e-8
    # sin(t)/t and (1 - cos t)/t^2 with Taylor expansions near zero
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    K = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * K + b * (K @ K)


def rotmat_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` -> ``(..., 3)`` rotation vectors with angle in ``[0, pi]``, robust near pi."""
    _check_rotmat(R)
    quat = rotmat_to_quaternion(R)  # (w, x, y, z), w >= 0
    w, xyz = quat[..., :1], quat[..., 1:]
    norm = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(norm, w)
    scale = torch.where(norm < 1e-8, 2.0 / w.clamp_min(1e-8), angle / norm.clamp_min(1e-12))
    return xyz * scale


def rotmat_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` -> ``(..., 4)`` unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Uses the largest of the four candidate denominators for numerical stability.
    """
    _check_rotmat(R)
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    candidates = torch.stack(
        (
            1 + trace,
            1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
        ),
        dim=-1,
    )
    q_w = torch.stack(
        (candidates[..., 0], m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
         m[..., 1, 0] - m[..., 0, 1]), dim=-1)
    q_x = torch.stack(
        (m[..., 2, 1] - m[..., 1, 2], candidates[..., 1], m[..., 1, 0] + m[..., 0, 1],
         m[..., 0, 2] + m[..., 2, 0]), dim=-1)
    q_y = torch.stack(
        (m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1], candidates[..., 2],
         m[..., 2, 1] + m[..., 1, 2]), dim=-1)
    q_z = torch.stack(
        (m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2],
         candidates[..., 3]), dim=-1)
    options = torch.stack((q_w, q_x, q_y, q_z), dim=-2)  # (..., 4 choices, 4 components)
    best = candidates.argmax(dim=-1)
    chosen = torch.gather(options, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quat = F.normalize(chosen, dim=-1)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def flip_axis_angle(pose: torch.Tensor) -> torch.Tensor:
    """Mirror rotation vectors in the image's vertical plane (x -> -x): negate y and z."""
    if pose.shape[-1] != 3:
        raise ValueError(f"flip_axis_angle expects (..., 3); got {tuple(pose.shape)}")
    return pose * pose.new_tensor([1.0, -1.0, -1.0])


def flip_rotmat(R: torch.Tensor) -> torch.Tensor:
    """Mirror rotation matrices in the x = 0 plane: ``M R M`` with ``M = diag(-1, 1, 1)``."""
    _check_rotmat(R)
    M = R.new_tensor([-1.0, 1.0, 1.0])
    return R * M[:, None] * M[None, :]


def _skew(v: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    return torch.stack(
        (zero, -z, y, z, zero, -x, -y, x, zero), dim=-1
    ).reshape(*v.shape[:-1], 3, 3)


def _check_rotmat(R: torch.Tensor) -> None:
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"expected rotation matrices of shape (..., 3, 3); got {tuple(R.shape)}")


# numpy arrays too (computed in float64, given back as numpy)
rot6d_to_rotmat = _numpy_too(rot6d_to_rotmat)
rotmat_to_rot6d = _numpy_too(rotmat_to_rot6d)
axis_angle_to_rotmat = _numpy_too(axis_angle_to_rotmat)
rotmat_to_axis_angle = _numpy_too(rotmat_to_axis_angle)
rotmat_to_quaternion = _numpy_too(rotmat_to_quaternion)
flip_axis_angle = _numpy_too(flip_axis_angle)
flip_rotmat = _numpy_too(flip_rotmat)
