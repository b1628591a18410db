"""Training augmentation as the official HMR2.0 / HaMeR recipes do it.

One ``AugmentParams`` (sampled from a seeded generator) is applied identically to the image (via
the crop affine), to the detected 2D keypoints the skeleton modality is drawn from (they stay in
full-image px and follow the same ``crop_transform``), and to the labels (2D / 3D keypoints,
vertices, pose)::

    import numpy as np
    from extpose_sdk.data.augment import AugmentConfig, sample_params, augment
    params = sample_params(AugmentConfig(), np.random.default_rng(0))
    entries = augment(image_rgb, box, params, keypoints_2d=points, joint_set="smpl44")

The recipe (HMR2.0): centre shift ``clip(N, -1, 1) * 0.02`` of the crop side, zoom
``1 + clip(N, -1, 1) * 0.3``, rotation ``clip(N, -2, 2) * 30`` degrees with probability 0.6,
per-channel colour scale ``U(0.8, 1.2)``, horizontal flip with probability 0.5 (left and right
joints swap; SMPL pose: joints swap and the axis-angle y, z negate), extreme crop optional.
A rotation by ``r`` degrees turns the crop content by ``-r`` about the optical axis, so 3D labels
rotate about the camera's z axis by ``-r``; a flip mirrors them (``x -> -x``).
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from extpose_sdk.data import crops
from extpose_sdk.data.sample import CROP_SIZE

#: HMR2.0's 44 body joints (OpenPose 25 + 19 extra) under a horizontal flip.
SMPL44_FLIP = (0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24, 19,
               20, 21) + tuple(25 + i for i in (5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14,
                                                 15, 16, 17, 18))
#: SMPL's 24 pose joints (global orient first) under a horizontal flip.
SMPL24_POSE_FLIP = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20,
                    23, 22)
#: Flip permutations of the label joint sets (hands keep their order: a flipped right hand is a
#: left hand in the same joint order).
JOINT_SET_FLIPS: dict[str, tuple[int, ...]] = {
    "smpl44": SMPL44_FLIP,
    "mano21": tuple(range(21)),
}


@attrs.frozen
class AugmentConfig:
    """Augmentation strengths (defaults: HMR2.0's training recipe; extreme crop off)."""

    scale: float = 0.3
    rotation: float = 30.0
    rotation_prob: float = 0.6
    translation: float = 0.02
    color: float = 0.2  # channel scale in [1 - color, 1 + color]
    flip_prob: float = 0.5
    extreme_crop_prob: float = 0.0  # HMR2.0 uses 0.1

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation (evaluation)."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@attrs.frozen
class AugmentParams:
    """One sampled augmentation: crop ``zoom``, ``rotation`` (deg), ``translate`` (fraction of the
    crop side), per-channel ``color`` scale (RGB), ``flip``, ``extreme_crop``."""

    zoom: float = 1.0
    rotation: float = 0.0
    translate: tuple[float, float] = (0.0, 0.0)
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    flip: bool = False
    extreme_crop: bool = False


def sample_params(config: AugmentConfig, rng: np.random.Generator) -> AugmentParams:
    """Draw one ``AugmentParams`` with the official distributions (always the same draws, so a
    seed gives the same parameters whatever the config)."""
    tx, ty, zoom = np.clip(rng.standard_normal(3), -1.0, 1.0)
    rot = float(np.clip(rng.standard_normal(), -2.0, 2.0))
    u_rot, u_flip, u_extreme = rng.random(3)
    color = rng.uniform(1.0 - config.color, 1.0 + config.color, size=3)
    return AugmentParams(
        zoom=float(1.0 + zoom * config.scale),
        rotation=rot * config.rotation if u_rot < config.rotation_prob else 0.0,
        translate=(float(tx * config.translation), float(ty * config.translation)),
        color=tuple(float(c) for c in color),
        flip=bool(u_flip < config.flip_prob),
        extreme_crop=bool(u_extreme < config.extreme_crop_prob),
    )


def rotation_z(degrees: float) -> np.ndarray:
    """(3, 3) rotation about the camera's z axis by ``degrees`` (x towards y)."""
    r = math.radians(degrees)
    c, s = math.cos(r), math.sin(r)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def flip_axis_angle_pose(pose, permutation: tuple[int, ...] | None) -> np.ndarray:
    """Mirror axis-angle pose (..., J*3): joints permuted (``None``: kept), each mirrored
    (``geometry.flip_axis_angle``: y and z negated)."""
    from extpose_sdk.geometry import flip_axis_angle

    pose = np.asarray(pose, dtype=np.float64)
    joints = pose.reshape(*pose.shape[:-1], -1, 3)
    if permutation is not None:
        joints = joints[..., list(permutation), :]
    return flip_axis_angle(joints).reshape(pose.shape)


def rotate_axis_angle(axis_angle, rotation: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of ``rotation @ R(axis_angle)``."""
    from extpose_sdk.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle

    return rotmat_to_axis_angle(np.asarray(rotation, dtype=np.float64)
                                @ axis_angle_to_rotmat(np.asarray(axis_angle, dtype=np.float64)))


def extreme_crop_box(points: np.ndarray, rng: np.random.Generator, padding: float = 1.2):
    """A box around the upper or the lower half (by y) of the confident ``points`` (K, 3), or
    None when fewer than 2 joints would be left."""
    good = points[points[:, 2] > 0, :2]
    if len(good) < 4:
        return None
    median = np.median(good[:, 1])
    part = good[good[:, 1] <= median] if rng.random() < 0.5 else good[good[:, 1] >= median]
    if len(part) < 2:
        return None
    lo, hi = part.min(axis=0), part.max(axis=0)
    centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2 * padding, 4.0)
    return np.concatenate([centre - half, centre + half])


def augment(image, box, params: AugmentParams = AugmentParams(), *, keypoints_2d=None,
            keypoints_3d=None, vertices=None, global_orient=None, body_pose=None,
            hand_pose=None, is_right=None, detected_keypoints_2d=None, joint_set: str | None = None,
            joint_flip=None, detected_flip=None, size: int = CROP_SIZE, rescale: float = 1.0,
            bgr: bool = False, rng: np.random.Generator | None = None) -> dict[str, Any]:
    """Crop and augment one frame; returns sample-layout entries as numpy arrays.

    Args:
        image: (H, W, 3) uint8 full image (RGB, or BGR with ``bgr=True``), or None (labels only).
        box: x1, y1, x2, y2 full-image px. params: the sampled augmentation.
        keypoints_2d: (K, 3) ground-truth full-image px + confidence -> crop-normalised.
        keypoints_3d: (K, 4) camera frame + validity; vertices: (V, 3) camera frame.
        global_orient (3,), body_pose (69,) / hand_pose (45,): axis-angle, camera frame.
        detected_keypoints_2d: (J, 3) full-image px; stays in full-image px (the skeleton is drawn
            through ``crop_transform``), joints swap sides under a flip (``detected_flip``).
        joint_set / joint_flip: flip permutation of the label joints (``JOINT_SET_FLIPS``).
        rng: generator for the extreme crop's choice (only used when ``params.extreme_crop``).

    Returns:
        ``rgb`` (3, size, size) float32 (when ``image``), ``center``, ``scale``,
        ``crop_transform``, and each given label transformed.
    """
    if params.flip and joint_flip is None and (keypoints_2d is not None or keypoints_3d is not None):
        if joint_set not in JOINT_SET_FLIPS:
            raise ValueError(f"flip needs joint_flip or a known joint_set "
                             f"({', '.join(JOINT_SET_FLIPS)}), got {joint_set!r}")
        joint_flip = JOINT_SET_FLIPS[joint_set]
    if params.extreme_crop and keypoints_2d is not None:
        tighter = extreme_crop_box(np.asarray(keypoints_2d, np.float64),
                                   rng if rng is not None else np.random.default_rng(0))
        if tighter is not None:
            box = tighter
    width = None if image is None else np.asarray(image).shape[1]
    if params.flip and width is None:
        raise ValueError("augment: a flip without an image needs the image; pass image")
    crop = crops.make_crop(box, image_width=width, rescale=rescale, size=size,
                           rotation=params.rotation, zoom=params.zoom,
                           translate=params.translate, flip=params.flip)
    out: dict[str, Any] = {
        "center": crop.center.astype(np.float32),
        "scale": crop.scale.astype(np.float32),
        "crop_transform": crop.transform.astype(np.float32),
    }
    if image is not None:
        out["rgb"] = crops.normalize(crops.warp(image, crop), bgr=bgr, color_scale=params.color)

    def swap(points, permutation):
        points = np.asarray(points, dtype=np.float64)
        return points[list(permutation)] if params.flip and permutation is not None else points

    if keypoints_2d is not None:
        points = swap(keypoints_2d, joint_flip)
        out["keypoints_2d"] = crops.to_crop_normalized(
            crops.transform_points(points, crop.transform), size).astype(np.float32)
    if detected_keypoints_2d is not None:
        out["detected_keypoints_2d"] = swap(detected_keypoints_2d, detected_flip).astype(np.float32)

    rotation = rotation_z(-params.rotation)
    mirror = np.diag([-1.0, 1.0, 1.0]) if params.flip else np.eye(3)
    spatial = rotation @ mirror
    if keypoints_3d is not None:
        points = swap(keypoints_3d, joint_flip).copy()
        points[:, :3] = points[:, :3] @ spatial.T
        out["keypoints_3d"] = points.astype(np.float32)
    if vertices is not None:
        # a mirrored mesh keeps its vertex order (left and right vertices are not swapped)
        out["vertices"] = (np.asarray(vertices, np.float64) @ spatial.T).astype(np.float32)
    if body_pose is not None or (global_orient is not None and hand_pose is None):
        full = np.concatenate([np.zeros(3) if global_orient is None else global_orient,
                               np.zeros(69) if body_pose is None else body_pose])
        if params.flip:
            full = flip_axis_angle_pose(full, SMPL24_POSE_FLIP)
        if global_orient is not None:
            out["global_orient"] = rotate_axis_angle(full[:3], rotation).astype(np.float32)
        if body_pose is not None:
            out["body_pose"] = full[3:].astype(np.float32)
    if hand_pose is not None:
        pose = flip_axis_angle_pose(hand_pose, None) if params.flip else np.asarray(hand_pose)
        out["hand_pose"] = np.asarray(pose, np.float32)
        if global_orient is not None:
            orient = flip_axis_angle_pose(global_orient, None) if params.flip else global_orient
            out["global_orient"] = rotate_axis_angle(orient, rotation).astype(np.float32)
    if is_right is not None:
        out["is_right"] = np.float32(1.0 - float(is_right) if params.flip else float(is_right))
    return out
