"""Data-set readers on tiny copies of the official layouts, and the sample layout helpers."""

import pickle

import numpy as np
import pytest
import torch

import extpose_sdk
from extpose_sdk.data.sample import check_sample, collate, make_clips, stack_clip, window_clips
from extpose_sdk.datasets import fixtures
from extpose_sdk.datasets.files import DatasetFileError, read_pickle
from extpose_sdk.datasets.freihand import FreiHAND
from extpose_sdk.datasets.ho3d import HO3D
from extpose_sdk.datasets.threedpw import ThreeDPW


def _build(name, root, **options):
    return extpose_sdk.get_registries().dataset.build(name, root=root, images=False, **options)


# The sample layout -----------------------------------------------------------------------------


def test_make_clips_covers_every_frame_once_with_padding():
    clips = make_clips({"a": 5, "b": 2}, 2)
    assert [c.frames for c in clips] == [(0, 1), (2, 3), (4, 4), (0, 1)]
    assert clips[2].valid == (True, False)
    real = [(c.sequence, f) for c in clips for f, v in zip(c.frames, c.valid, strict=True) if v]
    assert sorted(real) == sorted({(s, f) for s, n in {"a": 5, "b": 2}.items() for f in range(n)})
    assert [c.frames for c in make_clips({"a": 5}, 3, 1, pad=False)] == [
        (0, 1, 2), (1, 2, 3), (2, 3, 4)]
    assert make_clips({"short": 2}, 3, pad=False) == []


def test_window_clips_keep_each_frame_from_the_window_the_pipeline_keeps_it_from():
    from extpose_sdk.windows import owner_of, plan_windows

    clips = window_clips({"a": 12, "b": 3}, 8, 4)
    assert [(c.sequence, c.frames[0]) for c in clips] == [("a", 0), ("a", 4), ("b", 0)]
    assert clips[0].valid == (True,) * 6 + (False,) * 2  # frames 6, 7 are central in the next
    assert clips[1].valid == (False,) * 2 + (True,) * 6
    assert clips[2].frames == (0, 1, 2, 2, 2, 2, 2, 2)  # a short sequence: padded
    assert clips[2].valid == (True,) * 3 + (False,) * 5
    for n, size, overlap in ((12, 8, 4), (23, 8, 4), (9, 4, 1), (16, 8, 0)):
        windows = plan_windows(n, size, overlap)
        kept = [(c.frames[0], f) for c in window_clips({"s": n}, size, overlap)
                for f, v in zip(c.frames, c.valid, strict=True) if v]
        assert sorted(f for _, f in kept) == list(range(n))  # every frame once
        assert all(start == owner_of(f, windows).start for start, f in kept)


def test_sequence_views_give_the_frames_of_the_clips_they_cut_anew():
    from extpose_sdk.datasets.base import PipelineWindows, SequenceFrames

    clips = extpose_sdk.get_registries().dataset.build(
        "synthetic-hand", split="test", seed=2, crop_size=64, clip_length=4, num_sequences=2,
        sequence_length=6)  # clips: frames 0-3, then 4-5 padded, per sequence
    frames = SequenceFrames(clips)
    assert len(frames) == 12 and frames.name == clips.name
    assert torch.equal(frames[7]["rgb"], clips[2]["rgb"][1])  # sequence 1, frame 1
    assert torch.allclose(frames[5]["keypoints_3d"], clips[1]["keypoints_3d"][1], atol=1e-6)
    windows = PipelineWindows(clips, 4, 2)  # [0, 4) keeps 0-2, [2, 6) keeps 3-5
    assert [c.frames for c in windows.clips[:2]] == [(0, 1, 2, 3), (2, 3, 4, 5)]
    assert torch.equal(windows[1]["rgb"][2], frames[4]["rgb"])
    assert windows[1]["valid"].tolist() == [False, True, True, True]


