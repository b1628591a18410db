"""COCO keypoint JSON: detector results and ground-truth annotation files.

Results (what COCO evaluation reads, what mmpose / ViTPose write): a JSON list of
``{"image_id", "category_id", "keypoints": [x, y, score] * K, "score"}``.
Annotations: a JSON object with ``images`` and ``annotations`` (``keypoints`` as
``[x, y, v] * K`` with visibility v in 0, 1, 2, and ``bbox`` as ``[x, y, w, h]``); COCO-WholeBody's
``foot_kpts``, ``face_kpts``, ``lefthand_kpts`` and ``righthand_kpts`` are appended to make 133
points. A visibility above 0 becomes confidence 1, visibility 0 confidence 0.

    for frame in CocoKeypointSource("person_keypoints_val2017.json")():
        frame.frame, frame.points.shape        # image id, (N, 17, 3)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from extpose_sdk.keypoints.container import Keypoints
from extpose_sdk.keypoints.files import KeypointFileError, flat_triplets, read_json
from extpose_sdk.keypoints.layouts import layout_for_count
from extpose_sdk.keypoints.numpy_files import LAYOUT_FLAG

WHOLEBODY_PARTS = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")


def _xywh_to_xyxy(box: Any, where: str) -> list[float]:
    if not isinstance(box, list) or len(box) != 4:
        raise KeypointFileError(f"{where}: bbox must be [x, y, width, height], got {box!r}")
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


class CocoKeypointSource:
    """Keypoints per image from a COCO keypoint results or annotations JSON file.

    Args:
        path: the JSON file.
        layout: keypoint layout; by default from the number of keypoints (17 -> coco17,
            133 -> coco_wholebody133).
        category_id: keep only this category (annotations: ``person`` = 1); None keeps all.
        min_score: results only: drop detections with a lower ``score``.
        include_crowd: annotations only: keep ``iscrowd`` annotations (default no).

    Calling the source yields one ``Keypoints`` per image (``frame`` = image id) in the order of
    the file's ``images`` (annotations) or of first appearance (results); an image with no
    person gives an empty ``Keypoints``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        layout: str | None = None,
        category_id: int | None = None,
        min_score: float = 0.0,
        include_crowd: bool = False,
    ) -> None:
        self.path = Path(path)
        self.layout = layout
        self.category_id = category_id
        self.min_score = min_score
        self.include_crowd = include_crowd

    def __iter__(self) -> Iterator[Keypoints]:
        return self()

    def __call__(self) -> Iterator[Keypoints]:
        content = read_json(self.path)
        if isinstance(content, list):
            yield from self._results(content)
        elif isinstance(content, dict) and "annotations" in content:
            yield from self._annotations(content)
        else:
            raise KeypointFileError(
                f"{self.path}: not a COCO keypoint file: expected a list of results or an object "
                f"with 'images' and 'annotations', got {type(content).__name__}"
                + (f" with keys {sorted(content)[:8]}" if isinstance(content, dict) else "")
            )

    def _people(
        self,
        entries: list[tuple[int, dict]],
        image_id: Any,
        parts: tuple[str, ...],
        as_visibility: bool,
    ):
        points, boxes, scores = [], [], []
        for index, entry in entries:
            where = f"{self.path}: entry {index} (image {image_id})"
            values: list[float] = []
            for part in parts:
                if part not in entry:
                    raise KeypointFileError(f"{where}: missing {part!r}")
                values += flat_triplets(entry[part], f"{where} {part!r}")
            person = np.asarray(values, dtype=np.float32).reshape(-1, 3)
            if as_visibility:
                person[:, 2] = (person[:, 2] > 0).astype(np.float32)
            points.append(person)
            boxes.append(_xywh_to_xyxy(entry["bbox"], where) if "bbox" in entry else None)
            scores.append(float(entry.get("score", person[:, 2].mean() if len(person) else 0.0)))
        counts = {len(p) for p in points}
        if len(counts) > 1:
            raise KeypointFileError(
                f"{self.path}: image {image_id} mixes people with {sorted(counts)} keypoints"
            )
        return points, boxes, scores

    def _make(
        self, image_id: Any, points: list, boxes: list, scores: list, k: int | None
    ) -> Keypoints:
        try:
            layout = self.layout or (layout_for_count(k) if k else None)
        except ValueError as error:
            raise KeypointFileError(
                f"{self.path}: image {image_id}: {error}; {LAYOUT_FLAG}"
            ) from None
        if layout is None:
            raise KeypointFileError(f"{self.path}: cannot tell the keypoint layout; {LAYOUT_FLAG}")
        from extpose_sdk.keypoints.layouts import get_layout

        try:
            count = get_layout(layout).num_keypoints
        except KeyError as error:
            raise KeypointFileError(f"{self.path}: {error}") from None
        array = np.stack(points) if points else np.zeros((0, count, 3), np.float32)
        if array.shape[1] != count:
            raise KeypointFileError(
                f"{self.path}: image {image_id}: layout {layout!r} has {count} keypoints, file has {array.shape[1]}"
            )
        box_array = None
        if points and all(b is not None for b in boxes):
            box_array = np.asarray(boxes, dtype=np.float32)
        try:
            return Keypoints(
                array,
                layout,
                boxes=box_array,
                scores=np.asarray(scores, np.float32),
                frame=image_id,
            )
        except ValueError as error:
            raise KeypointFileError(f"{self.path}: image {image_id}: {error}") from None

    def _group(self, entries: list) -> dict[Any, list[tuple[int, dict]]]:
        grouped: dict[Any, list[tuple[int, dict]]] = {}
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or "image_id" not in entry:
                raise KeypointFileError(
                    f"{self.path}: entry {index} is not an object with an 'image_id'"
                )
            if (
                self.category_id is not None
                and entry.get("category_id", self.category_id) != self.category_id
            ):
                continue
            grouped.setdefault(entry["image_id"], []).append((index, entry))
        return grouped

    def _results(self, results: list) -> Iterator[Keypoints]:
        grouped = self._group(results)
        first = next((e for entries in grouped.values() for _, e in entries), {})
        k = len(first.get("keypoints", [])) // 3 or None
        for image_id, entries in grouped.items():
            entries = [(i, e) for i, e in entries if float(e.get("score", 1.0)) >= self.min_score]
            points, boxes, scores = self._people(
                entries, image_id, ("keypoints",), as_visibility=False
            )
            yield self._make(image_id, points, boxes, scores, k)

    def _annotations(self, content: dict) -> Iterator[Keypoints]:
        annotations = content["annotations"]
        if not isinstance(annotations, list):
            raise KeypointFileError(f"{self.path}: 'annotations' must be a list")
        images = content.get("images")
        if not isinstance(images, list):
            raise KeypointFileError(f"{self.path}: annotations file without an 'images' list")
        grouped = self._group(annotations)
        wholebody = any("lefthand_kpts" in a for a in annotations if isinstance(a, dict))
        parts = WHOLEBODY_PARTS if wholebody else ("keypoints",)
        k = None
        for image in images:
            if not isinstance(image, dict) or "id" not in image:
                raise KeypointFileError(f"{self.path}: an entry of 'images' has no 'id'")
            entries = [
                (i, a)
                for i, a in grouped.get(image["id"], [])
                if self.include_crowd or not a.get("iscrowd", 0)
            ]
            points, boxes, scores = self._people(entries, image["id"], parts, as_visibility=True)
            k = len(points[0]) if points else k
            yield self._make(image["id"], points, boxes, scores, k or (133 if wholebody else 17))


def coco_results(frames: list[Keypoints], category_id: int = 1) -> list[dict]:
    """``Keypoints`` per image -> a COCO keypoint results list (``json.dump`` it)."""
    results = []
    for frame in frames:
        for person, box, score in zip(frame.points, frame.boxes, frame.scores, strict=True):
            entry = {
                "image_id": frame.frame,
                "category_id": category_id,
                "keypoints": [round(float(v), 3) for v in person.reshape(-1)],
                "score": float(score),
            }
            if np.isfinite(box).all():
                entry["bbox"] = [
                    float(box[0]),
                    float(box[1]),
                    float(box[2] - box[0]),
                    float(box[3] - box[1]),
                ]
            results.append(entry)
    return results
