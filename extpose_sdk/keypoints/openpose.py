"""OpenPose JSON, one file per frame (``--write_json``): ``{"people": [{"pose_keypoints_2d":
[x, y, c] * 25, "hand_left_keypoints_2d": [...] * 21, "hand_right_keypoints_2d": ..., ...}]}``.

    source = OpenPoseJsonSource("openpose_out/", part="pose")      # or part="hand_left"
    for frame in source():
        frame.frame, frame.points.shape        # file stem, (N, 25, 3)

Files are read in sorted name order (OpenPose numbers them ``<video>_000000000000_keypoints.json``).
An empty list for a part (OpenPose writes one when the part was not run) reads as all joints
missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from extpose_sdk.keypoints.container import Keypoints
from extpose_sdk.keypoints.files import KeypointFileError, flat_triplets, read_json

#: part -> (JSON key, layout)
PARTS: dict[str, tuple[str, str]] = {
    "pose": ("pose_keypoints_2d", "openpose_body25"),
    "hand_left": ("hand_left_keypoints_2d", "openpose_hand21"),
    "hand_right": ("hand_right_keypoints_2d", "openpose_hand21"),
}


def read_openpose_frame(path: str | Path, part: str = "pose") -> Keypoints:
    """The people of one OpenPose JSON file as ``Keypoints`` (``frame`` = the file's stem)."""
    if part not in PARTS:
        raise ValueError(f"unknown OpenPose part {part!r}; available: {', '.join(PARTS)}")
    key, layout = PARTS[part]
    path = Path(path)
    content = read_json(path)
    if not isinstance(content, dict) or not isinstance(content.get("people"), list):
        raise KeypointFileError(
            f"{path}: not an OpenPose JSON file (expected an object with a 'people' list)"
        )
    from extpose_sdk.keypoints.layouts import get_layout

    count = get_layout(layout).num_keypoints
    people = []
    for index, person in enumerate(content["people"]):
        if not isinstance(person, dict) or key not in person:
            raise KeypointFileError(f"{path}: person {index} has no {key!r}")
        values = flat_triplets(person[key], f"{path}: person {index} {key!r}")
        if not values:
            people.append(np.zeros((count, 3), np.float32))
            continue
        if len(values) != 3 * count:
            raise KeypointFileError(
                f"{path}: person {index} {key!r} has {len(values) // 3} keypoints; {layout} needs {count}"
                + (
                    " (the COCO-18 body model is not supported; run OpenPose with BODY_25)"
                    if len(values) == 54
                    else ""
                )
            )
        people.append(np.asarray(values, np.float32).reshape(count, 3))
    points = np.stack(people) if people else np.zeros((0, count, 3), np.float32)
    try:
        is_right = None if part == "pose" else np.full(len(points), part == "hand_right")
        return Keypoints(points, layout, frame=path.name.removesuffix(".json"), is_right=is_right)
    except ValueError as error:
        raise KeypointFileError(f"{path}: {error}") from None


class OpenPoseJsonSource:
    """Keypoints per frame from a folder of OpenPose JSON files (or one file).

    Args:
        path: a folder of ``*.json`` files or a single file.
        part: ``pose`` (BODY_25), ``hand_left`` or ``hand_right`` (hand-21).
    """

    def __init__(self, path: str | Path, *, part: str = "pose") -> None:
        if part not in PARTS:
            raise ValueError(f"unknown OpenPose part {part!r}; available: {', '.join(PARTS)}")
        self.path = Path(path)
        self.part = part

    def files(self) -> list[Path]:
        if self.path.is_dir():
            files = sorted(self.path.glob("*.json"))
            if not files:
                raise KeypointFileError(f"{self.path}: folder holds no .json file")
            return files
        if self.path.is_file():
            return [self.path]
        raise KeypointFileError(f"{self.path}: no such file or folder")

    def __iter__(self) -> Iterator[Keypoints]:
        return self()

    def __call__(self) -> Iterator[Keypoints]:
        for file in self.files():
            yield read_openpose_frame(file, self.part)


def write_openpose_frame(path: str | Path, frames: dict[str, Keypoints]) -> None:
    """Write one frame's people as OpenPose JSON; ``frames`` maps parts to ``Keypoints``
    with the same number of people (``{"pose": body25, "hand_left": hands...}``)."""
    counts = {len(kp) for kp in frames.values()}
    if len(counts) > 1:
        raise ValueError(f"write_openpose_frame: parts have different numbers of people: {counts}")
    people = [{"person_id": [-1]} for _ in range(counts.pop() if counts else 0)]
    for part, keypoints in frames.items():
        key, layout = PARTS[part]
        if keypoints.layout != layout:
            raise ValueError(
                f"write_openpose_frame: part {part!r} needs layout {layout!r}, got {keypoints.layout!r}"
            )
        for person, points in zip(people, keypoints.points, strict=True):
            person[key] = [round(float(v), 3) for v in points.reshape(-1)]
    Path(path).write_text(json.dumps({"version": 1.3, "people": people}))
