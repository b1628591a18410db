"""Keypoint layouts, the Keypoints container, and the keypoint file sources."""

from __future__ import annotations

import json

import numpy as np
import pytest

import extpose_sdk
from extpose_sdk.keypoints import Keypoints, boxes_from_keypoints, convert, get_layout
from extpose_sdk.keypoints.coco import CocoKeypointSource, coco_results
from extpose_sdk.keypoints.files import KeypointFileError
from extpose_sdk.keypoints.numpy_files import NumpyKeypointSource, save_keypoints
from extpose_sdk.keypoints.openpose import OpenPoseJsonSource, write_openpose_frame


def people(n: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.uniform(10, 600, (n, k, 2)), rng.uniform(0.05, 1, (n, k, 1))], -1)
    return np.round(points, 2).astype(np.float32)


# --- layouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count", "limbs"),
    [
        ("coco17", 17, 19),
        ("coco_wholebody133", 133, None),
        ("openpose_body25", 25, 24),
        ("openpose_hand21", 21, 20),
    ],
)
def test_layouts_have_their_official_sizes(name, count, limbs):
    layout = get_layout(name)
    assert layout.num_keypoints == count == len(set(layout.names))
    assert limbs is None or len(layout.limbs) == limbs
    assert len(layout.limb_colours) == len(layout.limbs)
    assert all(0 <= c <= 255 for colour in layout.limb_colours for c in colour)


def test_layout_facts():
    coco, whole, body25, hand = (
        get_layout(n) for n in ["coco17", "coco_wholebody133", "openpose_body25", "openpose_hand21"]
    )
    assert coco.names[9] == "left_wrist" and (7, 9) in coco.limbs
    assert whole.names[:17] == coco.names
    assert whole.names[91] == "left_hand_wrist" and whole.names[112] == "right_hand_wrist"
    assert whole.names[132] == "right_hand_pinky4" and whole.names[17] == "left_big_toe"
    assert body25.names[1] == "neck" and body25.names[8] == "mid_hip" and (1, 8) in body25.limbs
    assert hand.names[4] == "thumb4" and hand.names[20] == "pinky4" and (0, 17) in hand.limbs
    with pytest.raises(KeyError, match="Did you mean 'coco17'"):
        get_layout("coco_17")


def test_conversions():
    points = people(2, 133)
    np.testing.assert_array_equal(convert(points, "coco_wholebody133", "coco17"), points[:, :17])
    np.testing.assert_array_equal(
        convert(points, "coco_wholebody133", "openpose_hand21", side="right"), points[:, 112:]
    )
    body25 = convert(points[:, :17], "coco17", "openpose_body25")
    names = get_layout("openpose_body25").names
    np.testing.assert_allclose(body25[:, names.index("neck"), :2], points[:, 5:7, :2].mean(1))
    np.testing.assert_allclose(body25[:, names.index("neck"), 2], points[:, 5:7, 2].min(1))
    assert (body25[:, names.index("left_heel"), 2] == 0).all()  # coco17 has no feet
    np.testing.assert_array_equal(convert(body25, "openpose_body25", "coco17"), points[:, :17])
    feet = convert(points, "coco_wholebody133", "openpose_body25")[:, 19:]
    np.testing.assert_array_equal(feet, points[:, 17:23])
    with pytest.raises(ValueError, match="side='left' or side='right'"):
        convert(points, "coco_wholebody133", "openpose_hand21")
    with pytest.raises(ValueError, match="no conversion from 'openpose_hand21' to 'coco17'"):
        convert(people(1, 21), "openpose_hand21", "coco17")
    with pytest.raises(ValueError, match=r"\(\.\.\., 17, 3\)"):
        convert(points, "coco17", "openpose_body25")


# --- container ---------------------------------------------------------------------------------