def test_rendered_once_makes_each_frame_once_for_every_view(monkeypatch):
    from extpose_sdk.datasets.base import PipelineWindows, RenderedOnce, SequenceFrames

    clips = extpose_sdk.get_registries().dataset.build(
        "synthetic-hand", split="test", seed=2, crop_size=64, clip_length=4, num_sequences=1,
        sequence_length=6)
    made = []
    samples = clips.samples
    monkeypatch.setattr(clips, "samples", lambda sequence, frames: (
        made.extend(frames) or samples(sequence, frames)))
    once = RenderedOnce(clips)
    assert (once.kind, once.crop_size, len(once)) == ("hand", 64, len(clips))
    first = [once[i] for i in range(len(once))]
    again = [SequenceFrames(once)[i] for i in range(6)] + list(PipelineWindows(once, 4, 2))
    assert sorted(made) == list(range(6))  # six frames made, once each
    assert torch.equal(first[1]["rgb"][0], again[4]["rgb"])  # clip 1: frames 4, 5 padded to 4
    assert first[1]["valid"].tolist() == [True, True, False, False]
    assert torch.equal(again[5]["rgb"], clips[1]["rgb"][1])


def test_stack_fills_missing_labels_and_checks_shapes():
    frames = [{"rgb": torch.zeros(3, 256, 256), "betas": torch.ones(10),
               "has_betas": torch.tensor(True), "sequence": "s", "frame": torch.tensor(i)}
              for i in range(3)]
    del frames[1]["betas"]
    frames[1]["has_betas"] = torch.tensor(False)
    clip = stack_clip(frames, [True, True, False])
    check_sample(clip, clip=True)
    assert clip["betas"].shape == (3, 10) and clip["betas"][1].abs().sum() == 0
    assert clip["has_betas"].tolist() == [True, False, True] and clip["sequence"] == "s"
    no_flags = collate([{"betas": torch.ones(10)}, {"global_orient": torch.ones(3)}])
    assert no_flags["has_betas"].tolist() == [True, False]
    assert no_flags["has_global_orient"].tolist() == [False, True]
    batch = collate([clip, clip])
    assert batch["rgb"].shape == (2, 3, 3, 256, 256) and batch["sequence"] == ["s", "s"]
    with pytest.raises(ValueError, match=r"sample\['betas'\]: expected shape \(10,\).*got \(9,\)"):
        check_sample({"betas": torch.zeros(9)})
    with pytest.raises(ValueError, match="'rgb' is missing from some samples"):
        collate([frames[0], {k: v for k, v in frames[0].items() if k != "rgb"}])


# Restricted unpickling -------------------------------------------------------------------------


def test_python2_pickle_is_read_and_code_is_refused(tmp_path):
    arrays = {"poses": np.arange(6.0).reshape(2, 3), "name": "x"}
    path = fixtures.write_python2_pickle(tmp_path / "py2.pkl", arrays)
    assert b"numpy.core.multiarray" in path.read_bytes()
    loaded = read_pickle(path)
    np.testing.assert_array_equal(loaded["poses"], arrays["poses"])

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"a": Evil()}, protocol=2))
    with pytest.raises(DatasetFileError, match=r"evil.pkl.*refusing to load global \w+\.print"):
        read_pickle(evil)
    (tmp_path / "cut.pkl").write_bytes(path.read_bytes()[:20])
    with pytest.raises(DatasetFileError, match="cut.pkl"):
        read_pickle(tmp_path / "cut.pkl")


# 3DPW ------------------------------------------------------------------------------------------


def test_3dpw_frames_have_camera_frame_labels(tmp_path):
    root = fixtures.write_3dpw(tmp_path / "3DPW", frames=5, actors=2)
    data = _build("3dpw", root, split="test")
    assert isinstance(data, ThreeDPW)
    assert len(data) == 5 + 4  # the second actor's last camera pose is invalid
    sample = data[0]
    check_sample(sample, sizes={"K": 24})
    assert sample["dataset"] == "3dpw" and sample["gender"] == "male"
    assert sample["joint_set"] == "smpl24" and sample["detected_layout"] == "coco17"
    assert sample["keypoints_3d"].shape == (24, 4)
    assert sample["keypoints_3d"][:, 2].min() > 4.0  # the fixture's world is 6 m away
    assert sample["body_pose"].shape == (69,) and bool(sample["has_betas"])
    assert sample["detected_keypoints_2d"].shape == (17, 3)
    assert sample["image_path"].endswith("imageFiles/courtyard_fixture_00/image_00000.jpg")
    # the box holds the projected joints
    x1, y1, x2, y2 = sample["box"].tolist()
    assert 0 < x1 < x2 < 64 and 0 < y1 < y2 < 64
    assert data[5]["gender"] == "female"


