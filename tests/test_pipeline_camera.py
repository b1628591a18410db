"""The pipeline's camera and mirroring, against the formulas written out by hand.

A stand-in model gives known crop cameras and parameters that change with the frame's place in
its window, and a stand-in body model gives known joints; the full-image translation, the
mirroring of a left hand back (camera and mesh) and the projected keypoints are then computed
here from the box, the crop's enlargement and the camera, on a non-square image.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from extpose_sdk.cameras import Camera  # noqa: E402
from extpose_sdk.keypoints import Keypoints  # noqa: E402
from extpose_sdk.pipeline import Pipeline  # noqa: E402
from extpose_sdk.plugins import get_registries  # noqa: E402

H, W = 150, 260  # non-square
RIGHT_BOX = [60.0, 30.0, 100.0, 90.0]  # 40 x 60: taller than 4:3, so its crop side is its height
LEFT_BOX = [170.0, 40.0, 210.0, 100.0]
BASE_JOINTS = torch.tensor([[0.02, 0.01, 0.0], [-0.03, 0.04, 0.01], [0.05, -0.02, -0.02]])


def crop_cam(t: int) -> np.ndarray:
    """The stand-in's crop camera (s, tx, ty) at place ``t`` of its window."""
    return np.array([0.8 + 0.1 * t, 0.1 + 0.05 * t, -0.2 + 0.03 * t])


def betas(t: int) -> np.ndarray:
    return 0.001 * (np.arange(10) + 10 * t)


class KnownOutputs(torch.nn.Module):
    """Outputs known in advance, different at each place of the window (and for a body)."""

    def __init__(self, pose_key: str = "hand_pose", joints: int = 15) -> None:
        super().__init__()
        self.pose_key, self.joints = pose_key, joints

    def forward(self, inputs, present=None):
        b, t = inputs["rgb"].shape[:2]
        cams = torch.tensor(np.stack([crop_cam(i) for i in range(t)]), dtype=torch.float32)
        shape = torch.tensor(np.stack([betas(i) for i in range(t)]), dtype=torch.float32)
        pose = 0.01 * torch.arange(t * self.joints * 9, dtype=torch.float32)
        return SimpleNamespace(**{
            "global_orient": torch.eye(3).expand(b, t, 1, 3, 3) * 2.0,
            self.pose_key: pose.reshape(1, t, self.joints, 3, 3).expand(b, -1, -1, -1, -1),
            "betas": shape.expand(b, t, 10),
            "pred_cam": cams.expand(b, t, 3),
        })


class ShiftedJoints:
    """A body model whose joints are fixed points moved by betas[:3] (vertices: by betas[3:6]),
    asymmetric in x, so a mirror shows."""

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, **params):
        self.calls.append(params)
        shape = params["betas"].float()
        return SimpleNamespace(joints=BASE_JOINTS[None] + shape[:, None, :3],
                               vertices=2 * BASE_JOINTS[None] + shape[:, None, 3:6])


def pipeline(**options) -> Pipeline:
    options.setdefault("subject", "hand")
    return Pipeline(model=KnownOutputs(), body_model=ShiftedJoints(),
                    modalities={"rgb": get_registries().modality.build("rgb")}, name="known",
                    **options)


