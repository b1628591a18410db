"""Augmentation: labels follow the image, a flip swaps joints, 3D labels stay consistent."""

import numpy as np
import pytest

from extpose_sdk.data import crops
from extpose_sdk.data.augment import (
    SMPL44_FLIP,
    AugmentConfig,
    AugmentParams,
    augment,
    flip_axis_angle_pose,
    sample_params,
)

H, W = 241, 321  # odd sides: the image centre is a pixel centre


def test_sample_params_seeded_and_within_recipe():
    a = sample_params(AugmentConfig(), np.random.default_rng(3))
    b = sample_params(AugmentConfig(), np.random.default_rng(3))
    assert a == b
    draws = [sample_params(AugmentConfig(), np.random.default_rng(i)) for i in range(200)]
    assert all(0.7 <= p.zoom <= 1.3 and abs(p.rotation) <= 60 for p in draws)
    assert all(0.8 <= c <= 1.2 for p in draws for c in p.color)
    assert 0.35 < np.mean([p.flip for p in draws]) < 0.65
    assert 0.45 < np.mean([p.rotation != 0 for p in draws]) < 0.75
    assert sample_params(AugmentConfig.none(), np.random.default_rng(0)) == AugmentParams(
        translate=(0.0, 0.0), color=(1.0, 1.0, 1.0))


@pytest.mark.parametrize("params", [
    AugmentParams(rotation=25.0, zoom=1.2), AugmentParams(flip=True, translate=(0.02, 0.01)),
    AugmentParams(rotation=-40.0, zoom=0.8, flip=True),
])
def test_painted_dot_follows_keypoint_label(params):
    image = np.zeros((H, W, 3), np.uint8)
    dot = (190, 100)
    image[dot[1] - 2:dot[1] + 3, dot[0] - 2:dot[0] + 3] = 255
    points = np.zeros((44, 3))
    points[:, :2] = 160, 120
    points[7] = [*dot, 1.0]  # OpenPose left wrist
    out = augment(image, [110, 40, 210, 200], params, keypoints_2d=points, joint_set="smpl44")
    patch = crops.denormalize(out["rgb"])[..., 0].astype(np.float64)
    ys, xs = np.nonzero(patch > 0)
    found = np.array([(xs * patch[ys, xs]).sum(), (ys * patch[ys, xs]).sum()]) / patch[ys, xs].sum()
    label = 4 if params.flip else 7  # flipped: the left wrist became the right wrist (4)
    expected = crops.from_crop_normalized(out["keypoints_2d"][label])[:2]
    np.testing.assert_allclose(found, expected, atol=1.0)
    assert out["keypoints_2d"][label, 2] == 1.0


def test_flip_swaps_left_and_right_and_3d_agrees_with_2d():
    rng = np.random.default_rng(0)
    focal = 300.0
    joints = np.concatenate([rng.uniform(-0.5, 0.5, (44, 2)), rng.uniform(3, 4, (44, 1))], 1)
    principal = np.array([(W - 1) / 2, (H - 1) / 2])
    uv = focal * joints[:, :2] / joints[:, 2:] + principal
    points2d = np.concatenate([uv, np.ones((44, 1))], 1)
    points3d = np.concatenate([joints, np.ones((44, 1))], 1)
    box = [principal[0] - 60, principal[1] - 80, principal[0] + 60, principal[1] + 80]
    for params in (AugmentParams(flip=True), AugmentParams(rotation=30.0, flip=True),
                   AugmentParams(rotation=-20.0)):
        out = augment(np.zeros((H, W, 3), np.uint8), box, params, keypoints_2d=points2d,
                      keypoints_3d=points3d, joint_set="smpl44")
        crop_focal = focal * 256 / 160.0
        p3 = out["keypoints_3d"]
        projected = crop_focal * p3[:, :2] / p3[:, 2:3] + 128.0
        np.testing.assert_allclose(projected, crops.from_crop_normalized(out["keypoints_2d"])[:, :2],
                                   atol=1e-2)
    flipped = augment(np.zeros((H, W, 3), np.uint8), box, AugmentParams(flip=True),
                      keypoints_3d=points3d, joint_set="smpl44")["keypoints_3d"]
    np.testing.assert_allclose(flipped[2, 0], -points3d[5, 0], rtol=1e-5)  # R <- L shoulder
    assert sorted(SMPL44_FLIP) == list(range(44))


def test_pose_flip_swaps_sides_negates_yz_and_is_an_involution():
    rng = np.random.default_rng(1)
    orient, body = rng.normal(size=3), rng.normal(size=69)
    out = augment(np.zeros((H, W, 3), np.uint8), [100, 50, 200, 200], AugmentParams(flip=True),
                  global_orient=orient, body_pose=body)
    np.testing.assert_allclose(out["global_orient"], orient * [1, -1, -1], rtol=1e-5)
    # SMPL joint 1 (left hip) takes joint 2 (right hip), mirrored; body_pose starts at joint 1
    np.testing.assert_allclose(out["body_pose"][0:3], body[3:6] * [1, -1, -1], rtol=1e-5)
    full = np.concatenate([orient, body])
    from extpose_sdk.data.augment import SMPL24_POSE_FLIP

    twice = flip_axis_angle_pose(flip_axis_angle_pose(full, SMPL24_POSE_FLIP), SMPL24_POSE_FLIP)
    np.testing.assert_allclose(twice, full)


def test_hand_flip_toggles_side_and_unknown_joint_set_fails():
    out = augment(np.zeros((H, W, 3), np.uint8), [100, 50, 200, 200], AugmentParams(flip=True),
                  hand_pose=np.ones(45), is_right=1.0)
    assert out["is_right"] == 0.0
    np.testing.assert_allclose(out["hand_pose"][:3], [1, -1, -1])
    with pytest.raises(ValueError, match="smpl44"):
        augment(np.zeros((H, W, 3), np.uint8), [100, 50, 200, 200], AugmentParams(flip=True),
                keypoints_2d=np.ones((5, 3)))
