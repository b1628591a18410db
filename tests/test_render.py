"""OpenCV mesh renderer: projection, depth order, culling, shading, alpha, skeleton."""

import numpy as np
import pytest

from extpose_sdk.render import Camera, draw_skeleton, rasterize, render_mesh


def _square(z, half=0.5, x=0.0):
    """Two triangles facing the camera (outward normal towards -z) at depth z."""
    v = np.array([[x - half, -half, z], [x + half, -half, z], [x + half, half, z],
                  [x - half, half, z]])
    return v, np.array([[0, 2, 1], [0, 3, 2]])


def test_camera_projects_pinhole():
    cam = Camera.of(100.0, image_size=(64, 80))
    np.testing.assert_allclose(cam.project([[0.1, -0.2, 2.0]]), [[40 + 5, 32 - 10]])


def test_nearer_face_wins_whatever_the_input_order():
    far_v, far_f = _square(4.0, half=1.0)
    near_v, near_f = _square(2.0, half=0.2)
    for first_near in (True, False):
        parts = [(near_v, near_f), (far_v, far_f)]
        if not first_near:
            parts = parts[::-1]
        vertices = np.concatenate([parts[0][0], parts[1][0]])
        faces = np.concatenate([parts[0][1], parts[1][1] + 4])
        buffer = rasterize(vertices, faces, Camera.of(100.0, image_size=(64, 64)), (64, 64))
        near_ids = {0, 1} if first_near else {2, 3}
        assert buffer[32, 32] in near_ids  # centre: the near square
        assert buffer[32, 12] not in near_ids and buffer[32, 12] >= 0  # the far one around it
        assert buffer[0, 0] == -1


def test_back_faces_are_culled_and_shading_follows_normal():
    v, f = _square(3.0)
    image = np.full((32, 32, 3), 7, np.uint8)
    front = render_mesh(image, v, f, focal=40.0, color=(200, 200, 200), light=(0, 0, 1))
    back = render_mesh(image, v, f[:, ::-1], focal=40.0, color=(200, 200, 200))
    assert front[16, 16, 0] == 200  # facing the light: full colour
    assert (back == 7).all()  # culled
    tilted = v.copy()
    tilted[[1, 2], 2] += 0.8  # turn away from the light: darker
    shaded = render_mesh(image, tilted, f, focal=40.0, color=(200, 200, 200), light=(0, 0, 1))
    assert 7 < shaded[16, 14, 0] < 200


def test_alpha_blends_and_wireframe_draws_edges():
    v, f = _square(3.0)
    image = np.zeros((32, 32, 3), np.uint8)
    half = render_mesh(image, v, f, focal=40.0, color=(200, 200, 200), light=(0, 0, 1), alpha=0.5)
    assert half[16, 16, 0] == 100
    wire = render_mesh(image, v, f, focal=40.0, color=(200, 200, 200), light=(0, 0, 1),
                       wireframe=True, wire_color=(0, 0, 0))
    full = render_mesh(image, v, f, focal=40.0, color=(200, 200, 200), light=(0, 0, 1))
    assert (wire[..., 0] < full[..., 0]).sum() > 20  # the edges, the diagonal among them
    with pytest.raises(ValueError, match=r"expected shape \(F, 3\)"):
        render_mesh(image, v, f[:, :2])


def test_draw_skeleton_hides_low_confidence():
    image = np.zeros((40, 40, 3), np.uint8)
    points = np.array([[5, 20, 1.0], [35, 20, 1.0], [20, 35, 0.0]])
    out = draw_skeleton(image, points, [(0, 1), (1, 2)], colors=(0, 255, 0), radius=0)
    assert out[20, 20, 1] > 0
    assert out[30, 25].max() == 0
