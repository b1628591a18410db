"""Tiny copies of the official 3DPW, FreiHAND and HO3D layouts, for tests and examples.

    from extpose_sdk.datasets.fixtures import write_3dpw
    root = write_3dpw(tmp_path / "3DPW")        # then ThreeDPW(root, split="test")

The files have the official names, formats and keys (3DPW pickles written the way Python 2
wrote them), with a few frames of plausible numbers and small images, so the real readers run.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path

import numpy as np

IMAGE_SIZE = 64
_FOCAL = 60.0


def _intrinsics() -> np.ndarray:
    return np.array([[_FOCAL, 0, IMAGE_SIZE / 2], [0, _FOCAL, IMAGE_SIZE / 2], [0, 0, 1.0]])


class _Python2Pickler(pickle._Pickler):  # the pure-Python pickler lets us change one opcode
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING), as the official pickles hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def write_python2_pickle(path: Path, obj) -> Path:
    """Pickle ``obj`` (protocol 2) as Python 2 would, numpy buffers as ``str``."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    data = buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)
    return Path(path)


def _write_image(path: Path, seed: int) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    cv2.imwrite(str(path), image)


def _body_joints(rng: np.random.Generator) -> np.ndarray:
    """24 joints of a standing person about 1.7 m tall, centred at the origin (world frame)."""
    heights = np.linspace(-0.85, 0.85, 24)
    sides = np.tile([-0.2, 0.0, 0.2], 8)
    return np.stack([sides, heights, 0.05 * rng.normal(size=24)], 1)


def write_3dpw(root: Path, split: str = "test", frames: int = 5, actors: int = 2,
               sequence: str = "courtyard_fixture_00") -> Path:
    """ROOT/sequenceFiles/<split>/<sequence>.pkl and ROOT/imageFiles/<sequence>/image_%05d.jpg."""
    root = Path(root)
    rng = np.random.default_rng(0)
    cam_poses = np.tile(np.eye(4), (frames, 1, 1))
    cam_poses[:, 2, 3] = 6.0  # the world origin 6 m in front of the camera
    data = {
        "sequence": sequence,
        "genders": ["m", "f"][:actors] + ["m"] * max(0, actors - 2),
        "betas": [rng.normal(size=10) for _ in range(actors)],
        "poses": [0.1 * rng.normal(size=(frames, 72)) for _ in range(actors)],
        "trans": [rng.normal(size=(frames, 3)) for _ in range(actors)],
        "jointPositions": [],
        "poses2d": [],
        "campose_valid": [],
        "cam_poses": cam_poses,
        "cam_intrinsics": _intrinsics(),
        "img_frame_ids": np.arange(frames),
    }
    for actor in range(actors):
        joints = _body_joints(rng) + [0.5 * actor - 0.25, 0, 0]
        motion = 0.01 * np.arange(frames)[:, None, None]
        data["jointPositions"].append((joints[None] + motion).reshape(frames, 72))
        poses2d = np.zeros((frames, 3, 18))
        poses2d[:, :2] = rng.uniform(10, 54, size=(frames, 2, 18))
        poses2d[:, 2] = rng.uniform(0.2, 1.0, size=(frames, 18))
        data["poses2d"].append(poses2d)
        valid = np.ones(frames, dtype=bool)
        valid[-1] = actor == 0  # the second actor leaves before the last frame
        data["campose_valid"].append(valid)
    write_python2_pickle(root / "sequenceFiles" / split / f"{sequence}.pkl", data)
    for i in range(frames):
        _write_image(root / "imageFiles" / sequence / f"image_{i:05d}.jpg", i)
    return root


def _hand_joints(rng: np.random.Generator, depth: float) -> np.ndarray:
    """21 joints of a hand about 15 cm long, ``depth`` metres in front of the camera."""
    wrist = np.array([0.0, 0.05, depth])
    fingers = [wrist + [0.02 * (f - 2), -0.025 * (j + 1), 0.0] for f in range(5) for j in range(4)]
    return np.stack([wrist, *fingers]) + 0.002 * rng.normal(size=(21, 3))


def write_freihand(root: Path, labels: int = 3, versions: int = 2,
                   evaluation: int = 2) -> Path:
    """ROOT/training_*.json, training/rgb/%08d.jpg (``versions`` backgrounds) and evaluation."""
    root = Path(root)
    rng = np.random.default_rng(1)
    for split, n, copies in (("training", labels, versions), ("evaluation", evaluation, 1)):
        xyz = [_hand_joints(rng, 0.5) for _ in range(n)]
        files = {
            "K": [_intrinsics().tolist() for _ in range(n)],
            "xyz": [j.tolist() for j in xyz],
            "mano": [[(0.1 * rng.normal(size=61)).tolist()] for _ in range(n)],
            "scale": [0.03 for _ in range(n)],
            "verts": [(j[rng.integers(0, 21, 778)] + 0.005 * rng.normal(size=(778, 3))).tolist()
                      for j in xyz],
        }
        for kind, values in files.items():
            (root / f"{split}_{kind}.json").parent.mkdir(parents=True, exist_ok=True)
            (root / f"{split}_{kind}.json").write_text(json.dumps(values))
        for i in range(n * copies):
            _write_image(root / split / "rgb" / f"{i:08d}.jpg", 100 + i)
    return root


def write_ho3d(root: Path, sequences: dict[str, int] | None = None, evaluation: int = 2) -> Path:
    """ROOT/{train,evaluation}.txt and ROOT/<split>/<seq>/{meta/*.pkl, rgb/*.jpg} (HO3D v3)."""
    root = Path(root)
    rng = np.random.default_rng(2)
    sequences = {"ABF10": 4, "MC1": 3} if sequences is None else sequences
    lines = []
    for sequence, frames in sequences.items():
        for i in range(frames):
            frame = f"{i:04d}"
            joints_cv = _hand_joints(rng, 0.5)
            meta = {
                "camMat": _intrinsics(),
                "handPose": 0.1 * rng.normal(size=48),
                "handBeta": 0.1 * rng.normal(size=10),
                "handTrans": rng.normal(size=3),
                "handJoints3D": joints_cv @ np.diag([1.0, -1.0, -1.0]),  # stored OpenGL
                "objName": "003_cracker_box",
                "objRot": rng.normal(size=(3, 1)),
            }
            write_python2_pickle(root / "train" / sequence / "meta" / f"{frame}.pkl", meta)
            _write_image(root / "train" / sequence / "rgb" / f"{frame}.jpg", 200 + i)
            lines.append(f"{sequence}/{frame}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    lines = []
    for i in range(evaluation):
        frame = f"{i:04d}"
        meta = {"camMat": _intrinsics(), "handJoints3D": np.array([0.0, 0.0, -0.5]),
                "handBoundingBox": np.array([16.0, 16.0, 48.0, 48.0])}
        write_python2_pickle(root / "evaluation" / "SM1" / "meta" / f"{frame}.pkl", meta)
        _write_image(root / "evaluation" / "SM1" / "rgb" / f"{frame}.jpg", 300 + i)
        lines.append(f"SM1/{frame}")
    (root / "evaluation.txt").write_text("\n".join(lines) + "\n")
    return root
