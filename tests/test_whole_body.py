"""Whole-body prediction: a body model and a hand model run as one, per person and frame, on the
synthetic whole-body sample (the synthetic body with a MANO-format hand at each wrist, and its
COCO-WholeBody-133 keypoints), with tiny random models and the synthetic SMPL / MANO files.

What is pinned: each hand's wrist lands on the body's wrist (placement, in 3D and in the image);
left and right are never swapped (each hand's crop comes from its own side's keypoints, a left
hand's mesh is a left hand: the chirality test fails when the mirroring is dropped); a missing
hand (occluded, out of the image, no keypoints) gives a body-only result with the reason; the
hand fields survive a save / load round trip (.npz, .json, .jsonl); the command runs
``--sample whole``.
"""

from __future__ import annotations

import attrs
import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from extpose_sdk import cli  # noqa: E402
from extpose_sdk.assembly import FitError  # noqa: E402
from extpose_sdk.commands.predict import SAMPLE_OPTIONS  # noqa: E402
from extpose_sdk.datasets.synthetic import (  # noqa: E402
    synthetic_model_path,
    write_whole_body_sample,
)
from extpose_sdk.keypoints import Keypoints  # noqa: E402
from extpose_sdk.keypoints.hands import (  # noqa: E402
    NO_KEYPOINTS,
    OCCLUDED,
    OUT_OF_IMAGE,
    hand_evidence,
)
from extpose_sdk.keypoints.layouts import get_layout  # noqa: E402
from extpose_sdk.pipeline import Pipeline  # noqa: E402
from extpose_sdk.results import load_results  # noqa: E402
from extpose_sdk.subjects import HAND  # noqa: E402
from extpose_sdk.whole_body import WholeBodyPipeline, body_wrist_joint  # noqa: E402

FRAMES = 3
WHOLEBODY = get_layout("coco_wholebody133")
HAND_START = {side: WHOLEBODY.index(f"{side}_hand_wrist") for side in ("left", "right")}
#: How close a placed hand's wrist lies to the body's wrist: 0.1 mm in 3D (float32 arithmetic
#: on translations of tens of metres, random weights), 0.05 px in the image.
WRIST_3D_M, WRIST_2D_PX = 1e-4, 0.05


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whole")
    smpl, mano = synthetic_model_path("body", folder), synthetic_model_path("hand", folder)
    video, keypoints = folder / "whole.mp4", folder / "whole_keypoints.npz"
    frames = write_whole_body_sample(video, frames=FRAMES, keypoints_path=keypoints,
                                     model_path=smpl, hand_model_path=mano)
    return {"video": video, "keypoints": keypoints, "smpl": smpl, "mano": mano,
            "frames": frames, "folder": folder}


def whole_body(sample, **options):
    return Pipeline.from_plugins(model="whole-body", smpl=sample["smpl"], mano=sample["mano"],
                                 frames=2, **SAMPLE_OPTIONS, **options)


@pytest.fixture(scope="module")
def results(sample):
    return whole_body(sample).video(sample["video"], keypoints=sample["keypoints"])


def chirality(joints: np.ndarray) -> float:
    """The sign of the hand's knuckle triangle seen from the thumb: rotations keep it, a mirror
    image flips it (index / pinky base and thumb base from the wrist, OpenPose hand order; their
    positions follow the root only, whatever the finger pose)."""
    wrist = joints[0]
    index, pinky, thumb = joints[5] - wrist, joints[17] - wrist, joints[1] - wrist
    return float(np.sign(np.dot(np.cross(index, pinky), thumb)))


def right_hand_chirality(sample) -> float:
    from extpose_sdk.body_models import load_body_model

    mano = load_body_model("mano", sample["mano"])
    rest = mano(global_orient=torch.zeros(1, 3), hand_pose=torch.zeros(1, 45))
    return chirality(rest.joints[0].numpy())


def test_the_whole_body_option_builds_a_body_and_a_hand_pipeline(sample):
    pipeline = whole_body(sample)
    assert isinstance(pipeline, WholeBodyPipeline)
    assert pipeline.body.subject.name == "body" and pipeline.hand.subject.name == "hand"
    assert pipeline.hand.camera is pipeline.body.camera is None
    with pytest.raises(FitError, match="body_checkpoint= / hand_checkpoint="):
        Pipeline.from_plugins(model="whole-body", checkpoint="hmr2.ckpt")
    with pytest.raises(FitError, match="needs a body \\(SMPL\\) model and a hand \\(MANO\\)"):
        WholeBodyPipeline(pipeline.hand, pipeline.body)


