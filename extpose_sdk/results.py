"""What prediction returns: one ``PersonResult`` per frame and person, gathered in ``Results``.

    results = pipeline.video("clip.mp4")
    results.frames[0].people[0].params["betas"]     # (10,)
    arrays = results.to_numpy()                     # one array per field, people stacked
    results.save("out/results.npz")                 # or .json

Coordinates: ``box`` and ``keypoints`` (the 2D evidence that was used) and ``keypoints_2d`` (the
model's 3D joints projected into the full image) are full-image pixels; ``cam_t`` is the
full-image camera translation (metres) of the mesh; ``joints_3d`` and ``vertices`` are in the
body model's frame, before ``cam_t`` (present only when a body model was given).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np


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

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field that is set, as arrays keyed by name (params flattened in)."""
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
        return out


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
    a checkpoint: its meshes are then not meaningful.
    """

    frames: list[FrameResult] = attrs.field(factory=list)
    model: str = ""
    random_weights: bool = False
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
        (keypoints, say) is left out rather than padded.
        """
        people = [p.arrays() for p in self.people]
        out: dict[str, np.ndarray] = {}
        names = set.intersection(*(set(p) for p in people)) if people else {"frame", "track_id"}
        for name in sorted(names):
            values = [p[name] for p in people]
            try:
                out[name] = np.stack(values) if values else np.zeros((0,), dtype=np.int64)
            except ValueError:  # ragged (e.g. keypoints of different layouts): keep as objects
                out[name] = np.array(values, dtype=object)
        out["num_frames"] = np.asarray(len(self.frames))
        return out

    def metadata(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "random_weights": self.random_weights,
            "complete": self.complete,
            "error": self.error,
            "num_frames": len(self.frames),
            "fps": self.fps,
        }

    def to_json(self) -> str:
        """The results as JSON: metadata and a list of frames, each with its people."""
        frames = [
            {
                "index": frame.index,
                "people": [
                    {name: _jsonable(value) for name, value in person.arrays().items()}
                    for person in frame.people
                ],
            }
            for frame in self.frames
        ]
        return json.dumps({**self.metadata(), "frames": frames})

    def save(self, path: str | Path) -> Path:
        """Write ``.npz`` (arrays of ``to_numpy()`` plus metadata) or ``.json`` by suffix."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            path.write_text(self.to_json())
        elif path.suffix == ".npz":
            arrays = {k: v for k, v in self.to_numpy().items() if v.dtype != object}
            np.savez(path, **arrays, metadata=np.asarray(json.dumps(self.metadata())))
        else:
            raise ValueError(f"{path}: results are saved as .npz or .json, not {path.suffix!r}")
        return path


def load_results(path: str | Path) -> dict[str, Any]:
    """Read back a saved ``.npz`` (arrays + ``metadata`` dict) or ``.json`` results file."""
    path = Path(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with np.load(path, allow_pickle=False) as data:
        out: dict[str, Any] = {k: data[k] for k in data.files if k != "metadata"}
        out["metadata"] = json.loads(str(data["metadata"]))
    return out


def _jsonable(value: np.ndarray) -> Any:
    value = np.asarray(value)
    if value.dtype.kind == "f":
        return np.round(value.astype(np.float64), 6).tolist()
    return value.tolist()