def test_3dpw_tracks_are_cut_at_invalid_frames(tmp_path):
    root = fixtures.write_3dpw(tmp_path / "3DPW", frames=5, actors=1)
    path = root / "sequenceFiles" / "test" / "courtyard_fixture_00.pkl"
    content = read_pickle(path)
    content["campose_valid"][0][2] = False
    fixtures.write_python2_pickle(path, content)
    data = _build("3dpw", root, split="test", clip_length=2)
    assert {name: [r.frame for r in records] for name, records in data.sequences.items()} == {
        "courtyard_fixture_00/0": [0, 1], "courtyard_fixture_00/0.1": [3, 4]}


def test_3dpw_clips_stack_frames(tmp_path):
    root = fixtures.write_3dpw(tmp_path / "3DPW", frames=5, actors=2)
    data = _build("3dpw", root, split="test", clip_length=2)
    assert len(data) == 3 + 2  # actor 0: 5 frames -> 3 clips; actor 1: 4 -> 2
    clip = data[2]
    check_sample(clip, clip=True)
    assert clip["keypoints_3d"].shape == (2, 24, 4) and clip["valid"].tolist() == [True, False]
    assert clip["sequence"] == "courtyard_fixture_00/0" and clip["frame"].tolist() == [4, 4]
    batch = collate([data[0], data[1]])
    assert batch["body_pose"].shape == (2, 2, 69)


def test_3dpw_missing_and_bad_files_are_named(tmp_path):
    with pytest.raises(DatasetFileError, match=r"missing data-set file: .*sequenceFiles/test"):
        _build("3dpw", tmp_path, split="test")
    (tmp_path / "sequenceFiles" / "test").mkdir(parents=True)
    with pytest.raises(DatasetFileError, match="no sequence pickles"):
        _build("3dpw", tmp_path, split="test")
    fixtures.write_python2_pickle(tmp_path / "sequenceFiles" / "test" / "bad.pkl", {"poses": []})
    with pytest.raises(DatasetFileError, match=r"bad.pkl: missing keys \['trans'"):
        _build("3dpw", tmp_path, split="test")
    with pytest.raises(ValueError, match="unknown split 'val'; available: train, validation"):
        _build("3dpw", tmp_path, split="val")


# FreiHAND --------------------------------------------------------------------------------------


def test_freihand_training_repeats_labels_per_background(tmp_path):
    root = fixtures.write_freihand(tmp_path / "FreiHAND", labels=3, versions=2)
    data = _build("freihand", root, split="training")
    assert isinstance(data, FreiHAND) and len(data) == 6
    first, copy = data[0], data[3]
    check_sample(first, sizes={"K": 21})
    torch.testing.assert_close(first["keypoints_3d"], copy["keypoints_3d"])
    assert copy["image_path"].endswith("training/rgb/00000003.jpg")
    assert first["hand_pose"].shape == (45,) and first["is_right"] == 1.0
    assert "vertices" not in first  # training vertices only on request


def test_freihand_evaluation_has_vertices(tmp_path):
    root = fixtures.write_freihand(tmp_path / "FreiHAND")
    data = _build("freihand", root, split="evaluation")
    sample = data[1]
    check_sample(sample, sizes={"K": 21, "V": 778})
    assert sample["vertices"].shape == (778, 3) and bool(sample["has_vertices"])
    with pytest.raises(ValueError, match="single frames only"):
        _build("freihand", root, split="evaluation", clip_length=4)


def test_freihand_missing_and_malformed_files_are_named(tmp_path):
    root = fixtures.write_freihand(tmp_path / "FreiHAND")
    (root / "evaluation_verts.json").unlink()
    with pytest.raises(DatasetFileError, match=r"evaluation_verts.json \(778 MANO vertices"):
        _build("freihand", root, split="evaluation")
    (root / "training_xyz.json").write_text("[[1, 2")
    with pytest.raises(DatasetFileError, match=r"training_xyz.json: not valid JSON \(.*\) \(21 3D joints"):
        _build("freihand", root, split="training")


# HO3D ------------------------------------------------------------------------------------------


def test_ho3d_converts_opengl_to_opencv_and_openpose_order(tmp_path):
    root = fixtures.write_ho3d(tmp_path / "HO3D_v3", sequences={"ABF10": 4, "MC1": 3})
    data = _build("ho3d", root, split="train")
    assert isinstance(data, HO3D) and len(data) == 7
    sample = data[0]
    check_sample(sample, sizes={"K": 21})
    stored = read_pickle(root / "train" / "ABF10" / "meta" / "0000.pkl")["handJoints3D"]
    joints = sample["keypoints_3d"][:, :3].double().numpy()
    assert (joints[:, 2] > 0).all()  # in front of an OpenCV camera
    np.testing.assert_allclose(joints[1], stored[13] * [1, -1, -1], rtol=1e-6)  # thumb base
    np.testing.assert_allclose(joints[4], stored[16] * [1, -1, -1], rtol=1e-6)  # thumb tip
    assert bool(sample["has_hand_pose"]) and sample["sequence"] == "ABF10"


