"""The user's camera: intrinsics from a file or a focal length, used for full-image translations,
projections and overlays instead of HMR2.0 / HaMeR's fixed focal, and recorded in the results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from extpose_sdk.cameras import (
    Camera,
    cam_crop_to_full,
    camera_for,
    describe_camera,
    full_image_cam_t,
    project_full_image,
)


def test_intrinsics_are_read_from_json_as_numbers_or_a_matrix(tmp_path):
    numbers = tmp_path / "camera.json"
    numbers.write_text(json.dumps({"fx": 500, "fy": 400.5, "cx": 90, "cy": 70}))
    assert Camera.read(numbers) == Camera(500.0, 400.5, 90.0, 70.0)
    matrix = tmp_path / "K.json"
    matrix.write_text(json.dumps({"K": [[500, 0, 90], [0, 400.5, 70], [0, 0, 1]]}))
    assert Camera.read(matrix) == Camera(500.0, 400.5, 90.0, 70.0)


@pytest.mark.parametrize("content, message", [
    ({"fx": 500, "fy": 400, "cx": 90}, "KeyError: 'cy'"),
    ({"K": [[500, 0], [0, 400]]}, r"K has shape \(2, 2\)"),
    ({"fx": -5, "fy": 400, "cx": 90, "cy": 70}, "positive finite focal"),
    ({"fx": "wide", "fy": 400, "cx": 90, "cy": 70}, "could not convert"),
    ([500, 400, 90, 70], "fx, fy, cx, cy"),
])
def test_a_bad_intrinsics_file_names_itself_and_the_expected_format(tmp_path, content, message):
    path = tmp_path / "camera.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as error:
        Camera.read(path)
    assert str(path) in str(error.value) and "3 x 3 K" in str(error.value)
    with pytest.raises(FileNotFoundError, match="no such intrinsics file"):
        Camera.read(tmp_path / "missing.json")


def test_the_camera_of_an_image_is_the_users_a_focal_length_or_the_official_one():
    assert camera_for(None, (100, 300)) == Camera(5000 / 256 * 300, 5000 / 256 * 300, 150, 50)
    assert camera_for(800.0, (100, 300)) == Camera(800.0, 800.0, 150.0, 50.0)
    mine = Camera(500.0, 400.0, 90.0, 70.0)
    assert camera_for(mine, (100, 300)) is mine
    assert describe_camera(None)["source"] == "default"
    assert describe_camera(800.0) == {"source": "user", "focal_length": 800.0,
                                      "principal_point": "image centre"}
    assert describe_camera(mine) == {"source": "user", "fx": 500.0, "fy": 400.0, "cx": 90.0,
                                     "cy": 70.0}


def test_the_full_image_translation_with_a_users_camera_by_hand():
    box = [80.0, 20.0, 140.0, 100.0]  # centre (110, 60); crop side max(80, 4/3 * 60) = 80
    pred_cam = [2.0, 0.1, -0.05]
    camera = Camera(500.0, 400.0, 90.0, 70.0)
    # depth (fx + fy) / (side * s) = 5.625; the crop saw the origin at (118, 56)
    t = full_image_cam_t(pred_cam, box, (120, 200), 1.0, camera)
    np.testing.assert_allclose(t, [(118 - 90) * 5.625 / 500, (56 - 70) * 5.625 / 400, 5.625],
                               rtol=1e-6)
    np.testing.assert_allclose(project_full_image(np.zeros((1, 3)), t, (120, 200), camera),
                               [[118.0, 56.0]], atol=1e-4)
    # no camera: exactly the official conversion
    official = cam_crop_to_full(np.array(pred_cam), np.array([110.0, 60.0]), 80.0,
                                np.array([200.0, 120.0]))
    np.testing.assert_allclose(full_image_cam_t(pred_cam, box, (120, 200), 1.0), official,
                               rtol=1e-6)


def test_with_the_true_camera_the_synthetic_scene_translation_is_recovered():
    """A synthetic frame with a known camera (focal 1.2 x 256 px). The crop camera a perfect
    model would predict for it, turned back into a full-image translation: with the true
    intrinsics it is the truth; with the default focal (5000 px) the depth is 16x too far."""
    from extpose_sdk.datasets.synthetic import SyntheticDataset

    data = SyntheticDataset(split="test", kind="hand", num_sequences=1, sequence_length=1,
                            image_size=(256, 256), augment=False, seed=4)
    (frame,) = data.render(0, [0])
    truth = frame.labels["transl"]  # the body model's origin in the camera frame
    box = frame.box
    true_camera = Camera.of(data.focal, image_size=(256, 256))
    centre = (box[:2] + box[2:]) / 2
    from extpose_sdk.data.crops import bbox_size_of, box_to_center_scale

    side = bbox_size_of(box_to_center_scale(box)[1])
    # what the crop sees: the origin's pixel, and the scale in pixels per metre at its depth
    u, v = true_camera.project(truth)
    s = 2 * data.focal / (side * truth[2])
    pred_cam = [s, (u - centre[0]) * 2 / (s * side), (v - centre[1]) * 2 / (s * side)]
    recovered = full_image_cam_t(pred_cam, box, (256, 256), 1.0, true_camera)
    default = full_image_cam_t(pred_cam, box, (256, 256), 1.0)
    np.testing.assert_allclose(recovered, truth, rtol=1e-5, atol=1e-6)
    error_user = np.linalg.norm(recovered - truth)
    error_default = np.linalg.norm(default - truth)
    assert error_default > 1000 * max(error_user, 1e-6)  # the stated factor: 1000x closer
    assert default[2] / truth[2] == pytest.approx(5000 / data.focal, rel=1e-5)


def test_the_pipeline_uses_the_camera_and_the_mesh_lands_where_the_crop_saw_it():
    """Only the 3D placement depends on the camera: the projected joints stay where the crop
    saw them (to within perspective), and results record the camera."""
    import torch

    from extpose_sdk import Pipeline

    tiny = dict(embed_dim=32, depth=1, num_heads=2, head_dim=32, head_depth=1, head_heads=2,
                head_dim_head=8, head_mlp_dim=16)
    from extpose_sdk.datasets.synthetic import synthetic_model_path

    mano = str(synthetic_model_path("hand"))
    image = np.full((240, 320, 3), 120, np.uint8)
    boxes = np.array([[100.0, 60.0, 180.0, 160.0]])
    runs = {}
    for name, camera in (("default", None), ("user", Camera(600.0, 650.0, 170.0, 110.0))):
        torch.manual_seed(0)
        pipeline = Pipeline.from_plugins(model="extpose-hamer", body_model=mano, camera=camera,
                                         **tiny)
        runs[name] = pipeline(image, boxes=boxes)
    default, user = (runs[n].frames[0].people[0] for n in ("default", "user"))
    assert runs["user"].camera == {"source": "user", "fx": 600.0, "fy": 650.0, "cx": 170.0,
                                   "cy": 110.0}
    assert runs["default"].camera["source"] == "default"
    assert json.loads(runs["user"].to_json())["camera"]["fx"] == 600.0
    np.testing.assert_allclose(default.params["hand_pose"], user.params["hand_pose"])
    assert abs(default.cam_t[2] - user.cam_t[2]) > 0.5 * default.cam_t[2]  # a different depth
    side = 100.0
    assert np.abs(default.keypoints_2d - user.keypoints_2d).max() < 0.1 * side


def test_predict_takes_intrinsics_or_a_focal_length_and_records_them(tmp_path, capsys):
    from extpose_sdk.cli import main

    intrinsics = tmp_path / "camera.json"
    intrinsics.write_text(json.dumps({"fx": 300, "fy": 310, "cx": 128, "cy": 120}))
    out = tmp_path / "out"
    assert main(["predict", "--sample", "--out", str(out), "--intrinsics", str(intrinsics)]) == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["camera"] == {"source": "user", "fx": 300.0, "fy": 310.0, "cx": 128.0,
                               "cy": 120.0}
    assert main(["predict", "--sample", "--out", str(tmp_path / "f"), "--focal-length",
                 "307.2"]) == 0
    saved = json.loads((tmp_path / "f" / "results.json").read_text())
    assert saved["camera"]["focal_length"] == 307.2
    capsys.readouterr()
    assert main(["predict", "--sample", "--out", str(tmp_path / "bad"), "--focal-length",
                 "-3"]) == 1
    assert "--focal-length must be a positive number of pixels" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one camera or the other
        main(["predict", "--sample", "--focal-length", "300", "--intrinsics", str(intrinsics)])


def test_a_focal_length_must_be_above_zero_and_may_be_below_one():
    for fx, fy in ((0.0, 400.0), (500.0, 0.0), (-1.0, 400.0), (500.0, float("nan"))):
        with pytest.raises(ValueError, match=rf"^a camera needs positive finite focal lengths "
                                             rf"and a finite principal point; got fx={fx}, "):
            Camera(fx, fy, 90.0, 70.0)
    small = Camera(0.5, 0.75, 0.5, 0.5)  # a camera in normalised units: focal below 1 px
    assert (small.fx, small.fy) == (0.5, 0.75)
    with pytest.raises(ValueError, match="principal point"):
        Camera(500.0, 400.0, float("inf"), 70.0)


def test_camera_of_a_focal_needs_a_principal_point_or_an_image_size():
    with pytest.raises(ValueError, match=r"^Camera\.of needs principal or image_size$"):
        Camera.of(800.0)
    assert Camera.of((800.0, 900.0), (10.0, 20.0)) == Camera(800.0, 900.0, 10.0, 20.0)
    assert Camera.of(800.0, image_size=(100, 300)) == Camera(800.0, 800.0, 150.0, 50.0)


def test_the_default_camera_is_described_in_words():
    assert describe_camera(None) == {"source": "default",
                                     "focal_length": "5000 / 256 * max(W, H)",
                                     "principal_point": "image centre"}


def test_a_matrix_of_integers_gives_a_camera_of_floats_that_json_can_write(tmp_path):
    path = tmp_path / "K.json"
    path.write_text(json.dumps({"K": [[500, 0, 90], [0, 400, 70], [0, 0, 1]]}))
    camera = Camera.read(path)
    assert all(isinstance(v, float) for v in camera.as_dict().values())
    assert json.loads(json.dumps(camera.as_dict())) == {"fx": 500.0, "fy": 400.0, "cx": 90.0,
                                                         "cy": 70.0}


def test_a_cameras_projection_is_float64_and_clamps_points_behind_it():
    camera = Camera(10.0, 20.0, 1.0, 2.0)
    points = np.array([[0.5, -0.25, 2.0]], np.float32)
    out = camera.project(points)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[1 + 10 * 0.25, 2 - 20 * 0.125]], rtol=1e-15)
    behind = camera.project([[0.5, -0.25, -2.0], [0.5, -0.25, 0.0]])  # depth clamped to 1e-9
    np.testing.assert_allclose(behind, [[1 + 5e9, 2 - 5e9]] * 2, rtol=1e-12)