def test_keypoints_container_and_boxes():
    points = people(3, 17)
    points[2, :, 2] = 0  # nobody there
    kp = Keypoints(points, "coco17", frame=7)
    assert len(kp) == 3 and kp.xy.shape == (3, 17, 2) and kp.confidence.shape == (3, 17)
    np.testing.assert_allclose(kp.boxes[0], [*points[0, :, :2].min(0), *points[0, :, :2].max(0)])
    assert np.isnan(kp.boxes[2]).all()
    padded = boxes_from_keypoints(points[:1], padding=0.1)
    width = kp.boxes[0, 2] - kp.boxes[0, 0]
    np.testing.assert_allclose(padded[0, 0], kp.boxes[0, 0] - 0.1 * width, rtol=1e-5)
    high = boxes_from_keypoints(points[:1], threshold=0.5)
    assert high[0, 0] >= kp.boxes[0, 0]
    two = Keypoints(points[..., :2], "coco17")
    assert (two.confidence == 1).all()
    assert kp.to("openpose_body25").points.shape == (3, 25, 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p[:, :16], "layout 'coco17' has 17 keypoints, got 16"),
        (lambda p: p[0], r"expected shape \(N, K, 3\)"),
        (lambda p: np.where(np.arange(17)[None, :, None] == 4, np.nan, p), "NaN or infinite"),
        (lambda p: p * np.array([1, 1, -1], np.float32), "negative confidence"),
    ],
)
def test_keypoints_container_rejects_bad_input(change, message):
    with pytest.raises(ValueError, match=message):
        Keypoints(change(people(2, 17)), "coco17")
    with pytest.raises(ValueError, match=r"boxes: expected shape \(2, 4\)"):
        Keypoints(people(2, 17), "coco17", boxes=np.zeros((3, 4)))


# --- file sources ----------------------------------------------------------------------------


def test_coco_results_round_trip(tmp_path):
    frames = [
        Keypoints(people(2, 17, seed=1), "coco17", frame=42),
        Keypoints(people(1, 17, seed=2), "coco17", frame=7),
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(coco_results(frames)))
    source = extpose_sdk.get_registries().keypoint_source.build("coco-json", path=path)
    read = list(source())
    assert [f.frame for f in read] == [42, 7]
    for original, back in zip(frames, read, strict=True):
        assert back.layout == "coco17"
        np.testing.assert_allclose(back.points, original.points, atol=1e-3)
        np.testing.assert_allclose(back.boxes, original.boxes, atol=1e-3)
        np.testing.assert_allclose(back.scores, original.scores, atol=1e-6)
    assert [len(f) for f in CocoKeypointSource(path, min_score=0.9)()] == [0, 0]


def coco_annotation(ann_id, image_id, points, **extra):
    flat = points.copy()
    flat[:, 2] = np.where(points[:, 2] > 0.5, 2, 0)
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "keypoints": flat.reshape(-1).tolist(), "num_keypoints": int((flat[:, 2] > 0).sum()),
            "bbox": [10, 20, 100, 200], **extra}  # fmt: skip


