"""The synthetic data set: keypoints fall on the rendered subject, determinism, clips, video."""

import numpy as np
import pytest
import torch

import extpose_sdk
from extpose_sdk.data.sample import check_sample
from extpose_sdk.datasets.synthetic import DetectionNoise, SyntheticDataset, write_sample_video


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic-models")


def _build(cache, kind, **options):
    options = {"num_sequences": 2, "sequence_length": 8, "image_size": (160, 160), **options}
    return extpose_sdk.get_registries().dataset.build(f"synthetic-{kind}", root=cache, **options)


@pytest.mark.parametrize("kind", ["body", "hand"])
def test_projected_keypoints_fall_on_the_rendered_subject(cache, kind):
    data = _build(cache, kind, occluders=0)
    for frame in data.render(1, [0, 5]):
        h, w = frame.image.shape[:2]
        uv = np.round(frame.keypoints_2d[:, :2]).astype(int)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        assert inside.mean() > 0.9
        u, v = uv[inside, 0], uv[inside, 1]
        changed = np.abs(frame.image.astype(int) - frame.background.astype(int)).sum(-1) > 0
        assert changed[v, u].mean() > 0.85  # pixels at the joints are not background
        assert (frame.faces[v, u] >= 0).mean() > 0.85
        assert 0.02 < changed.mean() < 0.8  # a subject, not the whole picture


def test_clips_have_t_frames_and_follow_the_sample_layout(cache):
    clips = _build(cache, "hand", clip_length=4, split="test")
    clip = clips[len(clips) - 1]
    check_sample(clip, clip=True, sizes={"K": 21, "J": 21})
    assert clip["rgb"].shape == (4, 3, 256, 256) and clip["valid"].all()
    assert clip["hand_pose"].shape == (4, 45) and clip["is_right"].tolist() == [1.0] * 4
    assert clip["joint_set"] == "mano21" and clip["detected_layout"] == "openpose_hand21"
    # the motion is smooth: neighbouring frames' joints move by centimetres, not metres
    step = (clip["keypoints_3d"][1:, :, :3] - clip["keypoints_3d"][:-1, :, :3]).norm(dim=-1)
    assert step.max() < 0.05
    frames = _build(cache, "body", augment=False)
    sample = frames[3]
    check_sample(sample, sizes={"K": 44, "J": 17})
    # ground-truth 2D joints lie inside the crop, and the 3D joints are in front of the camera
    assert sample["keypoints_2d"][:, :2].abs().max() < 0.5
    assert (sample["keypoints_3d"][:, 2] > 0).all()


def test_deterministic_per_seed_and_index(cache):
    a = _build(cache, "body", seed=7)[5]
    b = _build(cache, "body", seed=7)[5]  # a fresh object, as in another worker
    c = _build(cache, "body", seed=8)[5]
    for key in ("rgb", "keypoints_2d", "detected_keypoints_2d", "body_pose"):
        torch.testing.assert_close(a[key], b[key])
    assert not torch.equal(a["rgb"], c["rgb"])


def test_shared_signals_mix_into_the_angles_by_their_loading():
    from extpose_sdk.datasets.synthetic import Motion

    half_pi = np.pi / 2  # phases that put each row's wave at 1, 0 and 0.5 of its range at t = 0
    motion = Motion(low=np.array([0.5, 0.0, 0.2]), high=np.array([1.5, 2.0, 0.6]),
                    frequency=np.ones((3, 1)), phase=np.array([[half_pi], [-half_pi], [0.0]]),
                    weight=np.ones((3, 1)), yaw=(0.0, 0.0, 0.0), tilt=(0.0, 0.0),
                    position=np.zeros(3), drift=np.zeros((3, 2)), betas=np.zeros(10),
                    loading=np.array([[0.5], [0.25]]))
    # the shared signal sits at 0.2 + 0.4 * 0.5 = 0.4; angle 0 mixes 1 * 0.5 + 0.4 * 0.5 of its
    # range [0.5, 1.5], angle 1 mixes 0 * 0.75 + 0.4 * 0.25 of its range [0, 2]
    np.testing.assert_allclose(motion.angles(np.zeros(1)), [[1.2, 0.2]], atol=1e-12)