def test_each_hand_lands_on_its_own_wrist_of_the_body(sample, results):
    """On the sample, every person-frame has both hands; each hand's wrist joint is on the
    body's wrist joint of its side (3D, full-image camera frame, and projected), and each hand's
    crop was cut around that side's hand in the image (its box holds the sample's true wrist of
    that side, not the other)."""
    assert len(results) == FRAMES
    for frame, truth in zip(results.frames, sample["frames"], strict=True):
        [person] = frame.people
        assert person.hands_missing == {}
        for side in ("left", "right"):
            hand = getattr(person, f"{side}_hand")
            assert hand.is_right is (side == "right") and hand.track_id == person.track_id
            body_wrist = person.joints_3d[body_wrist_joint(side)] + person.cam_t
            np.testing.assert_allclose(hand.joints_3d[0] + hand.cam_t, body_wrist,
                                       atol=WRIST_3D_M)
            np.testing.assert_allclose(hand.keypoints_2d[0],
                                       person.keypoints_2d[body_wrist_joint(side)],
                                       atol=WRIST_2D_PX)
            assert hand.own_cam_t is not None and not np.allclose(hand.own_cam_t, hand.cam_t)
            # the hand keypoints used are that side's 21 of the 133
            start = HAND_START[side]
            detected = np.load(sample["keypoints"])["keypoints"][frame.index, 0]
            np.testing.assert_allclose(hand.keypoints, detected[start:start + 21], atol=1e-5)
            other = "left" if side == "right" else "right"
            assert _inside(hand.box, _hand_centre(truth, side))
            assert not _inside(hand.box, _hand_centre(truth, other))


def _hand_centre(truth, side):
    """The mean of the true 2D joints of the sample's ``side`` hand."""
    return truth.keypoints[HAND_START[side]:HAND_START[side] + 21, :2].mean(0)


def _inside(box, point) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def test_a_left_hand_is_a_left_hand_and_the_test_fails_without_mirroring(sample, results):
    """A left hand's mesh is the mirror image of a right hand's (HaMeR: the left crop mirrored
    for the right-hand model, the result mirrored back); rotations never change a hand's
    chirality, so a left hand result with a right hand's chirality means the mirroring was
    dropped. Dropping it (a hand subject without ``mirror_left``) makes this check fail."""
    right = right_hand_chirality(sample)
    assert right != 0

    def chiralities(res):
        return {side: {chirality(getattr(p, f"{side}_hand").joints_3d) for p in res.people}
                for side in ("left", "right")}

    assert chiralities(results) == {"left": {-right}, "right": {right}}
    unmirrored = whole_body(sample)
    unmirrored.hand.subject = attrs.evolve(HAND, mirror_left=False)
    dropped = unmirrored.video(sample["video"], keypoints=sample["keypoints"])
    assert chiralities(dropped)["left"] == {right}  # what the check above rejects


def test_each_person_gets_their_own_hands_in_windows_of_each_models_length(sample):
    """Two people (the sample's, and a copy 100 px to the right whose left hand leaves the image)
    after one without a confident point (dropped): every frame once, in order; each person's
    hands are that person's (their keypoints), tracked with them; the body and the hand model
    run in windows of different lengths."""
    detected = np.load(sample["keypoints"])["keypoints"][:, 0]
    shifted = detected.copy()
    shifted[..., 0] += 100
    frames = [Keypoints(np.stack([np.zeros_like(d), d, s]), "coco_wholebody133")
              for d, s in zip(detected, shifted, strict=True)]
    pipeline = whole_body(sample)
    pipeline.body.frames, pipeline.body.overlap = 3, 1
    pipeline.hand.frames, pipeline.hand.overlap = 2, 0
    results = pipeline.video(sample["video"], keypoints=frames)
    assert [f.index for f in results.frames] == list(range(FRAMES))
    tracks = set()
    for frame in results.frames:
        first, second = sorted(frame.people, key=lambda p: p.box[0])
        tracks.add((first.track_id, second.track_id))
        for person, points in ((first, detected[frame.index]), (second, shifted[frame.index])):
            for side, hand in (("left", person.left_hand), ("right", person.right_hand)):
                if hand is None:
                    continue
                assert hand.track_id == person.track_id
                start = HAND_START[side]
                np.testing.assert_allclose(hand.keypoints, points[start:start + 21], atol=1e-5)
        assert first.hands_missing == {} and first.left_hand and first.right_hand
        assert second.hands_missing == {"left": OUT_OF_IMAGE} and second.right_hand
    assert len(tracks) == 1 and len(set(tracks.pop())) == 2  # two stable tracks