def test_coco_annotations_in_image_order_with_visibility_as_confidence(tmp_path):
    a, b = people(1, 17, seed=3)[0], people(1, 17, seed=4)[0]
    content = {
        "images": [
            {"id": 5, "file_name": "a.jpg"},
            {"id": 9, "file_name": "b.jpg"},
            {"id": 1, "file_name": "c.jpg"},
        ],
        "annotations": [
            coco_annotation(1, 9, a),
            coco_annotation(2, 5, b),
            coco_annotation(3, 9, b, iscrowd=1),
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    path = tmp_path / "person_keypoints_val.json"
    path.write_text(json.dumps(content))
    frames = list(CocoKeypointSource(path)())
    assert [f.frame for f in frames] == [5, 9, 1] and [len(f) for f in frames] == [1, 1, 0]
    np.testing.assert_allclose(
        frames[1].points[0, :, :2][a[:, 2] > 0.5], a[a[:, 2] > 0.5, :2], atol=1e-4
    )
    np.testing.assert_array_equal(frames[1].points[0, :, 2], (a[:, 2] > 0.5).astype(np.float32))
    np.testing.assert_array_equal(frames[0].boxes[0], [10, 20, 110, 220])
    assert [len(f) for f in CocoKeypointSource(path, include_crowd=True)()] == [1, 2, 0]


def test_coco_wholebody_annotations_make_133_points(tmp_path):
    p = people(1, 133, seed=5)[0]
    parts = {
        "foot_kpts": p[17:23],
        "face_kpts": p[23:91],
        "lefthand_kpts": p[91:112],
        "righthand_kpts": p[112:],
    }
    annotation = coco_annotation(
        1, 3, p[:17], **{k: coco_annotation(0, 0, v)["keypoints"] for k, v in parts.items()}
    )
    path = tmp_path / "coco_wholebody_val.json"
    path.write_text(json.dumps({"images": [{"id": 3}], "annotations": [annotation]}))
    (frame,) = CocoKeypointSource(path)()
    assert frame.layout == "coco_wholebody133" and frame.points.shape == (1, 133, 3)
    visible = p[:, 2] > 0.5
    np.testing.assert_allclose(frame.points[0, visible, :2], p[visible, :2], atol=1e-4)
    left = frame.to("openpose_hand21", side="left")
    assert left.points.shape == (1, 21, 3) and left.is_right.tolist() == [False]


def test_openpose_json_round_trip(tmp_path):
    frames = []
    for t in range(3):
        body = Keypoints(people(2, 25, seed=t), "openpose_body25")
        left = Keypoints(people(2, 21, seed=10 + t), "openpose_hand21")
        write_openpose_frame(
            tmp_path / f"clip_{t:012d}_keypoints.json", {"pose": body, "hand_left": left}
        )
        frames.append((body, left))
    source = extpose_sdk.get_registries().keypoint_source.build("openpose-json", path=tmp_path)
    bodies = list(source())
    hands = list(OpenPoseJsonSource(tmp_path, part="hand_left")())
    assert [f.frame for f in bodies] == [f"clip_{t:012d}_keypoints" for t in range(3)]
    for (body, left), body_back, left_back in zip(frames, bodies, hands, strict=True):
        assert body_back.layout == "openpose_body25" and left_back.layout == "openpose_hand21"
        assert body_back.is_right is None and not left_back.is_right.any()
        np.testing.assert_allclose(body_back.points, body.points, atol=1e-3)
        np.testing.assert_allclose(left_back.points, left.points, atol=1e-3)
    with pytest.raises(KeypointFileError, match="has no 'hand_right_keypoints_2d'"):
        list(OpenPoseJsonSource(tmp_path, part="hand_right")())


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_numpy_round_trip(tmp_path, suffix):
    frames = [Keypoints(people(2, 21, seed=t), "openpose_hand21", frame=t) for t in range(4)]
    path = tmp_path / f"clip{suffix}"
    if suffix == ".npz":
        save_keypoints(path, frames)
    else:
        np.save(path, np.stack([f.points for f in frames]))
    source = extpose_sdk.get_registries().keypoint_source.build("numpy", path=path)
    read = list(source())
    assert [f.frame for f in read] == [0, 1, 2, 3]
    for original, back in zip(frames, read, strict=True):
        assert back.layout == "openpose_hand21"
        np.testing.assert_array_equal(back.points, original.points)
        np.testing.assert_array_equal(back.boxes, original.boxes)
    single = tmp_path / "one.npy"
    np.save(single, people(1, 17)[0])
    (only,) = NumpyKeypointSource(single)()
    assert only.layout == "coco17" and only.points.shape == (1, 17, 3)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.json", "{not json", "not valid JSON"),
        ("dict.json", json.dumps({"foo": 1}), "not a COCO keypoint file"),
        (
            "short.json",
            json.dumps([{"image_id": 1, "keypoints": [1, 2, 3, 4], "score": 1}]),
            "not a multiple of 3",
        ),
        (
            "text.json",
            json.dumps([{"image_id": 1, "keypoints": ["a", 2, 3], "score": 1}]),
            "expected numbers",
        ),
        ("noid.json", json.dumps([{"keypoints": [1, 2, 3]}]), "no.*'image_id'"),
        (
            "k5.json",
            json.dumps([{"image_id": 1, "keypoints": [1, 2, 1] * 5, "score": 1}]),
            "no keypoint layout has 5",
        ),
        (
            "neg.json",
            json.dumps([{"image_id": 1, "keypoints": [1, 2, -1] * 17, "score": 1}]),
            "negative confidence",
        ),
    ],
)
def test_malformed_coco_files_give_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(KeypointFileError, match=message) as error:
        list(CocoKeypointSource(path)())
    assert name in str(error.value)


def test_malformed_openpose_and_numpy_files_give_clear_errors(tmp_path):
    with pytest.raises(KeypointFileError, match="no such file or folder"):
        list(OpenPoseJsonSource(tmp_path / "missing")())
    with pytest.raises(KeypointFileError, match="holds no .json file"):
        list(OpenPoseJsonSource(tmp_path)())
    (tmp_path / "a.json").write_text(
        json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 1] * 18}]})
    )
    with pytest.raises(
        KeypointFileError, match="has 18 keypoints.*COCO-18 body model is not supported"
    ):
        list(OpenPoseJsonSource(tmp_path)())
    (tmp_path / "a.json").write_text(json.dumps({"people": 3}))
    with pytest.raises(KeypointFileError, match="not an OpenPose JSON file"):
        list(OpenPoseJsonSource(tmp_path)())
    with pytest.raises(ValueError, match="unknown OpenPose part 'face'"):
        OpenPoseJsonSource(tmp_path, part="face")

    (tmp_path / "junk.npy").write_bytes(b"definitely not numpy")
    with pytest.raises(KeypointFileError, match="junk.npy"):
        list(NumpyKeypointSource(tmp_path / "junk.npy")())
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(KeypointFileError, match="not a plain numpy file"):
        list(NumpyKeypointSource(tmp_path / "objects.npy")())
    np.save(tmp_path / "shape.npy", np.zeros((4, 17)))
    with pytest.raises(KeypointFileError, match=r"got \(4, 17\)"):
        list(NumpyKeypointSource(tmp_path / "shape.npy")())
    np.savez(tmp_path / "other.npz", poses=np.zeros((2, 17, 3)))
    with pytest.raises(KeypointFileError, match="without a 'keypoints' array.*poses"):
        list(NumpyKeypointSource(tmp_path / "other.npz")())
    np.save(tmp_path / "nan.npy", np.full((2, 17, 3), np.nan))
    with pytest.raises(KeypointFileError, match="frame 0: .*NaN"):
        list(NumpyKeypointSource(tmp_path / "nan.npy")())
    np.save(tmp_path / "k17.npy", np.ones((2, 17, 3)))
    with pytest.raises(
        KeypointFileError, match="layout 'openpose_hand21' has 21 keypoints, got 17"
    ):
        list(NumpyKeypointSource(tmp_path / "k17.npy", layout="openpose_hand21")())


def test_the_examples_in_docs_keypoints_md_run(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "keypoints.md").read_text()
    blocks = [code for marker, code in re.findall(r"(<!-- not run[^\n]*\n)?```python\n(.*?)```",
                                                  text, re.S)
              if not marker and "mediapipe" not in code]
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(block, namespace)
    assert namespace["skeleton"].shape == (1, 256, 256, 3) and namespace["skeleton"].any()


@pytest.mark.parametrize(
    "name", ["coco17", "coco_wholebody133", "openpose_body25", "openpose_hand21"]
)
def test_flip_indices_swap_sides_and_are_their_own_inverse(name):
    layout = get_layout(name)
    flip = np.array(layout.flip_indices)
    np.testing.assert_array_equal(flip[flip], np.arange(layout.num_keypoints))
    for j, mirror in enumerate(flip):
        a, b = layout.names[j], layout.names[mirror]
        if "left" in a:
            assert b == a.replace("left", "right")
        elif "right" not in a and not a.startswith("face"):
            assert a == b
    # Mirrored limbs are limbs: the skeleton is symmetric under the flip.
    limbs = {frozenset(limb) for limb in layout.limbs}
    assert {frozenset((flip[a], flip[b])) for a, b in layout.limbs} == limbs
