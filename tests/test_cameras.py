"""Cameras, pinned to hand-computed numbers: the crop camera, its full-image translation, the one
projection (focal pairs, principal points, skew, clamped depth), on numpy and torch alike."""

import numpy as np
import pytest
import torch

from extpose_sdk import cameras

D = torch.float64


def test_crop_camera_translation_hand_computed():
    cam = np.array([[0.5, 0.1, -0.2], [2.0, 0.0, 0.3]])
    t = cameras.crop_cam_to_translation(cam, focal_length=1000.0, crop_size=200.0)
    assert isinstance(t, np.ndarray)
    np.testing.assert_allclose(t, [[0.1, -0.2, 2000 / (100 + 1e-9)], [0.0, 0.3, 2000 / (400 + 1e-9)]],
                               rtol=1e-13)
    official = cameras.crop_cam_to_translation(torch.tensor([[1.0, 0.0, 0.0]], dtype=D))
    torch.testing.assert_close(official, torch.tensor([[0.0, 0.0, 10000 / (256 + 1e-9)]], dtype=D),
                               rtol=1e-13, atol=0)
    assert cameras.crop_cam_to_translation(np.array([0.0, 0.0, 0.0]))[2] == pytest.approx(1e13)
    with pytest.raises(ValueError, match=r"pred_cam must have shape \(\.\.\., 3\); got \(2,\)"):
        cameras.crop_cam_to_translation(np.zeros(2))


def test_full_image_focal_length_follows_the_longer_side():
    assert cameras.full_image_focal_length(np.array([640.0, 480.0])) == 12500.0
    per_image = cameras.full_image_focal_length(torch.tensor([[640.0, 480.0], [300.0, 900.0]]))
    torch.testing.assert_close(per_image, torch.tensor([12500.0, 17578.125]))
    assert cameras.full_image_focal((480, 640)) == 12500.0  # (H, W)
    assert cameras.full_image_focal((900, 300)) == 17578.125
    with pytest.raises(ValueError, match=r"image_size must have shape \(\.\.\., 2\)"):
        cameras.full_image_focal_length(np.zeros(3))


def test_cam_crop_to_full_hand_computed_on_a_non_square_image():
    cam, center = np.array([0.8, 0.1, -0.2]), np.array([400.0, 250.0])
    bs = 300 * 0.8 + 1e-9
    expected = [2 * (400 - 320) / bs + 0.1, 2 * (250 - 240) / bs - 0.2, 2 * 1000 / bs]
    t = cameras.cam_crop_to_full(cam, center, np.array(300.0), np.array([640.0, 480.0]), 1000.0)
    np.testing.assert_allclose(t, expected, rtol=1e-13)
    default = cameras.cam_crop_to_full(torch.tensor(cam), torch.tensor(center), torch.tensor(300.0),
                                       torch.tensor([640.0, 480.0], dtype=D))
    torch.testing.assert_close(default[2], torch.tensor(2 * 12500 / bs, dtype=D), rtol=1e-13,
                               atol=0)
    for bad, name in ((np.zeros(2), "pred_cam"), (np.zeros(3), "box_center")):
        with pytest.raises(ValueError, match=rf"^{name} must have shape"):
            cameras.cam_crop_to_full(bad if name == "pred_cam" else cam,
                                     bad if name == "box_center" else center, np.array(1.0),
                                     np.array([640.0, 480.0]))
    with pytest.raises(ValueError, match=r"^image_size must have shape \(\.\.\., 2\)"):
        cameras.cam_crop_to_full(cam, center, np.array(1.0), np.array([640.0, 480.0, 1.0]))
    batch = cameras.full_image_focal_length(np.array([[640.0, 480.0], [100.0, 200.0]]))
    np.testing.assert_allclose(batch, [12500.0, 5000 / 256 * 200])


POINTS = np.array([[1.0, 2.0, 4.0], [-2.0, 0.5, 2.0], [0.3, -0.6, -1.0]])