def frame_keypoints(sample, frame=0):
    return np.load(sample["keypoints"])["keypoints"][frame, 0].copy()


def read_frame(sample, frame=0):
    capture = cv2.VideoCapture(str(sample["video"]))
    for _ in range(frame + 1):
        ok, image = capture.read()
    capture.release()
    assert ok
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_missing_hands_give_a_body_only_result_with_the_reason(sample):
    pipeline = whole_body(sample)
    image = read_frame(sample)
    width = image.shape[1]
    points = frame_keypoints(sample)
    left = slice(HAND_START["left"], HAND_START["left"] + 21)
    right = slice(HAND_START["right"], HAND_START["right"] + 21)
    body = get_layout("coco17")
    # left hand occluded: its points and the left wrist / elbow seen with low confidence
    points[left, 2] = 0.1
    for joint in ("left_wrist", "left_elbow"):
        points[WHOLEBODY.index(joint), 2] = 0.1
    # right hand out of the image: past the right border
    points[right, 0] += width
    results = pipeline(image, Keypoints(points[None], "coco_wholebody133"))
    [person] = results[0].people
    assert person.hands_missing == {"left": OCCLUDED, "right": OUT_OF_IMAGE}
    assert person.left_hand is None and person.right_hand is None
    assert person.params["body_pose"].shape == (23, 3, 3) and person.vertices is not None

    # body keypoints only (COCO-17): hands from wrist and elbow; a wrist not reported at all
    coco = Keypoints(frame_keypoints(sample)[None], "coco_wholebody133").to("coco17").points
    coco[0, body.index("right_wrist"), 2] = 0.0
    [person] = pipeline(image, Keypoints(coco, "coco17"))[0].people
    assert person.hands_missing == {"right": NO_KEYPOINTS}
    assert person.left_hand is not None and person.right_hand is None
    assert not person.left_hand.keypoints[:, 2].any()  # no hand keypoints: no skeleton image

    # no keypoints and no detector: the whole image is the person, no hand can be placed
    [person] = whole_body(sample, detector=None)(image)[0].people
    assert person.hands_missing == {"left": NO_KEYPOINTS, "right": NO_KEYPOINTS}
    assert person.params and person.track_id == -1


def test_hand_evidence_from_the_keypoints():
    """The hand box: tight around the hand's confident keypoints; else 0.8 forearm wide,
    0.4 forearm beyond the wrist; else missing with the reason."""
    points = np.zeros((133, 3), np.float32)
    hand = slice(HAND_START["left"], HAND_START["left"] + 21)
    points[hand, :2] = np.linspace([50, 60], [70, 90], 21)
    points[hand, 2] = 0.9
    found = hand_evidence(points, "coco_wholebody133", "left", (200, 200))
    assert found.source == "hand keypoints" and found.keypoints.shape == (21, 3)
    np.testing.assert_allclose(found.box, [50, 60, 70, 90])  # tight around the points
    coco = np.zeros((17, 3), np.float32)
    coco[get_layout("coco17").index("right_elbow")] = [100, 100, 1]
    coco[get_layout("coco17").index("right_wrist")] = [100, 150, 1]
    found = hand_evidence(coco, "coco17", "right", (200, 200))
    assert found.source == "wrist and elbow" and found.keypoints is None
    np.testing.assert_allclose(found.box, [80, 150, 120, 190])
    assert hand_evidence(coco, "coco17", "right", (160, 200)).missing == OUT_OF_IMAGE
    assert hand_evidence(coco, "coco17", "left", (200, 200)).missing == NO_KEYPOINTS
    coco[get_layout("coco17").index("right_wrist"), 2] = 0.2
    assert hand_evidence(coco, "coco17", "right", (200, 200)).missing == OCCLUDED


