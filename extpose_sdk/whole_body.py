"""Body and both hands in one call: a body pipeline (HMR2.0 / ExtPose-HMR2) and a hand pipeline
(HaMeR / ExtPose-HaMeR) run together on one video or image, one result per person and frame.

    from extpose_sdk.whole_body import WholeBodyPipeline
    pipeline = WholeBodyPipeline.from_plugins(body="extpose-hmr2", hand="extpose-hamer",
                                              body_checkpoint="hmr2.ckpt",
                                              hand_checkpoint="hamer.ckpt",
                                              smpl="SMPL_NEUTRAL.pkl", mano="MANO_RIGHT.pkl")
    # or: Pipeline.from_plugins(model="whole-body", ...) with the same options
    results = pipeline.video("clip.mp4", keypoints="clip_wholebody.npz", save_to="out/r.npz")
    person = results.frames[0].people[0]          # the body's PersonResult
    person.left_hand, person.right_hand           # the hands' PersonResults, or None
    person.hands_missing                          # {"left": "occluded"} for an absent hand

Per frame: each person's body keypoints (converted to the body model's detector layout,
``coco17``) go to the body pipeline, which tracks the people; each person's hands are found from
the same keypoints (``extpose_sdk.keypoints.hands``: COCO-WholeBody-133 hand keypoints when
confident, else a box from the wrist and elbow) and go to the hand pipeline as tracks of their
own (the person's track, one per side), so each hand keeps its own crops, skeleton image and
windows of frames. A left hand is marked ``is_right=False``: the hand pipeline mirrors its crop
for the right-hand model and mirrors the result back (the hand subject's ``mirror_left``).

Placement: with both body models (SMPL and MANO files), each hand is translated, in the
full-image camera frame, so that its wrist joint (MANO joint 0) sits on the body's wrist joint
(HMR2.0's BODY_25 ``left_wrist`` / ``right_wrist``): ``hand.cam_t = body.joints_3d[wrist] +
body.cam_t - hand.joints_3d[0]``; the hand's own estimate is kept as ``own_cam_t`` and its
``keypoints_2d`` are projected again. No rotation or scale is changed. Body and hands use one
camera (the user's when given). A hand that cannot be found is absent with the reason, never an
error for the frame.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from extpose_sdk.assembly import WHOLE_BODY, FitError, keypoint_source_for
from extpose_sdk.keypoints.hands import NO_KEYPOINTS, hand_evidence
from extpose_sdk.pipeline import Pipeline
from extpose_sdk.results import HAND_SIDES, FrameResult, PersonResult, Results
from extpose_sdk.subjects import BODY, HAND
from extpose_sdk.windows import Window, WindowPlanner

__all__ = ["WHOLE_BODY", "WholeBodyPipeline", "body_wrist_joint", "place_hand"]

#: The recipes used when none is named.
DEFAULT_BODY, DEFAULT_HAND = "extpose-hmr2", "extpose-hamer"


def body_wrist_joint(side: str) -> int:
    """The index of the body's ``side`` wrist in the body model's joints (HMR2.0's 44 start with
    OpenPose BODY_25: left 7, right 4)."""
    from extpose_sdk.keypoints.layouts import get_layout

    return get_layout(BODY.label_layout).index(f"{side}_wrist")


def place_hand(body: PersonResult, hand: PersonResult, side: str, shape: tuple[int, int],
               camera: Any = None) -> bool:
    """Translate ``hand`` so that its wrist joint sits on ``body``'s ``side`` wrist joint in the
    full-image camera frame (``camera``: ``cameras.camera_for``); keeps the hand's own
    translation as ``own_cam_t`` and projects its joints again. False (nothing changed) when
    either has no 3D joints or no translation (no body-model file)."""
    from extpose_sdk.cameras import project_full_image

    if body.joints_3d is None or body.cam_t is None or hand.joints_3d is None or hand.cam_t is None:
        return False
    wrist = np.asarray(body.joints_3d[body_wrist_joint(side)], np.float64) + body.cam_t
    hand.own_cam_t = hand.cam_t
    hand.cam_t = (wrist - hand.joints_3d[HAND.root_joint]).astype(np.float32)
    hand.keypoints_2d = project_full_image(hand.joints_3d, hand.cam_t, shape, camera)
    return True


def _hand_track(body_track: int, side: str) -> int:
    """The hand pipeline's track of a person's ``side`` hand."""
    return 2 * body_track + HAND_SIDES.index(side)


@attrs.define
class _Ids:
    """A stand-in tracker: gives the ids it holds (the hands follow their person's track)."""

    ids: Any

    def update(self, boxes: np.ndarray) -> np.ndarray:
        return np.asarray(self.ids[: len(boxes)], dtype=np.int64)


@attrs.define(eq=False)
class WholeBodyPipeline:
    """A body pipeline and a hand pipeline (``extpose_sdk.pipeline.Pipeline``) run as one.

    Args:
        body: a ``Pipeline`` of the body subject (SMPL head; ``body.body_model`` the SMPL file).
        hand: a ``Pipeline`` of the hand subject (MANO head; ``hand.body_model`` the MANO file).
        keypoints: default keypoint source for ``video`` (whole-body keypoints per frame).
        hand_threshold: a hand keypoint (or the wrist and elbow) counts when its confidence is
            at least this; ``min_hand_points``: hand keypoints needed to place a hand's box.
    The camera is the body pipeline's, given to both.
    """

    body: Pipeline
    hand: Pipeline
    keypoints: Any = None
    hand_threshold: float = 0.3
    min_hand_points: int = 4
    name: str = WHOLE_BODY

    def __attrs_post_init__(self) -> None:
        if self.body.subject != BODY or self.hand.subject != HAND:
            raise FitError(f"a whole-body pipeline needs a {BODY} model and a {HAND} model; got "
                           f"{self.body.subject} ({self.body.name}) and {self.hand.subject} "
                           f"({self.hand.name})")
        self.hand.camera = self.body.camera

    @classmethod
    def from_plugins(cls, body: str | None = None, hand: str | None = None, *,
                     body_checkpoint: str | Path | None = None,
                     hand_checkpoint: str | Path | None = None, smpl: Any = None,
                     mano: Any = None, keypoints: Any = None, camera: Any = None,
                     frames: int | None = None, overlap: int | None = None,
                     body_options: dict[str, Any] | None = None,
                     hand_options: dict[str, Any] | None = None, hand_threshold: float = 0.3,
                     min_hand_points: int = 4, **options: Any) -> WholeBodyPipeline:
        """Both pipelines from registered recipes (``Pipeline.from_plugins``): ``body`` (default
        ``extpose-hmr2``, or the recipe ``body_checkpoint``'s registered weights name) with
        ``body_checkpoint`` and the SMPL file ``smpl``; ``hand`` (default ``extpose-hamer``) with
        ``hand_checkpoint`` and the MANO file ``mano``. ``frames`` / ``overlap`` (default: what
        each checkpoint was trained with), ``camera``, ``device``, ``dtype``, ``seed`` and other
        ``options`` go to both; ``body_options`` / ``hand_options`` to one only."""
        from extpose_sdk.checkpoints import resolve_weights

        if isinstance(keypoints, (str, Path)):
            keypoints = keypoint_source_for(keypoints)
        built = {}
        for part, model, checkpoint, body_model, own, default in (
            ("body", body, body_checkpoint, smpl, body_options, DEFAULT_BODY),
            ("hand", hand, hand_checkpoint, mano, hand_options, DEFAULT_HAND),
        ):
            model = model or resolve_weights(checkpoint).model or default
            built[part] = Pipeline.from_plugins(
                model=model, checkpoint=checkpoint, body_model=body_model, camera=camera,
                frames=frames, overlap=overlap, **{**options, **(own or {})})
        return cls(built["body"], built["hand"], keypoints=keypoints,
                   hand_threshold=hand_threshold, min_hand_points=min_hand_points)

    # ------------------------------------------------------------------ what callers read
    @property
    def camera(self) -> Any:
        return self.body.camera

    @property
    def subject(self):
        """The subject of the results' people (their hands are inside them): the body."""
        return self.body.subject

    @property
    def body_model(self) -> Any:
        return self.body.body_model

    @property
    def hand_model(self) -> Any:
        return self.hand.body_model

    @property
    def random_weights(self) -> bool:
        return self.body.random_weights or self.hand.random_weights

    @property
    def chunk_size(self) -> int:
        return self.body.chunk_size

    @property
    def detector(self) -> str | None:
        """The keypoint source run on frames given no keypoints: the body pipeline's (its
        ``coco17`` body keypoints place the hands from the wrists and elbows)."""
        return self.body.detector

    @detector.setter
    def detector(self, name: str | None) -> None:
        self.body.detector = name

    def keypoint_detector(self) -> Any:
        """The body pipeline's detector, built and loaded (``Pipeline.keypoint_detector``)."""
        return self.body.keypoint_detector()

    def to(self, device: Any = None, dtype: Any = None) -> WholeBodyPipeline:
        self.body.to(device, dtype)
        self.hand.to(device, dtype)
        return self

    # ------------------------------------------------------------------ calls
    def __call__(self, images: Any, keypoints: Any = None) -> Results:
        """Predict on one image or a list of images, each on its own (T = 1). ``images``: a
        path, an ``(H, W, 3)`` RGB uint8 array or a list; ``keypoints``: a ``Keypoints`` of the
        image's people (or a list, one per image)."""
        from extpose_sdk.data.video import as_rgb_frame, read_image

        single = isinstance(images, (str, Path)) or (
            isinstance(images, np.ndarray) and images.ndim == 3
        )
        images = [images] if single else list(images)
        if keypoints is None or single:
            keypoints = [keypoints] * len(images)
        if len(keypoints) != len(images):
            raise ValueError(f"expected one entry per image ({len(images)}), got {len(keypoints)}")
        keypoints = list(keypoints)
        detector = self.keypoint_detector() if None in keypoints else None  # fails before any
        results = self._new_results()
        for index, image in enumerate(images):
            if isinstance(image, (str, Path)):
                image = read_image(image)
            image = as_rgb_frame(image, index, what="image", also=" or a path")
            if detector is not None and keypoints[index] is None:
                keypoints[index] = detector.detect(image, frame=index)
            state = _State()
            self._read_frame(state, index, image, keypoints[index], tracker=None)
            window = Window(index, index + 1, index, index + 1)
            state.body_done.update({f.index: f for f in self.body._run_window(
                window, state.body_pending, state.shapes)})
            state.hand_done.update({f.index: f for f in self.hand._run_window(
                window, state.hand_pending, state.shapes)})
            frame = self._merge(state, index)
            for person in frame.people:  # single images have no tracks
                for part in (person, person.left_hand, person.right_hand):
                    if part is not None:
                        part.track_id = -1
            results.frames.append(frame)
        return results

    def video(self, source: Any, *, keypoints: Any = None,
              save_to: str | Path | list[str | Path] | None = None, backend: str = "auto",
              on_start: Callable[[Any], Any] | None = None,
              on_frame: Callable[[np.ndarray, FrameResult], None] | None = None,
              progress: Callable[[int], Any] | bool | None = None) -> Results:
        """As ``Pipeline.video`` (the same reading, saving, streaming, errors and Ctrl-C), with
        whole-body keypoints per frame and whole-body results."""
        return Pipeline.video(self, source, keypoints=keypoints, save_to=save_to,  # type: ignore[arg-type]
                              backend=backend, on_start=on_start, on_frame=on_frame,
                              progress=progress)

    # ------------------------------------------------------------------ internals
    def _new_results(self) -> Results:
        from extpose_sdk.cameras import describe_camera

        weights = ", ".join(f"{part} {p.weights or 'random'}"
                            for part, p in (("body", self.body), ("hand", self.hand)))
        return Results(model=f"{self.name} ({self.body.name} + {self.hand.name})",
                       random_weights=self.random_weights, weights=weights,
                       camera=describe_camera(self.camera))

    def _read_frame(self, state: _State, index: int, image: np.ndarray, keypoints: Any,
                    tracker: Any, where: str = "keypoints") -> None:
        """One frame's body people, hands and missing hands, waiting for their windows."""
        from extpose_sdk.keypoints import Keypoints

        shape = image.shape[:2]
        self.body.check_keypoints(keypoints, shape, f"frame {index}", where=where)
        body_keypoints, points, layout = None, None, None
        if keypoints is not None:
            layout = keypoints.layout
            body_keypoints = keypoints.to(self.body.subject.detector_layout)
            boxes = body_keypoints.boxes
            valid = (np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0])
                     & (boxes[:, 3] > boxes[:, 1]))  # fmt: skip
            points = keypoints.points[valid]
            body_keypoints = Keypoints(body_keypoints.points[valid], body_keypoints.layout,
                                       scores=body_keypoints.scores[valid])
        if tracker is None:
            tracker = _Ids(np.arange(1 if body_keypoints is None else len(body_keypoints)))
        people = self.body._people(image, body_keypoints, None, track_ids=tracker)
        found, missing = [], {}
        for i, person in enumerate(people):
            reasons = missing.setdefault(person.track_id, {})
            for side in HAND_SIDES:
                if points is None:
                    reasons[side] = NO_KEYPOINTS
                    continue
                evidence = hand_evidence(points[i], layout, side, shape,
                                         threshold=self.hand_threshold,
                                         min_points=self.min_hand_points)
                if evidence.missing:
                    reasons[side] = evidence.missing
                else:
                    found.append((_hand_track(person.track_id, side), side, evidence))
        hands = None
        if found:
            hand_points = np.stack([
                e.keypoints if e.keypoints is not None else np.zeros((21, 3), np.float32)
                for _, _, e in found])  # no hand keypoints: the skeleton is absent for it
            hands = Keypoints(hand_points, "openpose_hand21",
                              boxes=np.stack([e.box for _, _, e in found]),
                              is_right=[side == "right" for _, side, _ in found])
        state.body_pending[index] = people
        state.hand_pending[index] = self.hand._people(
            image, hands, None, track_ids=_Ids([track for track, _, _ in found])) if found else []
        state.missing[index] = missing
        state.shapes[index] = shape

    def _merge(self, state: _State, index: int) -> FrameResult:
        """Frame ``index``'s body results with their hands placed at the wrists."""
        frame = state.body_done.pop(index)
        hands = {hand.track_id: hand for hand in state.hand_done.pop(index).people}
        missing = state.missing.pop(index)
        for person in frame.people:
            person.hands_missing = dict(missing.get(person.track_id, {}))
            for side in HAND_SIDES:
                hand = hands.get(_hand_track(person.track_id, side))
                if hand is None:
                    person.hands_missing.setdefault(side, NO_KEYPOINTS)
                    continue
                hand.track_id = person.track_id  # the person's, not the internal hand track
                place_hand(person, hand, side, state.shapes[index], self.camera)
                setattr(person, f"{side}_hand", hand)
        return frame

    def _video(self, reader, keypoints, results, on_frame, progress, stream) -> None:
        """The streaming loop (called by ``Pipeline.video``): frames are read in chunks, the
        body and the hands run in their own windows, and a frame is finished when both are."""
        from extpose_sdk.pipeline import FrameKeypoints, stream_frames
        from extpose_sdk.tracking import BoxTracker

        frame_keypoints_of = FrameKeypoints(self.keypoints if keypoints is None else keypoints)
        where = frame_keypoints_of.where
        tracker = BoxTracker(**self.body.tracker_options)
        planners = {"body": WindowPlanner(self.body.frames, self.body._overlap()),
                    "hand": WindowPlanner(self.hand.frames, self.hand._overlap())}
        state = _State()
        images: dict[int, np.ndarray] = {}
        emitted = 0

        def take_frame(index: int, image: np.ndarray, frame_keypoints: Any) -> None:
            self._read_frame(state, index, image, frame_keypoints, tracker, where=where)
            if on_frame is not None:
                images[index] = image

        def run(read: int, ended: bool) -> None:
            nonlocal emitted
            for part, planner in planners.items():
                pipeline = self.body if part == "body" else self.hand
                pending = state.body_pending if part == "body" else state.hand_pending
                done = state.body_done if part == "body" else state.hand_done
                for window in planner.ready(read, ended=ended):
                    done.update({f.index: f for f in pipeline._run_window(window, pending,
                                                                           state.shapes)})
            finished = []
            while emitted in state.body_done and emitted in state.hand_done:
                finished.append(self._merge(state, emitted))
                emitted += 1
            results.frames.extend(finished)
            if stream is not None:
                stream.write(finished)  # flushed: a kill from here on keeps them
            for frame_result in finished:
                if on_frame is not None:
                    on_frame(images[frame_result.index], frame_result)
                if progress is not None:
                    progress(1)
            keep_from = min([read if ended else p.next * p.stride for p in planners.values()]
                            + [emitted])
            for old in [f for f in state.shapes if f < keep_from]:
                state.body_pending.pop(old, None), state.hand_pending.pop(old, None)
                state.shapes.pop(old), images.pop(old, None)

        stream_frames(reader, frame_keypoints_of, take_frame, run)


@attrs.define
class _State:
    """Frames read and not yet finished: each part's crops waiting for a window, each part's
    results waiting for the other's, the missing hands and the image shapes."""

    body_pending: dict[int, list] = attrs.field(factory=dict)
    hand_pending: dict[int, list] = attrs.field(factory=dict)
    body_done: dict[int, FrameResult] = attrs.field(factory=dict)
    hand_done: dict[int, FrameResult] = attrs.field(factory=dict)
    missing: dict[int, dict[int, dict[str, str]]] = attrs.field(factory=dict)
    shapes: dict[int, tuple[int, int]] = attrs.field(factory=dict)
