"""HO3D v2 / v3 (Hampali et al., CVPR 2020) from its official layout.

    ROOT/train.txt  ROOT/evaluation.txt       lines "<sequence>/<frame id>"
    ROOT/{train,evaluation}/<sequence>/meta/<frame id>.pkl
    ROOT/{train,evaluation}/<sequence>/rgb/<frame id>.jpg   (v3; v2 has .png)

Each meta pickle (read with a restricted unpickler) holds ``camMat`` (3, 3) and, for
training frames, ``handPose`` (48: global 3 + 15 joints x 3, axis-angle), ``handBeta`` (10),
``handTrans`` and ``handJoints3D`` (21, 3); evaluation frames hold ``handBoundingBox`` and only
the root joint (their labels are scored by the official server). Coordinates are OpenGL
(y up, z backwards): the reader turns them into the OpenCV camera frame of the sample layout.

Labels (all right hands): ``keypoints_3d`` the 21 joints reordered to OpenPose hand order
(joint set ``mano21``), ``keypoints_2d`` their projection, ``global_orient`` in the OpenCV
camera frame, ``hand_pose``, ``betas``. Sequences give clips of T frames with ``clip_length``.
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
from extpose_sdk.subjects import HAND

SPLITS = ("train", "evaluation")
#: OpenGL -> OpenCV camera axes.
GL_TO_CV = np.diag([1.0, -1.0, -1.0])
#: HO3D (MANO order, fingertips appended) -> OpenPose hand order.
OPENPOSE_FROM_HO3D = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)


class HO3D(SequenceReader):
    """HO3D frames (or clips) of one split."""

    name = "ho3d"
    subject = HAND

    def __init__(self, root: str | Path, split: str = "train", **options) -> None:
        self.root = Path(root)
        self.split = split_names(split, SPLITS, self.name)
        super().__init__(**options)

    def read_sequences(self) -> dict[str, list[FrameRecord]]:
        listing = require(self.root / f"{self.split}.txt", "list of '<sequence>/<frame id>'")
        sequences: dict[str, list[FrameRecord]] = {}
        for number, line in enumerate(listing.read_text().splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            if line.count("/") != 1:
                raise DatasetFileError(f"{listing}:{number}: expected '<sequence>/<frame id>', "
                                       f"got {line!r}")
            sequence, frame = line.split("/")
            sequences.setdefault(sequence, []).append(self._record(sequence, frame))
        return sequences

    def _record(self, sequence: str, frame: str) -> FrameRecord:
        folder = self.root / self.split / sequence
        meta = read_pickle(folder / "meta" / f"{frame}.pkl", "HO3D per-frame meta pickle")
        if not isinstance(meta, dict) or meta.get("camMat") is None:
            raise DatasetFileError(f"{folder / 'meta' / f'{frame}.pkl'}: no 'camMat' "
                                   "(not an HO3D meta file?)")
        image = folder / "rgb" / f"{frame}.jpg"
        if not image.exists() and (folder / "rgb" / f"{frame}.png").exists():
            image = folder / "rgb" / f"{frame}.png"
        k = np.asarray(meta["camMat"], dtype=np.float64)
        labels: dict = {"is_right": 1.0, "focal_length": k[[0, 1], [0, 1]], "joint_set": HAND.joint_set}
        joints = meta.get("handJoints3D")
        box = meta.get("handBoundingBox")
        if joints is not None and np.asarray(joints).size == 63:
            joints = np.asarray(joints, dtype=np.float64).reshape(21, 3) @ GL_TO_CV.T
            joints = joints[list(OPENPOSE_FROM_HO3D)]
            labels["keypoints_3d"] = np.concatenate([joints, np.ones((21, 1))], 1)
            points = np.concatenate([project(joints, k), np.ones((21, 1))], 1)
        else:  # evaluation frames: no 3D joints, the official box
            if box is None:
                raise DatasetFileError(f"{folder / 'meta' / f'{frame}.pkl'}: neither "
                                       "'handJoints3D' nor 'handBoundingBox'")
            labels["keypoints_3d"] = np.zeros((21, 4))
            points = np.zeros((21, 3))
        if meta.get("handPose") is not None:
            pose = np.asarray(meta["handPose"], dtype=np.float64).reshape(48)
            root = GL_TO_CV @ axis_angle_to_rotmat(pose[:3])
            labels.update(global_orient=rotmat_to_axis_angle(root), hand_pose=pose[3:],
                          betas=np.asarray(meta["handBeta"], dtype=np.float64).reshape(10),
                          has_global_orient=True, has_hand_pose=True, has_betas=True)
        box = None if box is None else np.asarray(box, dtype=np.float32).reshape(4)
        return FrameRecord(image, int(frame), points, labels, box=box)