def test_results_round_trip_with_the_hand_fields(sample, results, tmp_path):
    image = read_frame(sample)
    points = frame_keypoints(sample)
    points[HAND_START["left"]:HAND_START["left"] + 21, 2] = 0.0
    for joint in ("left_wrist", "left_elbow"):
        points[WHOLEBODY.index(joint), 2] = 0.0
    missing = whole_body(sample)(image, Keypoints(points[None], "coco_wholebody133"))
    results.frames.append(attrs.evolve(missing.frames[0], index=FRAMES))
    try:
        targets = [tmp_path / "r.npz", tmp_path / "r.json", tmp_path / "r.jsonl"]
        for target in targets:
            results.save(target)
        arrays = load_results(targets[0])
        first = results.frames[0].people[0]
        np.testing.assert_allclose(arrays["left_hand_hand_pose"][0],
                                   first.left_hand.params["hand_pose"], atol=1e-6)
        np.testing.assert_allclose(arrays["right_hand_cam_t"][0], first.right_hand.cam_t)
        assert arrays["left_hand_vertices"].shape == (FRAMES + 1, 778, 3)
        assert np.isnan(arrays["left_hand_vertices"][-1]).all()  # absent: NaN, said why
        assert list(arrays["left_hand_missing"]) == [""] * FRAMES + [NO_KEYPOINTS]
        assert list(arrays["right_hand_missing"]) == [""] * (FRAMES + 1)
        for target in targets[1:]:
            people = [f["people"][0] for f in load_results(target)["frames"]]
            np.testing.assert_allclose(people[0]["left_hand_own_cam_t"],
                                       first.left_hand.own_cam_t, atol=1e-5)
            assert people[-1]["left_hand_missing"] == NO_KEYPOINTS
            assert "left_hand_cam_t" not in people[-1] and "right_hand_cam_t" in people[-1]
    finally:
        results.frames.pop()


def test_predict_sample_whole(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["predict", "--sample", "whole", "--out", str(out), "--render"]) == 0
    printed = capsys.readouterr().out
    assert "hands: 48 of 48 found" in printed
    saved = load_results(out / "results.json")
    assert saved["model"].startswith("whole-body")
    person = saved["frames"][0]["people"][0]
    assert person["left_hand_missing"] == "" and len(person["right_hand_hand_pose"]) == 15
    assert (out / "overlay.mp4").is_file()
    assert cli.main(["predict", "--sample", "--out", str(tmp_path / "o2"), "--mano", "M.pkl"]) == 1
    assert "--mano: only with --part whole" in capsys.readouterr().err


class BodyDetector:
    """Registered as ``mediapipe``: finds the sample's body (COCO-17, as MediaPipe's pose model
    gives it: no hand keypoints) in frame ``frame``."""

    layouts: list[str] = []

    def __init__(self, sample, layout):
        self.sample = sample
        BodyDetector.layouts.append(layout)

    def detect(self, image, frame=None):
        points = frame_keypoints(self.sample, frame or 0)
        points[:, 2] = 1.0  # every joint seen clearly
        return Keypoints(points[None], "coco_wholebody133").to("coco17")


def test_without_keypoints_the_body_detector_finds_the_people_and_their_hands(sample):
    """No keypoints: the body pipeline's detector gives each frame's body keypoints, and the
    hands are found from the wrists and elbows (the default detector, MediaPipe, is stood in)."""
    from extpose_sdk import hookimpl
    from extpose_sdk.testing import isolated_plugins

    class StandIn:
        @hookimpl
        def extpose_register_keypoint_sources(self, register):
            register("mediapipe", lambda layout: BodyDetector(sample, layout), "a stand-in")

    BodyDetector.layouts = []
    import extpose_plugin_hamer
    import extpose_plugin_hmr2

    with isolated_plugins(extpose_plugin_hmr2, extpose_plugin_hamer, StandIn()):
        pipeline = whole_body(sample)
        assert pipeline.detector == "mediapipe"
        image_results = pipeline(read_frame(sample))
        video_results = pipeline.video(sample["video"])
    assert BodyDetector.layouts == ["coco17"]  # built once, for the body model's layout
    for results in (image_results, video_results):
        for frame in results.frames:
            [person] = frame.people
            assert person.hands_missing == {}
            for side in ("left", "right"):
                hand = getattr(person, f"{side}_hand")
                assert hand.is_right == (side == "right")
                assert not hand.keypoints[:, 2].any()  # a box from the forearm, no skeleton
    assert len(video_results.frames) == FRAMES