def hand_keypoints(boxes, is_right):
    points = np.ones((len(boxes), 21, 3), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        points[i, :, :2] = np.linspace([x1, y1], [x2, y2], 21)
    return Keypoints(points, "openpose_hand21", boxes=np.array(boxes), is_right=is_right)


def expected_cam_t(pred_cam, box, side, fx, fy, cx, cy):
    """Written out: the crop of side ``side`` centred on the box saw the origin at
    centre + (tx, ty) * s * side / 2, with s * side / 2 pixels per metre at depth
    (fx + fy) / (s * side); the origin is put on the ray through that pixel."""
    s, tx, ty = pred_cam
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    tz = (fx + fy) / (s * side)
    u, v = centre_x + tx * s * side / 2, centre_y + ty * s * side / 2
    return np.array([(u - cx) * tz / fx, (v - cy) * tz / fy, tz])


def expected_pixels(joints, cam_t, fx, fy, cx, cy):
    p = joints + cam_t
    return np.stack([fx * p[:, 0] / p[:, 2] + cx, fy * p[:, 1] / p[:, 2] + cy], -1)


def test_a_right_and_a_left_hand_by_hand_with_a_users_camera():
    camera = Camera(700.0, 760.0, 135.0, 70.0)
    image = np.full((H, W, 3), 90, np.uint8)
    run = pipeline(camera=camera)
    right = run(image, keypoints=hand_keypoints([RIGHT_BOX], [True]))[0].people[0]
    left = run(image, keypoints=hand_keypoints([LEFT_BOX], [False]))[0].people[0]
    assert (right.is_right, left.is_right) == (True, False)
    # the model saw the left hand mirrored: its crop camera's tx is mirrored back
    np.testing.assert_allclose(right.pred_cam, crop_cam(0), rtol=1e-6)
    np.testing.assert_allclose(left.pred_cam, crop_cam(0) * [1, -1, 1], rtol=1e-6)
    side = 2.0 * 60  # the hand's crop_rescale (2.0) times the box height
    for person, box in ((right, RIGHT_BOX), (left, LEFT_BOX)):
        cam_t = expected_cam_t(person.pred_cam.astype(np.float64), box, side, 700, 760, 135, 70)
        np.testing.assert_allclose(person.cam_t, cam_t, rtol=1e-6)
        np.testing.assert_array_equal(person.box, box)
    assert left.cam_t[0] > 0 > right.cam_t[0]  # right of the principal point / left of it
    # the mesh of the left hand is mirrored back (x -> -x); the right hand's is as given
    joints = BASE_JOINTS.numpy() + betas(0)[:3].astype(np.float32)
    vertices = 2 * BASE_JOINTS.numpy() + betas(0)[3:6].astype(np.float32)
    np.testing.assert_allclose(right.joints_3d, joints, rtol=1e-6)
    np.testing.assert_allclose(left.joints_3d, joints * [-1, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(right.vertices, vertices, rtol=1e-6)
    np.testing.assert_allclose(left.vertices, vertices * [-1, 1, 1], rtol=1e-6)
    assert right.vertices.dtype == left.joints_3d.dtype == np.float32
    for person in (right, left):
        pixels = expected_pixels(person.joints_3d.astype(np.float64), person.cam_t, 700, 760,
                                 135, 70)
        np.testing.assert_allclose(person.keypoints_2d, pixels, rtol=1e-5)
    # the parameters are the model's, as it gave them, for both hands
    for person in (right, left):
        assert set(person.params) == {"global_orient", "hand_pose", "betas"}
        np.testing.assert_allclose(person.params["betas"], betas(0), rtol=1e-6)
        np.testing.assert_array_equal(person.params["global_orient"], 2 * np.eye(3)[None])
        np.testing.assert_allclose(person.params["hand_pose"].reshape(-1),
                                   0.01 * np.arange(15 * 9), rtol=1e-6)


def test_the_default_camera_and_a_focal_length_place_the_hand_by_the_same_rule():
    image = np.full((H, W, 3), 90, np.uint8)
    keypoints = hand_keypoints([LEFT_BOX], [False])
    default = pipeline()(image, keypoints=keypoints)[0].people[0]
    focal = 5000 / 256 * max(H, W)  # HMR2.0 / HaMeR's assumption, principal point at the centre
    cam_t = expected_cam_t(crop_cam(0) * [1, -1, 1], LEFT_BOX, 120, focal, focal, W / 2, H / 2)
    np.testing.assert_allclose(default.cam_t, cam_t, rtol=1e-6)
    np.testing.assert_allclose(default.keypoints_2d, expected_pixels(
        default.joints_3d.astype(np.float64), default.cam_t, focal, focal, W / 2, H / 2),
        rtol=1e-5)
    given = pipeline(camera=900.0)(image, keypoints=keypoints)[0].people[0]
    cam_t = expected_cam_t(crop_cam(0) * [1, -1, 1], LEFT_BOX, 120, 900, 900, W / 2, H / 2)
    np.testing.assert_allclose(given.cam_t, cam_t, rtol=1e-6)
    np.testing.assert_allclose(given.keypoints_2d, expected_pixels(
        given.joints_3d.astype(np.float64), given.cam_t, 900, 900, W / 2, H / 2), rtol=1e-5)


def test_the_crop_enlargement_enters_the_translation():
    image = np.full((H, W, 3), 90, np.uint8)
    camera = Camera(700.0, 700.0, W / 2, H / 2)
    keypoints = hand_keypoints([RIGHT_BOX], [True])
    cases = (
        (pipeline(camera=camera), dict(keypoints=keypoints), 2.0 * 60),  # the hand's 2.0
        (pipeline(camera=camera, rescale=1.5), dict(keypoints=keypoints), 1.5 * 60),
        (pipeline(camera=camera, rescale=1.5), dict(boxes=[RIGHT_BOX]), 60),  # boxes: as given
        (pipeline(camera=camera, subject="body"), dict(boxes=[RIGHT_BOX]), 60),
    )
    for p, inputs, side in cases:
        person = p(image, **inputs)[0].people[0]
        cam_t = expected_cam_t(crop_cam(0), RIGHT_BOX, side, 700, 700, W / 2, H / 2)
        np.testing.assert_allclose(person.cam_t, cam_t, rtol=1e-6)
    # no keypoints, no boxes: the whole frame (W - 1 x H - 1, widened to 4:3) and no mirroring
    whole = pipeline(camera=camera)(image)[0].people[0]
    side = max(H - 1.0, (W - 1.0) * 4 / 3)
    box = [0.0, 0.0, W - 1.0, H - 1.0]
    np.testing.assert_allclose(whole.cam_t, expected_cam_t(crop_cam(0), box, side, 700, 700,
                                                           W / 2, H / 2), rtol=1e-6)
    np.testing.assert_allclose(whole.pred_cam, crop_cam(0), rtol=1e-6)
    np.testing.assert_allclose(whole.joints_3d, BASE_JOINTS.numpy() + betas(0)[:3], rtol=1e-6)


def test_a_body_is_never_mirrored_and_reports_its_body_pose():
    model = KnownOutputs(pose_key="body_pose", joints=23)
    camera = Camera(700.0, 700.0, W / 2, H / 2)
    p = Pipeline(model=model, body_model=ShiftedJoints(), subject="body", camera=camera,
                 modalities={"rgb": get_registries().modality.build("rgb")})
    points = np.ones((1, 17, 3), np.float32)
    points[0, :, :2] = np.linspace(RIGHT_BOX[:2], RIGHT_BOX[2:], 17)
    keypoints = Keypoints(points, "coco17", boxes=np.array([RIGHT_BOX]), is_right=[False])
    person = p(np.full((H, W, 3), 90, np.uint8), keypoints=keypoints)[0].people[0]
    assert set(person.params) == {"global_orient", "body_pose", "betas"}
    np.testing.assert_allclose(person.pred_cam, crop_cam(0), rtol=1e-6)  # not mirrored
    np.testing.assert_allclose(person.joints_3d, BASE_JOINTS.numpy() + betas(0)[:3], rtol=1e-6)
    side = 1.2 * 60  # the body's crop_rescale
    np.testing.assert_allclose(person.cam_t, expected_cam_t(crop_cam(0), RIGHT_BOX, side, 700,
                                                            700, W / 2, H / 2), rtol=1e-6)


def test_each_frame_takes_its_own_place_in_the_window_and_one_body_model_run():
    frames = np.full((3, H, W, 3), 90, np.uint8)
    body_model = ShiftedJoints()
    p = pipeline(frames=3, overlap=0, camera=Camera(700.0, 760.0, 135.0, 70.0))
    p.body_model = body_model
    keypoints = [hand_keypoints([RIGHT_BOX, LEFT_BOX], [True, False]) for _ in range(3)]
    results = p.video(frames, keypoints=keypoints)
    assert len(body_model.calls) == 1  # one window: every person of it in one run
    assert body_model.calls[0]["betas"].shape == (6, 10)
    for t, frame in enumerate(results.frames):
        right, left = sorted(frame.people, key=lambda person: not person.is_right)
        np.testing.assert_allclose(right.pred_cam, crop_cam(t), rtol=1e-6)
        np.testing.assert_allclose(left.pred_cam, crop_cam(t) * [1, -1, 1], rtol=1e-6)
        np.testing.assert_allclose(right.params["betas"], betas(t), rtol=1e-6)
        joints = BASE_JOINTS.numpy() + betas(t)[:3].astype(np.float32)
        np.testing.assert_allclose(left.joints_3d, joints * [-1, 1, 1], rtol=1e-6)
        for person, box in ((right, RIGHT_BOX), (left, LEFT_BOX)):
            cam_t = expected_cam_t(person.pred_cam.astype(np.float64), box, 120, 700, 760, 135,
                                   70)
            np.testing.assert_allclose(person.cam_t, cam_t, rtol=1e-6)


def test_mirroring_is_for_left_hands_of_a_right_hand_subject_only():
    hand, body = Pipeline(model=None, modalities={}, subject="hand"), Pipeline(
        model=None, modalities={}, subject="body")
    assert [hand._mirrored(side) for side in (True, False, None)] == [False, True, False]
    assert [body._mirrored(side) for side in (True, False, None)] == [False, False, False]
    assert (hand._rescale(True), hand._rescale(False)) == (2.0, 1.0)
    assert (body._rescale(True), body._rescale(False)) == (1.2, 1.0)
    given = Pipeline(model=None, modalities={}, subject="hand", rescale=1.5)
    assert (given._rescale(True), given._rescale(False)) == (1.5, 1.0)



class NoCamera(KnownOutputs):
    """A head that gives parameters but no crop camera."""

    def forward(self, inputs, present=None):
        outputs = super().forward(inputs, present)
        del outputs.pred_cam
        return outputs


def test_a_model_without_a_camera_gives_a_mesh_but_no_placement():
    p = pipeline()
    p.model = NoCamera()
    person = p(np.full((H, W, 3), 90, np.uint8),
               keypoints=hand_keypoints([LEFT_BOX], [False]))[0].people[0]
    assert person.pred_cam is None and person.cam_t is None and person.keypoints_2d is None
    joints = BASE_JOINTS.numpy() + betas(0)[:3].astype(np.float32)
    np.testing.assert_allclose(person.joints_3d, joints * [-1, 1, 1], rtol=1e-6)


def test_every_person_of_one_image_is_reported():
    """Images run one by one are untracked (track id -1); each person is still its own run
    (all but one were dropped when people were grouped by track id)."""
    image = np.full((H, W, 3), 90, np.uint8)
    results = pipeline()(image, keypoints=hand_keypoints([RIGHT_BOX, LEFT_BOX], [True, False]))
    people = results[0].people
    assert [person.is_right for person in people] == [True, False]
    assert [person.track_id for person in people] == [-1, -1]
    np.testing.assert_allclose([person.box for person in people], [RIGHT_BOX, LEFT_BOX])