def test_fingers_curl_together_and_bodies_move_as_before():
    from extpose_sdk.datasets.synthetic import HAND_FLEX

    hands = SyntheticDataset(kind="hand", split="train", num_sequences=96, sequence_length=1)
    pose = np.stack([hands.motion(i).angles(np.zeros(1))[0] for i in range(96)]).reshape(96, 5, 3, 3)
    flex = pose[..., 2]  # (motion, finger, joint): each finger's three joints curl about z
    assert HAND_FLEX[0] <= flex.min() and flex.max() <= HAND_FLEX[1]
    assert flex.std() > 0.3  # open hands and fists, not a few degrees of wiggle

    def correlation(a, b):
        return np.corrcoef(a, b)[0, 1]

    same_finger = np.mean([correlation(flex[:, f, 0], flex[:, f, 2]) for f in range(5)])
    other_fingers = np.mean([correlation(flex[:, f, 0], flex[:, (f + 1) % 5, 0]) for f in range(5)])
    spread = np.mean([correlation(pose[:, f, 0, 0], pose[:, f, 2, 0]) for f in range(5)])
    assert same_finger > 0.8 and other_fingers < 0.4 and abs(spread) < 0.3
    # only the flexions follow the shared signals; within a motion the fingers open and close
    loading = hands.motion(0).loading.reshape(5, 3, 3, -1)
    assert not loading[..., :2, :].any() and np.allclose(loading[..., 2, :].sum(-1), 0.9)
    t = np.linspace(0.0, 10.0, 60)
    within = [hands.motion(i).angles(t).reshape(60, 5, 3, 3)[..., 2].std(0).mean() for i in range(24)]
    assert np.mean(within) > 0.07  # measured: 0.14 rad
    # body motions are the ones the shipped body model was trained and measured on
    body = SyntheticDataset(kind="body", split="train", num_sequences=4, sequence_length=8)
    angles = body.motion(3).angles(np.array([0.0, 0.5]))[:, [0, 9, 47, 52]]
    np.testing.assert_allclose(angles, [[-0.147971, 1.256753, -0.788714, -1.007724],
                                        [-0.500583, 1.066362, -0.912676, -0.858583]], atol=1e-6)


def test_detections_are_noisy_stand_ins():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 100, (17, 2))
    box = np.array([0.0, 0.0, 100.0, 100.0])
    flip = tuple(range(17))[::-1]
    from extpose_sdk.datasets.synthetic import noisy_detections

    quiet = noisy_detections(truth, box, flip, DetectionNoise(0.02, 0.0, 0.0), rng)
    error = np.linalg.norm(quiet[:, :2] - truth, axis=1)
    assert 0 < error.mean() < 5 and (quiet[:, 2] > 0.5).all()
    dropped = noisy_detections(truth, box, flip, DetectionNoise(0.0, 1.0, 0.0), rng)
    assert (dropped[:, 2] < 0.25).all()
    swapped = noisy_detections(truth, box, flip, DetectionNoise(0.0, 0.0, 1.0), rng)
    np.testing.assert_allclose(swapped[:, :2], truth[::-1])


def test_a_recipe_table_sets_the_stand_in_detector(cache):
    """``detection_noise = { jitter = 0.0, drop = 0.0, swap = 0.0 }`` in a recipe: a perfect
    detector, the true joints; the images are the same as under the default detector."""
    options = dict(kind="hand", split="test", num_sequences=1, sequence_length=2,
                   image_size=(96, 96), crop_size=64, root=cache)
    perfect = SyntheticDataset(detection_noise={"jitter": 0.0, "drop": 0.0, "swap": 0.0},
                               **options)
    default = SyntheticDataset(**options)
    assert perfect.noise == DetectionNoise(0.0, 0.0, 0.0)
    truth, noisy = perfect.render(0, [0, 1])[1], default.render(0, [0, 1])[1]
    np.testing.assert_allclose(truth.detected[:, :2], truth.keypoints_2d[:21, :2], atol=1e-4)
    assert np.abs(noisy.detected[:, :2] - noisy.keypoints_2d[:21, :2]).mean() > 0.5
    np.testing.assert_array_equal(truth.image, noisy.image)


def test_write_sample_video(tmp_path, cache):
    import cv2

    from extpose_sdk.datasets.synthetic import synthetic_model_path

    detections = write_sample_video(tmp_path / "person.mp4", frames=6, size=(96, 128),
                                    keypoints_path=tmp_path / "person.npz",
                                    model_path=synthetic_model_path("body", cache))
    capture = cv2.VideoCapture(str(tmp_path / "person.mp4"))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 6 and detections.shape == (6, 17, 3)
    saved = np.load(tmp_path / "person.npz")
    assert saved["keypoints"].shape == (6, 1, 17, 3) and str(saved["layout"]) == "coco17"


def test_unknown_kind_and_split_name_the_choices():
    with pytest.raises(ValueError, match="body, hand"):
        SyntheticDataset(kind="dog")
    with pytest.raises(ValueError, match="train, test"):
        SyntheticDataset(split="val")


def test_docs_examples_run(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    monkeypatch.setenv("EXTPOSE_CACHE", str(tmp_path))
    text = (Path(__file__).parents[1] / "docs" / "data.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 5
    for block in blocks:
        exec(compile(block, "docs/data.md", "exec"), {})
    assert "(3, 256, 256)" in capsys.readouterr().out
