"""3DPW (von Marcard et al., ECCV 2018) from its official layout.

    ROOT/sequenceFiles/{train,validation,test}/<sequence>.pkl
    ROOT/imageFiles/<sequence>/image_%05d.jpg

Each sequence pickle (Python 2, read with a restricted unpickler) holds per actor: SMPL
``poses`` (N, 72) and ``trans`` (N, 3) in world coordinates, ``betas``, ``genders``,
``jointPositions`` (N, 72: 24 SMPL joints, world), OpenPose ``poses2d`` (N, 3, 18), and per
frame ``cam_poses`` (N, 4, 4 world -> camera), ``cam_intrinsics`` (3, 3), ``campose_valid``
and ``img_frame_ids``. A sample is one actor in one frame with a valid camera pose; a sequence
of the reader is one actor's track of consecutive frames (``<sequence>/<actor>``, and
``<sequence>/<actor>.1``... for the parts after frames without a valid camera pose).

Labels: ``keypoints_3d`` are the 24 SMPL joints of ``jointPositions`` in the camera frame
(joint set ``smpl24``), ``keypoints_2d`` their projection; ``global_orient`` is rotated into the
camera frame; ``body_pose`` and ``betas`` (first 10) as given; ``gender``. The 3DPW protocol
scores HMR2.0's 14 LSP joints of the 44-joint set: the Evaluator regresses them from the
ground-truth SMPL parameters with the (gendered) body model. ``detected_keypoints_2d`` are the
official OpenPose detections in ``coco17`` order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from extpose_sdk.datasets.base import (
    FrameRecord,
    SequenceReader,
    project,
    split_names,
)
from extpose_sdk.datasets.files import DatasetFileError, read_pickle, require
from extpose_sdk.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle

SPLITS = ("train", "validation", "test")
#: OpenPose COCO-18 index of each COCO-17 joint (COCO-18 adds the neck at 1).
COCO17_FROM_OPENPOSE18 = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
_GENDERS = {"m": "male", "f": "female", "male": "male", "female": "female"}
_NEEDED = ("poses", "trans", "betas", "jointPositions", "cam_poses", "cam_intrinsics",
           "campose_valid", "img_frame_ids")


class ThreeDPW(SequenceReader):
    """3DPW frames (or clips) of one split. See the module docstring for the labels."""

    name = "3dpw"

    def __init__(self, root: str | Path, split: str = "test", **options) -> None:
        self.root = Path(root)
        self.split = split_names(split, SPLITS, self.name)
        super().__init__(**options)

    def read_sequences(self) -> dict[str, list[FrameRecord]]:
        folder = require(self.root / "sequenceFiles" / self.split,
                         "3DPW sequence pickles: ROOT/sequenceFiles/<split>/*.pkl")
        files = sorted(folder.glob("*.pkl"))
        if not files:
            raise DatasetFileError(f"no sequence pickles (*.pkl) in {folder}")
        sequences: dict[str, list[FrameRecord]] = {}
        for path in files:
            sequences.update(self._read_sequence(path))
        return sequences

    def _read_sequence(self, path: Path) -> dict[str, list[FrameRecord]]:
        data = read_pickle(path, "3DPW sequence pickle")
        if not isinstance(data, dict):
            raise DatasetFileError(f"{path}: expected a dict, got {type(data).__name__}")
        missing = [key for key in _NEEDED if key not in data]
        if missing:
            raise DatasetFileError(f"{path}: missing keys {missing} (not a 3DPW sequence file?)")
        sequence = str(data.get("sequence", path.stem))
        intrinsics = np.asarray(data["cam_intrinsics"], dtype=np.float64)
        cam_poses = np.asarray(data["cam_poses"], dtype=np.float64)
        frame_ids = np.asarray(data["img_frame_ids"]).astype(int)
        genders = data.get("genders", ["neutral"] * len(data["poses"]))
        tracks: dict[str, list[FrameRecord]] = {}
        for actor in range(len(data["poses"])):
            poses = np.asarray(data["poses"][actor], dtype=np.float64)
            joints = np.asarray(data["jointPositions"][actor], dtype=np.float64).reshape(-1, 24, 3)
            betas = np.asarray(data["betas"][actor], dtype=np.float64).reshape(-1)[:10]
            valid = np.asarray(data["campose_valid"][actor]).astype(bool)
            poses2d = data.get("poses2d")
            gender = _GENDERS.get(str(genders[actor]).lower(), "neutral")
            records = []
            for i in np.flatnonzero(valid):
                rotation, translation = cam_poses[i, :3, :3], cam_poses[i, :3, 3]
                joints_cam = joints[i] @ rotation.T + translation
                points_2d = np.concatenate([project(joints_cam, intrinsics), np.ones((24, 1))], 1)
                root = rotation @ axis_angle_to_rotmat(poses[i, :3])
                detected = None
                if poses2d is not None:
                    openpose = np.asarray(poses2d[actor][i], dtype=np.float32).T  # (18, 3)
                    detected = openpose[list(COCO17_FROM_OPENPOSE18)]
                image = self.root / "imageFiles" / sequence / f"image_{frame_ids[i]:05d}.jpg"
                labels = {
                    "keypoints_3d": np.concatenate([joints_cam, np.ones((24, 1))], 1),
                    "global_orient": rotmat_to_axis_angle(root),
                    "body_pose": poses[i, 3:72],
                    "betas": betas,
                    "has_global_orient": True,
                    "has_body_pose": True,
                    "has_betas": True,
                    "focal_length": intrinsics[[0, 1], [0, 1]],
                    "joint_set": "smpl24",
                    "gender": gender,
                }
                records.append(FrameRecord(image, int(frame_ids[i]), points_2d, labels,
                                           detected=detected, detected_layout="coco17"))
            tracks.update(_split_at_gaps(f"{sequence}/{actor}", records))
        return tracks


def _split_at_gaps(name: str, records: list[FrameRecord]) -> dict[str, list[FrameRecord]]:
    """A track cut where frames are missing (invalid camera pose), so clips hold consecutive
    frames: ``name``, then ``name.1``, ``name.2``... for the parts after each gap."""
    parts: list[list[FrameRecord]] = []
    for record in records:
        if not parts or record.frame != parts[-1][-1].frame + 1:
            parts.append([])
        parts[-1].append(record)
    return {name if i == 0 else f"{name}.{i}": part for i, part in enumerate(parts)}
