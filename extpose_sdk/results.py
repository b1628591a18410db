"""What prediction returns: one ``PersonResult`` per frame and person, gathered in ``Results``.

    results = pipeline.video("clip.mp4")
    results.frames[0].people[0].params["betas"]     # (10,)
    arrays = results.to_numpy()                     # one array per field, people stacked
    results.save("out/results.npz")                 # or .json

While a clip runs, ``ResultsStream`` appends each finished frame to a JSON Lines file and flushes
it, so a crash or a kill keeps every frame written so far; ``load_results`` reads that file back
too (a torn last line, cut by a kill mid-write, is skipped). JSON is strict: NaN and infinities
are written as ``null`` and counted in the metadata (``non_finite``). Files are written to a
temporary name and renamed into place, so an interrupted save never leaves half a file.

Coordinates: ``box`` and ``keypoints`` (the 2D evidence that was used) and ``keypoints_2d`` (the
model's 3D joints projected into the full image) are full-image pixels; ``cam_t`` is the
full-image camera translation (metres) of the mesh; ``joints_3d`` and ``vertices`` are in the
body model's frame, before ``cam_t`` (present only when a body model was given).

Whole-body results (``extpose_sdk.whole_body``) are body results that also hold each hand:
``left_hand`` / ``right_hand`` (a ``PersonResult`` of the hand, or None) and ``hands_missing``
(``{side: reason}`` for the hands that are absent). As arrays and in the files, each hand's
fields are the body's with the prefix ``left_hand_`` / ``right_hand_`` (``left_hand_hand_pose``,
``left_hand_cam_t``...), and ``left_hand_missing`` / ``right_hand_missing`` hold the reason
(``""`` when the hand is there); in ``to_numpy`` / ``.npz`` a hand absent from some person-frames
has NaN there, where the other fields of a person that only some have are left out.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np

#: The sides of a whole-body result's hands, in the order they are listed.
HAND_SIDES = ("left", "right")


def _array_or_none(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value)


@attrs.define
class PersonResult:
    """One person (or hand) in one frame.

    Attributes:
        frame: frame index in the clip.
        track_id: stable id of this person across frames (-1 for single images).
        box: (4,) x1, y1, x2, y2 full-image pixels, the box the crop was cut from.
        params: SMPL / MANO parameters as rotation matrices: ``global_orient (1, 3, 3)``,
            ``body_pose (23, 3, 3)`` or ``hand_pose (15, 3, 3)``, ``betas (10,)``.
        pred_cam: (3,) the crop camera the head predicted (scale, tx, ty).
        cam_t: (3,) camera translation of the mesh in the full image.
        keypoints: (K, 3) the 2D keypoints that were used (x, y, confidence), or None.
        joints_3d: (J, 3) body-model joints, or None without a body model.
        vertices: (V, 3) body-model vertices, or None without a body model.
        keypoints_2d: (J, 2) ``joints_3d`` projected into the full image, or None.
        is_right: for hands, whether this is a right hand (None for bodies).
        left_hand, right_hand: whole-body results only: the person's hands (results of the
            hand model, their ``cam_t`` placing the hand's wrist on the body's), or None.
        hands_missing: whole-body results only (None otherwise): ``{side: reason}`` for each
            absent hand (``occluded``, ``out of the image``, ``no keypoints``).
        own_cam_t: a hand placed at a body's wrist: the translation its own crop camera gave,
            before ``cam_t`` moved it there (None otherwise).
    """

    frame: int
    track_id: int
    box: np.ndarray = attrs.field(converter=np.asarray)
    params: dict[str, np.ndarray] = attrs.field(factory=dict)
    pred_cam: np.ndarray | None = attrs.field(default=None, converter=_array_or_none)
    cam_t: np.ndarray | None = attrs.field(default=None, converter=_array_or_none)
    keypoints: np.ndarray | None = attrs.field(default=None, converter=_array_or_none)
    joints_3d: np.ndarray | None = attrs.field(default=None, converter=_array_or_none)
    vertices: np.ndarray | None = attrs.field(default=None, converter=_array_or_none)
    keypoints_2d: np.ndarray | None = attrs.field(default=None, converter=_array_or_none)
    is_right: bool | None = None
    left_hand: PersonResult | None = None
    right_hand: PersonResult | None = None
    hands_missing: dict[str, str] | None = None
    own_cam_t: np.ndarray | None = attrs.field(default=None, converter=_array_or_none)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field that is set, as arrays keyed by name (params flattened in; a whole-body
        result's hands with the prefixes ``left_hand_`` / ``right_hand_``)."""
        out: dict[str, np.ndarray] = {
            "frame": np.asarray(self.frame),
            "track_id": np.asarray(self.track_id),
            "box": self.box,
        }
        out.update({name: np.asarray(value) for name, value in self.params.items()})
        for name in ("pred_cam", "cam_t", "keypoints", "joints_3d", "vertices", "keypoints_2d"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.is_right is not None:
            out["is_right"] = np.asarray(self.is_right)
        if self.own_cam_t is not None:
            out["own_cam_t"] = self.own_cam_t
        if self.hands_missing is not None:
            for side in HAND_SIDES:
                prefix = f"{side}_hand_"
                out[f"{prefix}missing"] = np.asarray(self.hands_missing.get(side, ""))
                hand = getattr(self, f"{side}_hand")
                if hand is not None:
                    out.update({prefix + name: value for name, value in hand.arrays().items()
                                if name not in ("frame", "track_id", "is_right")})
        return out

    def is_finite(self) -> bool:
        """False when any number of this result is NaN or infinite (the model or input broke)."""
        return all(
            np.isfinite(value).all()
            for value in self.arrays().values()
            if np.asarray(value).dtype.kind == "f"
        )


@attrs.define
class FrameResult:
    """The people found in one frame."""

    index: int
    people: list[PersonResult] = attrs.field(factory=list)


@attrs.define
class Results:
    """Prediction results for a clip or a batch of images.

    ``complete`` is False when reading stopped early (``error`` says why); the frames read
    before the failure are kept. ``random_weights`` is True when the model was not loaded from
    a checkpoint: its meshes are then not meaningful; ``weights`` names the checkpoint (a path
    or registered weights such as ``extpose-hamer-synthetic``); ``camera`` says which camera
    the full-image translations and projections assume (``cameras.describe_camera``).
    """

    frames: list[FrameResult] = attrs.field(factory=list)
    model: str = ""
    random_weights: bool = False
    weights: str = ""
    camera: dict[str, Any] = attrs.field(factory=dict)
    complete: bool = True
    error: str = ""
    fps: float = 0.0

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> FrameResult:
        return self.frames[index]

    @property
    def people(self) -> list[PersonResult]:
        return [person for frame in self.frames for person in frame.people]

    def to_numpy(self) -> dict[str, np.ndarray]:
        """One array per field with the people of all frames stacked on the first axis.

        ``frame`` and ``track_id`` say whose row is whose. A field that only some people have
        (keypoints, say) is left out rather than padded, except a whole-body result's hand
        fields (``left_hand_*``, ``right_hand_*``): NaN where the hand is absent
        (``left_hand_missing`` says why).
        """
        people = [p.arrays() for p in self.people]
        out: dict[str, np.ndarray] = {}
        names = set.intersection(*(set(p) for p in people)) if people else {"frame", "track_id"}
        names |= _hand_fields(people)
        for name in sorted(names):
            values = _padded([p.get(name) for p in people])
            try:
                out[name] = np.stack(values) if values else np.zeros((0,), dtype=np.int64)
            except ValueError:  # ragged (e.g. keypoints of different layouts): keep as objects
                out[name] = np.array(values, dtype=object)
        out["num_frames"] = np.asarray(len(self.frames))
        return out

    @property
    def non_finite(self) -> int:
        """How many person-frames hold a NaN or infinite number (written as null in JSON)."""
        return sum(not person.is_finite() for person in self.people)

    def metadata(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "random_weights": self.random_weights,
            "weights": self.weights,
            "camera": self.camera,
            "complete": self.complete,
            "error": self.error,
            "num_frames": len(self.frames),
            "fps": self.fps if np.isfinite(self.fps) else 0.0,
            "non_finite": self.non_finite,
        }

    def to_json(self) -> str:
        """The results as strict JSON (NaN -> null): metadata and the frames with their people."""
        frames = [frame_json(frame) for frame in self.frames]
        return json.dumps({**self.metadata(), "frames": frames}, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        """Write ``.npz`` (arrays of ``to_numpy()`` plus metadata), ``.json`` or ``.jsonl``.

        The file is written under a temporary name and renamed into place: an interrupted save
        leaves the earlier file (if any) whole.
        """
        path = Path(path)
        if path.suffix not in (".json", ".jsonl", ".npz"):
            raise ValueError(
                f"{path}: results are saved as .npz or .json (or .jsonl), not {path.suffix!r}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")
        try:
            if path.suffix == ".json":
                partial.write_text(self.to_json())
            elif path.suffix == ".jsonl":
                with ResultsStream(partial, self) as stream:
                    stream.write(self.frames)
                    stream.finish(self)
            else:
                arrays = {k: v for k, v in self.to_numpy().items() if v.dtype != object}
                np.savez(partial, **arrays, metadata=np.asarray(json.dumps(self.metadata())))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return path


def _hand_fields(people: list[dict[str, np.ndarray]]) -> set[str]:
    """The numeric hand fields of whole-body results that some of ``people`` have."""
    prefixes = tuple(f"{side}_hand_" for side in HAND_SIDES)
    return {name for person in people for name, value in person.items()
            if name.startswith(prefixes) and value.dtype.kind in "fiub"}


def _padded(values: list[np.ndarray | None]) -> list[np.ndarray]:
    """``values`` with each missing one (None) as NaN of the shape of the others."""
    like = next((v for v in values if v is not None), None)
    if like is None:
        return values
    filler = np.full(np.shape(like), np.nan)
    return [filler if v is None else v for v in values]


def frame_json(frame: FrameResult) -> dict[str, Any]:
    """One frame as plain JSON values (NaN and infinities as None)."""
    return {
        "index": frame.index,
        "people": [
            {name: _jsonable(value) for name, value in person.arrays().items()}
            for person in frame.people
        ],
    }


class ResultsStream:
    """Finished frames appended to a JSON Lines file as they are made: a crash keeps them.

    Line 1 is the metadata (``"stream": "extpose-results"``), then one line per frame, then a
    last line ``{"end": true, ...}`` with the final metadata (``complete``, ``error``). ``write``
    flushes after each call (the pipeline calls it once per finished window), so a process killed
    with SIGKILL loses at most the window being written; ``load_results`` skips a torn last line.
    """

    MAGIC = "extpose-results"

    def __init__(self, path: str | Path, results: Results) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.frames = 0
        self._line({"stream": self.MAGIC, **results.metadata()})

    def _line(self, value: dict[str, Any]) -> None:
        self._file.write(json.dumps(value, allow_nan=False) + "\n")

    def write(self, frames: list[FrameResult]) -> None:
        """Append ``frames`` and flush them to the operating system."""
        for frame in frames:
            self._line(frame_json(frame))
        self.frames += len(frames)
        self._file.flush()

    def finish(self, results: Results) -> None:
        """The closing line: the run ended (``complete`` / ``error`` say how)."""
        self._line({"end": True, **results.metadata(), "num_frames": self.frames})
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultsStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def load_results(path: str | Path) -> dict[str, Any]:
    """Read back a saved ``.npz`` (arrays + ``metadata`` dict), ``.json`` or ``.jsonl`` file.

    A ``.jsonl`` stream reads like the ``.json`` file; one that has no closing line (the process
    was killed) reads with ``complete: false`` and an ``error`` saying so.
    """
    path = Path(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".jsonl":
        return _load_stream(path)
    with np.load(path, allow_pickle=False) as data:
        out: dict[str, Any] = {k: data[k] for k in data.files if k != "metadata"}
        out["metadata"] = json.loads(str(data["metadata"]))
    return out


def _load_stream(path: Path) -> dict[str, Any]:
    lines = path.read_text(encoding="utf-8").split("\n")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        header = {}
    if header.get("stream") != ResultsStream.MAGIC:
        raise ValueError(f"{path}: not an ExtPose results stream (first line is not its header)")
    header.pop("stream")
    frames, end = [], None
    for line in lines[1:]:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            break  # the torn last line of a killed process (or the empty end)
        if value.get("end"):
            end = value
            break
        frames.append(value)
    metadata = {**header, **(end or {})}
    metadata.pop("end", None)
    if end is None:
        metadata["complete"] = False
        metadata["error"] = metadata.get("error") or (
            f"the run stopped after {len(frames)} frames without finishing (killed?)"
        )
        metadata["non_finite"] = sum(
            _holds_null(person) for frame in frames for person in frame["people"]
        )
    metadata["num_frames"] = len(frames)
    return {**metadata, "frames": frames}


def _holds_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_null(v) for v in value)
    return value is None


def _jsonable(value: np.ndarray) -> Any:
    value = np.asarray(value)
    if value.dtype.kind == "f":
        value = np.round(value.astype(np.float64), 6)
        if not np.isfinite(value).all():
            return np.where(np.isfinite(value), value, None).tolist()
        return value.tolist()
    return value.tolist()


def save_results(results: Results, targets: list[Path], stream: ResultsStream | None) -> None:
    """Write ``results`` to every target (``.npz``, ``.json``, ``.jsonl``): the one place
    results are saved, complete or not; then the stream (which holds the same frames) goes.
    A second Ctrl-C while saving is ignored, so the save completes."""
    with _ignoring_ctrl_c():
        if stream is not None:
            stream.finish(results)
            stream.close()
        for target in targets:
            if stream is None or target != stream.path:
                results.save(target)
        if stream is not None and stream.path not in targets:
            stream.path.unlink(missing_ok=True)


@contextlib.contextmanager
def _ignoring_ctrl_c() -> Iterator[None]:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def keypoint_error(results: Results, layout: str, subject: Any) -> float:
    """How far the meshes' projected joints (``keypoints_2d``) land from the 2D keypoints the
    model was given (in ``layout``, e.g. ``coco17``), for ``subject`` (``body`` / ``hand``): per
    person-frame the mean distance over the given keypoints that are confident and that the
    subject's joints include, divided by the longer side of the person's box; the median over
    person-frames. A sanity check on any run: random weights land near 1, and shipped weights
    must land within 0.1 on their sample. NaN when no person has both."""
    from extpose_sdk.keypoints.layouts import convert
    from extpose_sdk.subjects import get_subject

    subject = get_subject(subject)
    errors = []
    for person in results.people:
        if person.keypoints is None or person.keypoints_2d is None:
            continue
        given = convert(person.keypoints, layout, subject.label_layout)
        projected = person.keypoints_2d[: len(given)]
        confident = given[:, 2] > 0
        side = float(np.max(person.box[2:] - person.box[:2]))
        if not confident.any() or side <= 0:
            continue
        distance = np.linalg.norm(projected[confident, :2] - given[confident, :2], axis=1)
        errors.append(float(distance.mean()) / side)
    return float(np.median(errors)) if errors else float("nan")
