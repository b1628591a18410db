"""FreiHAND (Zimmermann et al., ICCV 2019) from its official layout.

    ROOT/training_K.json  training_xyz.json  training_mano.json  training_scale.json
    ROOT/training_verts.json            (read when vertices=True)
    ROOT/training/rgb/%08d.jpg          (32,560 labelled frames x 4 backgrounds: image i has
                                         the labels of i mod 32,560)
    ROOT/evaluation_K.json  evaluation_xyz.json  evaluation_verts.json  evaluation_mano.json
    ROOT/evaluation/rgb/%08d.jpg

Labels (all right hands, camera frame, metres): ``keypoints_3d`` the 21 joints of ``*_xyz``
(FreiHAND's order is OpenPose's hand order: joint set ``mano21``), ``keypoints_2d`` their
projection with ``*_K``, ``vertices`` the 778 MANO vertices of ``*_verts``, and from each
61-value ``*_mano`` vector: ``global_orient`` (0:3), ``hand_pose`` (3:48), ``betas`` (48:58)
as the release stores them (its ``transl`` 58:61 is the release's own translation and is not
given). FreiHAND is a set of single frames: ``clip_length`` is not supported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from extpose_sdk.datasets.base import FrameRecord, SequenceReader, project, split_names
from extpose_sdk.datasets.files import DatasetFileError, require
from extpose_sdk.files import read_json
from extpose_sdk.subjects import HAND

SPLITS = ("training", "evaluation")


class FreiHAND(SequenceReader):
    """FreiHAND frames of one split (``training`` or ``evaluation``).

    Args:
        vertices: read ``*_verts.json`` (large for training); default: only for evaluation.
    """

    name = "freihand"
    subject = HAND

    def __init__(self, root: str | Path, split: str = "evaluation", *,
                 vertices: bool | None = None, **options) -> None:
        self.root = Path(root)
        self.split = split_names(split, SPLITS, self.name)
        self.with_vertices = (split == "evaluation") if vertices is None else vertices
        if options.get("clip_length") is not None:
            raise ValueError("freihand: single frames only; clip_length is not supported")
        super().__init__(**options)

    def _labels(self, kind: str, what: str) -> list:
        path = self.root / f"{self.split}_{kind}.json"
        data = read_json(require(path, what), error=DatasetFileError, what=what)
        if not isinstance(data, list):
            raise DatasetFileError(f"{path}: expected a list, got {type(data).__name__}")
        return data

    def read_sequences(self) -> dict[str, list[FrameRecord]]:
        intrinsics = self._labels("K", "camera intrinsics, one 3x3 per frame")
        xyz = self._labels("xyz", "21 3D joints per frame, metres")
        mano = self._labels("mano", "61 MANO values per frame")
        verts = self._labels("verts", "778 MANO vertices per frame") if self.with_vertices else None
        n = len(xyz)
        for name, values in (("K", intrinsics), ("mano", mano), ("verts", verts)):
            if values is not None and len(values) != n:
                raise DatasetFileError(f"{self.root / f'{self.split}_{name}.json'}: {len(values)} "
                                       f"entries but {self.split}_xyz.json has {n}")
        images = require(self.root / self.split / "rgb", "FreiHAND images %08d.jpg")
        versions = 1
        while (images / f"{versions * n:08d}.jpg").exists():
            versions += 1
        records = []
        for index in range(n * versions):
            i = index % n
            joints = np.asarray(xyz[i], dtype=np.float64)
            if joints.shape != (21, 3):
                raise DatasetFileError(f"{self.split}_xyz.json entry {i}: expected shape (21, 3), "
                                       f"got {joints.shape}")
            k = np.asarray(intrinsics[i], dtype=np.float64)
            params = np.asarray(mano[i], dtype=np.float64).reshape(-1)
            if params.shape != (61,):
                raise DatasetFileError(f"{self.split}_mano.json entry {i}: expected 61 values, "
                                       f"got {params.shape[0]}")
            labels = {
                "keypoints_3d": np.concatenate([joints, np.ones((21, 1))], 1),
                "global_orient": params[0:3],
                "hand_pose": params[3:48],
                "betas": params[48:58],
                "has_global_orient": True,
                "has_hand_pose": True,
                "has_betas": True,
                "is_right": 1.0,
                "focal_length": k[[0, 1], [0, 1]],
                "joint_set": HAND.joint_set,
            }
            if verts is not None:
                labels["vertices"] = np.asarray(verts[i], dtype=np.float64)
                labels["has_vertices"] = True
            points = np.concatenate([project(joints, k), np.ones((21, 1))], 1)
            records.append(FrameRecord(images / f"{index:08d}.jpg", index, points, labels))
        return {self.split: records}
