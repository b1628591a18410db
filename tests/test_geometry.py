"""Rotations and cameras against independent formulas (scipy) and round trips."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from extpose_sdk import cameras, geometry

D = torch.float64


def random_rotvecs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    vecs = Rotation.random(n, random_state=seed).as_rotvec()
    # include the hard cases: identity, tiny angles and angles at pi
    vecs[0] = 0.0
    vecs[1] = [1e-9, -2e-9, 0.5e-9]
    axis = rng.normal(size=3)
    vecs[2] = np.pi * axis / np.linalg.norm(axis)
    return vecs


def test_axis_angle_to_rotmat_matches_scipy():
    vecs = random_rotvecs()
    ours = geometry.axis_angle_to_rotmat(torch.from_numpy(vecs)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(vecs).as_matrix(), atol=1e-10)


def test_rotmat_to_axis_angle_matches_scipy_and_round_trips():
    vecs = random_rotvecs()
    R = Rotation.from_rotvec(vecs).as_matrix()
    ours = geometry.rotmat_to_axis_angle(torch.from_numpy(R)).numpy()
    # compare as rotations: at angle pi, v and -v are the same rotation
    np.testing.assert_allclose(Rotation.from_rotvec(ours).as_matrix(), R, atol=1e-9)
    np.testing.assert_allclose(ours[3:], vecs[3:], atol=1e-9)
    assert np.linalg.norm(ours, axis=-1).max() <= np.pi + 1e-9


def test_rot6d_official_layout_columns():
    # the official layout reads (a1, a2) as the first two *columns*
    R = Rotation.random(10, random_state=1).as_matrix()
    six = torch.from_numpy(np.concatenate([R[:, :, 0], R[:, :, 1]], axis=-1))
    np.testing.assert_allclose(geometry.rot6d_to_rotmat(six).numpy(), R, atol=1e-12)
    np.testing.assert_allclose(geometry.rotmat_to_rot6d(torch.from_numpy(R)).numpy(), six.numpy())


def test_rot6d_gram_schmidt_gives_rotations():
    out = geometry.rot6d_to_rotmat(torch.randn(5, 7, 6, dtype=D))
    assert out.shape == (5, 7, 3, 3)
    eye = torch.eye(3, dtype=D).expand_as(out)
    torch.testing.assert_close(out @ out.transpose(-1, -2), eye, atol=1e-10, rtol=0)
    torch.testing.assert_close(torch.linalg.det(out), torch.ones(5, 7, dtype=D))


def test_flips_are_mirror_images():
    vecs = torch.from_numpy(random_rotvecs(16))
    flipped = geometry.axis_angle_to_rotmat(geometry.flip_axis_angle(vecs))
    torch.testing.assert_close(flipped, geometry.flip_rotmat(geometry.axis_angle_to_rotmat(vecs)))
    M = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=D))
    R = geometry.axis_angle_to_rotmat(vecs)
    torch.testing.assert_close(geometry.flip_rotmat(R), M @ R @ M)


def test_shape_errors_name_the_shape():
    with pytest.raises(ValueError, match=r"\(\.\.\., 6\); got \(2, 5\)"):
        geometry.rot6d_to_rotmat(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\); got \(2, 3\)"):
        geometry.rotmat_to_axis_angle(torch.zeros(2, 3))


def test_crop_camera_translation_official_formula():
    cam = torch.tensor([[0.8, 0.1, -0.2]])
    t = cameras.crop_cam_to_translation(cam)
    torch.testing.assert_close(t, torch.tensor([[0.1, -0.2, 2 * 5000 / (256 * 0.8 + 1e-9)]]))


def test_crop_and_full_image_cameras_project_to_the_same_pixels():
    """Crop projection mapped to the image equals the full-image projection.

    Exact for points at the root's depth (the conversion is weak-perspective by construction).
    """
    rng = np.random.default_rng(3)
    points = torch.from_numpy(rng.normal(scale=0.3, size=(1, 20, 3)))
    points[..., 2] = 0.0
    cam = torch.tensor([[0.9, 0.05, -0.1]], dtype=D)
    center, size = torch.tensor([[700.0, 380.0]], dtype=D), torch.tensor([300.0], dtype=D)
    image = torch.tensor([[1280.0, 720.0]], dtype=D)
    crop_t = cameras.crop_cam_to_translation(cam)
    in_crop = cameras.perspective_projection(
        points, crop_t, focal_length=5000.0, principal_point=torch.tensor([[128.0, 128.0]], dtype=D)
    )
    via_crop = (in_crop - 128.0) / 256.0 * size[:, None, None] + center[:, None]
    focal = 5000.0 * size / 256.0  # the full-image focal length matching the crop's
    full_t = cameras.cam_crop_to_full(cam, center, size, image, focal_length=focal)
    direct = cameras.perspective_projection(
        points, full_t, focal_length=focal, principal_point=image / 2
    )
    torch.testing.assert_close(direct, via_crop, atol=1e-6, rtol=0)


def test_cam_crop_to_full_default_focal_and_numpy_inputs():
    cam, center, size = np.array([[1.0, 0.0, 0.0]]), np.array([[640.0, 360.0]]), np.array([256.0])
    image = np.array([[1280.0, 720.0]])
    t = cameras.cam_crop_to_full(cam, center, size, image)
    assert isinstance(t, np.ndarray)
    focal = 5000 / 256 * 1280
    np.testing.assert_allclose(t, [[0.0, 0.0, 2 * focal / 256]], rtol=1e-9)


def test_projection_with_user_intrinsics_and_rotation():
    K = torch.tensor([[1000.0, 0, 320], [0, 1100.0, 240], [0, 0, 1]])
    R = geometry.axis_angle_to_rotmat(torch.tensor([0.0, np.pi / 2, 0.0]))
    p = torch.tensor([[[0.0, 0.0, -2.0]]])  # rotated to (-2, 0, 0) then shifted to depth 4
    out = cameras.perspective_projection(p, torch.tensor([[0.0, 0.0, 4.0]]), K, rotation=R)
    torch.testing.assert_close(out, torch.tensor([[[320 - 1000 * 2 / 4, 240.0]]]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs K"):
        cameras.perspective_projection(p)


def test_numpy_arrays_go_through_the_same_rotation_helpers():
    vecs = random_rotvecs(8)
    R = geometry.axis_angle_to_rotmat(vecs)
    assert isinstance(R, np.ndarray) and R.dtype == np.float64 and R.shape == (8, 3, 3)
    np.testing.assert_allclose(R, Rotation.from_rotvec(vecs).as_matrix(), atol=1e-12)
    back = geometry.rotmat_to_axis_angle(R)
    assert isinstance(back, np.ndarray)
    np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(), R, atol=1e-12)
    np.testing.assert_array_equal(geometry.flip_axis_angle(np.array([0.1, 0.2, -0.3])),
                                  [0.1, -0.2, 0.3])
    quarter = geometry.axis_angle_to_rotmat(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(quarter, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-15)


def test_every_helper_on_deeper_batches_against_scipy():
    vecs = random_rotvecs(18, seed=5).reshape(2, 3, 3, 3)  # a leading dim of 3 as well
    R = geometry.axis_angle_to_rotmat(torch.from_numpy(vecs))
    assert R.shape == (2, 3, 3, 3, 3)
    expected = Rotation.from_rotvec(vecs.reshape(-1, 3)).as_matrix().reshape(2, 3, 3, 3, 3)
    np.testing.assert_allclose(R.numpy(), expected, atol=1e-12)
    six = geometry.rotmat_to_rot6d(R)
    assert six.shape == (2, 3, 3, 6)
    torch.testing.assert_close(six[..., :3], R[..., :, 0])
    torch.testing.assert_close(geometry.rot6d_to_rotmat(six), R, atol=1e-12, rtol=0)
    back = geometry.rotmat_to_axis_angle(R)
    np.testing.assert_allclose(
        Rotation.from_rotvec(back.reshape(-1, 3).numpy()).as_matrix().reshape(R.shape), expected,
        atol=1e-12)
    quat = geometry.rotmat_to_quaternion(R)
    assert quat.shape == (2, 3, 3, 4)
    scipy_wxyz = Rotation.from_matrix(expected.reshape(-1, 3, 3)).as_quat()[:, [3, 0, 1, 2]]
    scipy_wxyz *= np.sign(scipy_wxyz[:, :1])
    np.testing.assert_allclose(quat.reshape(-1, 4).numpy(), scipy_wxyz, atol=1e-12)
    torch.testing.assert_close(quat.norm(dim=-1), torch.ones(2, 3, 3, dtype=D))


def test_hand_computed_rotations_and_the_half_turn():
    half_turn_x = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=D))
    torch.testing.assert_close(geometry.rotmat_to_quaternion(half_turn_x),
                               torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=D))
    torch.testing.assert_close(geometry.rotmat_to_axis_angle(half_turn_x),
                               torch.tensor([np.pi, 0.0, 0.0], dtype=D))
    quarter_z = geometry.axis_angle_to_rotmat(torch.tensor([0.0, 0.0, np.pi / 2], dtype=D))
    torch.testing.assert_close(quarter_z, torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]],
                                                       dtype=D), atol=1e-15, rtol=0)
    six = torch.tensor([2.0, 0.0, 0.0, 1.0, 3.0, 0.0], dtype=D)  # not unit, not orthogonal
    torch.testing.assert_close(geometry.rot6d_to_rotmat(six), torch.eye(3, dtype=D))


def test_tiny_angles_use_the_series_to_the_last_digits():
    for angle in (7e-5, 3e-6):
        vec = np.array([angle, -0.5 * angle, 0.3 * angle])
        R = geometry.axis_angle_to_rotmat(torch.tensor(vec))
        np.testing.assert_allclose(R.numpy(), Rotation.from_rotvec(vec).as_matrix(), atol=3e-16,
                                   rtol=0)
        np.testing.assert_allclose(geometry.rotmat_to_axis_angle(R).numpy(), vec, rtol=1e-9)


def test_shape_errors_name_function_and_shape():
    for function, bad, expects in ((geometry.axis_angle_to_rotmat, (2, 4), r"\(\.\.\., 3\)"),
                                   (geometry.flip_axis_angle, (5, 2), r"\(\.\.\., 3\)"),
                                   (geometry.rot6d_to_rotmat, (1, 7), r"\(\.\.\., 6\)")):
        with pytest.raises(ValueError, match=rf"^{function.__name__} expects {expects}; got "
                                             rf"\({bad[0]}, {bad[1]}\)$"):
            function(torch.zeros(bad))
    with pytest.raises(ValueError, match=r"^expected rotation matrices of shape \(\.\.\., 3, 3\); "
                                         r"got \(3, 2\)$"):
        geometry.flip_rotmat(torch.zeros(3, 2))


def test_the_series_branch_pins_its_second_coefficient():
    """About (1, 1, 0) the entry (0, 1) of R is b * theta^2 / 2 with no sin term: exactly
    sin(theta / 2)^2, so (1 - cos t) / t^2 = 1/2 - t^2/24 shows to the last digits."""
    for angle in (9e-5, 5e-5):  # theta^2 below 1e-8: the Taylor branch
        vec = angle * np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)
        R = geometry.axis_angle_to_rotmat(torch.tensor(vec, dtype=D))
        assert R[0, 1].item() == pytest.approx(np.sin(angle / 2) ** 2, rel=1e-14, abs=0)
        # and the entry (2, 0) is a * (-y) with no b term: -sin(theta) / sqrt(2)
        expected = -np.sin(angle) / np.sqrt(2.0)
        assert R[2, 0].item() == pytest.approx(expected, rel=1e-14, abs=0)


def test_rotations_keep_a_low_precision_dtype():
    vec = torch.tensor([[0.3, -0.2, 0.1]], dtype=torch.bfloat16)
    R = geometry.axis_angle_to_rotmat(vec)
    assert R.dtype == torch.bfloat16
    expected = Rotation.from_rotvec(vec.double().numpy()).as_matrix()
    np.testing.assert_allclose(R.double().numpy(), expected, atol=2e-2)


def test_below_1e8_the_axis_angle_is_read_off_the_quaternion_exactly():
    vec = np.array([3e-9, -1e-9, 2e-9])  # norm below 1e-8: 2 / w in place of angle / norm
    R = geometry.axis_angle_to_rotmat(torch.tensor(vec, dtype=D))
    np.testing.assert_allclose(geometry.rotmat_to_axis_angle(R).numpy(), vec, rtol=1e-12, atol=0)