def test_project_hand_computed_numpy_and_torch():
    out = cameras.project(POINTS[:2], (100.0, 200.0), (10.0, 20.0))
    np.testing.assert_allclose(out, [[35.0, 120.0], [-90.0, 70.0]])
    skewed = cameras.project(POINTS[:2], (100.0, 200.0), (10.0, 20.0), skew=50.0)
    np.testing.assert_allclose(skewed, [[60.0, 120.0], [-77.5, 70.0]])
    scalar = cameras.project(torch.tensor(POINTS[:2]), 100.0)
    torch.testing.assert_close(scalar, torch.tensor([[25.0, 50.0], [-100.0, 25.0]], dtype=D))
    clamped = cameras.project(POINTS[2:], 10.0, 0.0, min_depth=0.5)  # behind: z -> 0.5
    np.testing.assert_allclose(clamped, [[6.0, -12.0]])
    torch.testing.assert_close(cameras.project(torch.tensor(POINTS[2:]), 10.0, min_depth=0.5),
                               torch.tensor([[6.0, -12.0]], dtype=D))
    np.testing.assert_allclose(cameras.project(POINTS[2:], 10.0), [[-3.0, 6.0]])  # not clamped
    per_point = cameras.project(POINTS[:2], np.array([[100.0, 200.0], [10.0, 20.0]]),
                                np.array([[0.0, 0.0], [1.0, 2.0]]))
    np.testing.assert_allclose(per_point, [[25.0, 100.0], [-9.0, 7.0]])
    with pytest.raises(ValueError, match=r"^points must have shape \(\.\.\., 3\); got \(2, 2\)"):
        cameras.project(np.zeros((2, 2)), 1.0)
    at_zero = cameras.project(torch.tensor([[1.0, 1.0, 0.0]]), 1.0)  # no skew term: inf, not nan
    assert torch.isinf(at_zero).all()


def test_perspective_projection_with_intrinsics_pose_and_focal():
    K = torch.tensor([[100.0, 50.0, 10.0], [0.0, 200.0, 20.0], [0.0, 0.0, 1.0]], dtype=D)
    points = torch.tensor(POINTS[:2])[None]
    torch.testing.assert_close(cameras.perspective_projection(points, K=K),
                               torch.tensor([[[60.0, 120.0], [-77.5, 70.0]]], dtype=D))
    R = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], dtype=D)
    t = torch.tensor([0.0, 0.0, 2.0], dtype=D)
    moved = cameras.perspective_projection(points, t, focal_length=100.0,
                                           principal_point=torch.tensor([[10.0, 20.0]], dtype=D),
                                           rotation=R)
    # R p + t: (1, 2, 4) -> (-2, 1, 6); (-2, 0.5, 2) -> (-0.5, -2, 4)
    torch.testing.assert_close(moved, torch.tensor([[[10 - 200 / 6, 20 + 100 / 6],
                                                     [10 - 12.5, 20 - 50.0]]], dtype=D))
    pair = cameras.perspective_projection(points, focal_length=torch.tensor([[100.0, 200.0]], dtype=D),
                                          principal_point=torch.tensor([[10.0, 20.0]], dtype=D))
    torch.testing.assert_close(pair, torch.tensor([[[35.0, 120.0], [-90.0, 70.0]]], dtype=D))
    one = cameras.perspective_projection(points, focal_length=torch.tensor([[100.0]], dtype=D),
                                         principal_point=torch.tensor([[10.0, 20.0]], dtype=D))
    torch.testing.assert_close(one, torch.tensor([[[35.0, 70.0], [-90.0, 45.0]]], dtype=D))
    with pytest.raises(ValueError, match=r"K must be \(\.\.\., 3, 3\); got \(2, 3\)"):
        cameras.perspective_projection(points, K=K[:2])
    two = torch.stack([K, K * torch.tensor([[2.0], [1.0], [1.0]], dtype=D)])  # (2, 3, 3)
    both = cameras.perspective_projection(torch.cat([points, points]), K=two)
    torch.testing.assert_close(both[1], torch.tensor([[120.0, 120.0], [-155.0, 70.0]], dtype=D))
    deep = cameras.perspective_projection(points[None], focal_length=torch.ones(1, 1, 2, dtype=D),
                                          principal_point=torch.zeros(1, 1, 2, dtype=D))
    torch.testing.assert_close(deep, torch.tensor([[[[0.25, 0.5], [-1.0, 0.25]]]], dtype=D))
    with pytest.raises(ValueError, match="^perspective_projection needs K, or focal_length and "):
        cameras.perspective_projection(points, focal_length=100.0)
    with pytest.raises(ValueError, match=r"translation must have shape \(\.\.\., 3\)"):
        cameras.perspective_projection(points, torch.zeros(1, 2), K=K)
    with pytest.raises(ValueError, match=r"principal_point must have shape \(\.\.\., 2\)"):
        cameras.perspective_projection(points, focal_length=1.0, principal_point=torch.zeros(1, 3))