def test_ho3d_clips_and_evaluation_boxes(tmp_path):
    root = fixtures.write_ho3d(tmp_path / "HO3D_v3", sequences={"ABF10": 4, "MC1": 3})
    clips = _build("ho3d", root, split="train", clip_length=3, stride=1, pad=False)
    assert [(c.sequence, c.frames) for c in clips.clips] == [
        ("ABF10", (0, 1, 2)), ("ABF10", (1, 2, 3)), ("MC1", (0, 1, 2))]
    assert clips[1]["hand_pose"].shape == (3, 45)
    evaluation = _build("ho3d", root, split="evaluation")
    sample = evaluation[0]
    assert sample["box"].tolist() == [16.0, 16.0, 48.0, 48.0]
    assert sample["keypoints_3d"][:, 3].sum() == 0 and "hand_pose" not in sample


def test_ho3d_missing_files_are_named(tmp_path):
    root = fixtures.write_ho3d(tmp_path / "HO3D_v3")
    (root / "train" / "MC1" / "meta" / "0001.pkl").unlink()
    with pytest.raises(DatasetFileError, match=r"train/MC1/meta/0001.pkl \(HO3D per-frame meta"):
        _build("ho3d", root, split="train")
    with pytest.raises(DatasetFileError, match=r"missing data-set file: .*nowhere/train.txt"):
        _build("ho3d", tmp_path / "nowhere", split="train")
    (root / "evaluation.txt").write_text("no-slash-here\n")
    with pytest.raises(DatasetFileError, match=r"evaluation.txt:1: expected '<sequence>/<frame id>'"):
        _build("ho3d", root, split="evaluation")


@pytest.mark.parametrize("doc", ["datasets.md", "evaluation.md"])
def test_doc_examples_run(doc, capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / doc).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, doc, "exec"), {})
    assert "torch.Size" in capsys.readouterr().out or doc == "evaluation.md"


@pytest.mark.parametrize("name, writer, split", [
    ("3dpw", fixtures.write_3dpw, "test"),
    ("freihand", fixtures.write_freihand, "evaluation"),
    ("ho3d", fixtures.write_ho3d, "train"),
])
def test_readers_crop_images_with_the_official_preprocessing(tmp_path, name, writer, split):
    root = writer(tmp_path / name)
    data = extpose_sdk.get_registries().dataset.build(name, root=root, split=split)
    sample = data[0]
    check_sample(sample)
    assert sample["rgb"].shape == (3, 256, 256) and sample["rgb"].std() > 0.1
    assert sample["image_hw"].tolist() == [fixtures.IMAGE_SIZE, fixtures.IMAGE_SIZE]
    keypoints = sample["keypoints_2d"]
    assert keypoints.shape[-1] == 3 and keypoints[:, :2].abs().max() < 0.5  # inside the crop
    # the crop transform takes the full-image joints to the crop-normalised ones
    from extpose_sdk.data.crops import from_crop_normalized, invert_transform, transform_points

    full = transform_points(from_crop_normalized(keypoints.numpy()),
                            invert_transform(sample["crop_transform"].numpy()))
    box = sample["box"].numpy()
    assert (full[:, 0] >= box[0] - 1e-3).all() and (full[:, 0] <= box[2] + 1e-3).all()


def test_missing_image_is_named(tmp_path):
    root = fixtures.write_freihand(tmp_path / "FreiHAND")
    (root / "evaluation" / "rgb" / "00000001.jpg").unlink()
    data = extpose_sdk.get_registries().dataset.build("freihand", root=root, split="evaluation")
    with pytest.raises(FileNotFoundError, match="evaluation/rgb/00000001.jpg"):
        data[1]


@pytest.mark.parametrize("name", ["3dpw", "freihand", "ho3d"])
def test_empty_root_names_the_missing_file(tmp_path, name):
    with pytest.raises(DatasetFileError, match=f"missing data-set file: {tmp_path}/"):
        extpose_sdk.get_registries().dataset.build(name, root=tmp_path)