def test_full_image_camera_of_a_box_and_its_projection():
    # box 200 x 300 enlarged 1.2 -> 240 x 360, grown to the 192:256 aspect -> 270 x 360: side 360
    box, shape, cam = np.array([100.0, 50.0, 300.0, 350.0]), (480, 640), np.array([0.9, 0.05, -0.1])
    bs = 360 * 0.9 + 1e-9
    t = cameras.full_image_cam_t(cam, box, shape, 1.2)
    assert t.dtype == np.float32
    expected = [2 * (200 - 320) / bs + 0.05, 2 * (200 - 240) / bs - 0.1, 2 * 12500 / bs]
    np.testing.assert_allclose(t, expected, rtol=1e-6)
    whole = cameras.full_image_cam_t(cam, box, shape, 1.0)  # 200 x 300 -> 225 x 300: side 300
    np.testing.assert_allclose(whole[2], 2 * 12500 / (300 * 0.9), rtol=1e-6)
    joints = np.array([[0.1, -0.2, 0.0], [0.0, 0.0, 1.0]])
    pixels = cameras.project_full_image(joints, np.array([0.0, 0.0, 10.0]), shape)
    assert pixels.dtype == np.float32
    np.testing.assert_allclose(pixels, [[320 + 125.0, 240 - 250.0], [320.0, 240.0]], rtol=1e-6)
    batch = cameras.project_full_image(np.stack([joints, joints]),
                                       np.array([[0.0, 0.0, 10.0], [1.0, 0.0, 9.0]]), shape)
    np.testing.assert_allclose(batch[1, 1], [320 + 12500 * 1.0 / 10.0, 240.0], rtol=1e-6)


def test_the_clamped_depth_keeps_the_gradient():
    points = torch.tensor([[1.0, 2.0, 4.0], [0.3, -0.6, -1.0]], dtype=D, requires_grad=True)
    out = cameras.project(points, 10.0, min_depth=0.5)
    torch.testing.assert_close(out.detach(), torch.tensor([[2.5, 5.0], [6.0, -12.0]], dtype=D))
    out.sum().backward()
    # d(u + v)/d(x, y, z) = (f / z, f / z, -f (x + y) / z^2); zero in z where the depth is clamped
    torch.testing.assert_close(points.grad, torch.tensor([[2.5, 2.5, -10 * 3 / 16],
                                                          [20.0, 20.0, 0.0]], dtype=D))


def test_a_full_image_translation_at_zero_scale_stays_in_front():
    t = cameras.full_image_cam_t([0.0, 0.1, -0.1], [0.0, 0.0, 90.0, 120.0], (480, 640), 1.0,
                                 cameras.Camera(500.0, 500.0, 320.0, 240.0))
    assert t[2] == pytest.approx(1000.0 / 1e-9, rel=1e-6)  # far, never behind the camera


def test_perspective_projection_names_points_reads_batched_k_and_keeps_a_float64_focal():
    with pytest.raises(ValueError, match=r"^points must have shape \(\.\.\., 3\); got \(1, 2, 2\)$"):
        cameras.perspective_projection(torch.zeros(1, 2, 2), K=torch.eye(3))
    # a batch of two cameras with four different focal lengths: fx, fy of each on the last axis
    K = torch.tensor([[[100.0, 0, 10], [0, 200.0, 20], [0, 0, 1]],
                      [[300.0, 0, 30], [0, 400.0, 40], [0, 0, 1]]], dtype=D)
    points = torch.tensor([[[1.0, 2.0, 4.0]], [[1.0, 2.0, 4.0]]], dtype=D)
    torch.testing.assert_close(cameras.perspective_projection(points, K=K),
                               torch.tensor([[[35.0, 120.0]], [[105.0, 240.0]]], dtype=D))
    # a focal length of 1000.1 is not a float32 number: it stays float64 with the points
    out = cameras.perspective_projection(points[:1], focal_length=1000.1,
                                         principal_point=torch.zeros(1, 2, dtype=D))
    torch.testing.assert_close(out, torch.tensor([[[250.025, 500.05]]], dtype=D), rtol=1e-15,
                               atol=0)
    # one focal for the batch, as a 1-element vector: both axes
    one = cameras.perspective_projection(points[:1], focal_length=torch.tensor([100.0], dtype=D),
                                         principal_point=torch.zeros(1, 2, dtype=D))
    torch.testing.assert_close(one, torch.tensor([[[25.0, 50.0]]], dtype=D))
