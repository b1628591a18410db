"""Prediction on images and videos: the streaming loop of ``Pipeline`` (built by
``Pipeline.from_plugins``, in ``extpose_sdk.assembly``).

    pipeline = Pipeline.from_plugins(model="extpose-hamer", checkpoint="model.ckpt",
                                     body_model="MANO_RIGHT.pkl", frames=16)
    results = pipeline("hand.jpg")                      # one image (path or (H, W, 3) RGB uint8)
    results = pipeline([image_a, image_b])              # several images, each on its own
    results = pipeline.video("clip.mp4", keypoints="clip_keypoints.npz", save_to="out/r.npz")

For each frame, people come from the 2D keypoints when given (their boxes, and the skeleton
modality). With neither keypoints nor boxes, the pipeline's ``detector`` finds them on each frame:
``from_plugins`` sets the registered keypoint source ``mediapipe`` (extpose-plugin-mediapipe, with
MediaPipe installed), asked for the subject's layout (``layout="coco17"`` for bodies,
``"openpose_hand21"`` for hands); a detector is a keypoint source with ``detect(image, frame=)``
and optionally ``load()``. Where it is missing, ``MissingKeypointsError`` says what to install or
pass, before any frame is read or any file written. ``detector=None`` (the default of a
``Pipeline`` built by hand) runs the whole frame as one person.
People are tracked across frames by box overlap
(``extpose_sdk.tracking``); each track is run through the model in sliding windows of ``frames``
frames (``extpose_sdk.windows``), each frame's output taken from the window where it is most
central. Frames are read in chunks and dropped once their outputs are known, so memory does not
grow with the video's length; windows are planned as frames arrive (``WindowPlanner``), never from
the frame count a video's header declares.

With ``save_to=``, each finished window's frames are appended to a JSON Lines stream beside the
first target (``results.jsonl`` for ``results.npz``) and flushed, so a crash or a kill keeps them;
the targets are written when the clip ends (also when it stops early: on an error or Ctrl-C, with
``complete: false``), and the stream is then removed. Keypoints are checked against the model and
the video: hand keypoints for a body model (or the reverse), a file with fewer or more frames than
the video, or points far outside the image raise ``KeypointFitError`` saying what does not fit.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from extpose_sdk.assembly import assemble, keypoint_source_for
from extpose_sdk.data.video import FrameReader, VideoReadError, as_rgb_frame, open_video
from extpose_sdk.keypoints.files import KeypointFileError
from extpose_sdk.keypoints.fit import KeypointFitError, check_fit
from extpose_sdk.results import FrameResult, PersonResult, Results, ResultsStream, save_results
from extpose_sdk.subjects import BODY, Subject, get_subject
from extpose_sdk.tracking import BoxTracker
from extpose_sdk.windows import Window, WindowPlanner

RANDOM_WEIGHTS_NOTE = "random weights: the mesh is not meaningful; train or pass --checkpoint"
#: The keypoint source a pipeline runs on each frame when given neither keypoints nor boxes.
DEFAULT_DETECTOR = "mediapipe"


class MissingKeypointsError(ValueError):
    """No keypoints or boxes were given and the pipeline's detector cannot run (not installed)."""


@attrs.define
class _Person:
    """One person's crop inputs in one frame, waiting for its window to run."""

    track_id: int
    box: np.ndarray
    tensors: dict[str, Any]
    keypoints: np.ndarray | None
    is_right: bool | None


@attrs.define(eq=False)
class Pipeline:
    """A mesh-recovery model with its pre- and post-processing. Build with ``from_plugins``.

    Args:
        model: ``model(inputs, present=...)`` with ``inputs[name]`` of shape ``(B, T, C, H, W)``
            returning the head's fields with leading dims ``(B, T)`` (``MeshRecoveryModel``).
        modalities: name -> ``Modality``, in the model's order (``rgb`` first).
        subject: what the model reconstructs (``extpose_sdk.subjects``: ``BODY``, ``HAND`` or
            their names): crop size, left-hand mirroring, the pose reported.
        body_model: a module from ``extpose_sdk.body_models.load_body_model`` or None.
        keypoints: default keypoint source for ``video`` (an iterable of ``Keypoints``), or None.
        frames: window length T; ``overlap``: frames shared by neighbouring windows.
        random_weights: the model was not loaded from a checkpoint (said in every result).
        weights: the checkpoint's path or registered name (said in every result).
        camera: the camera of the frames (``extpose_sdk.cameras.Camera``, or a focal length in
            pixels with the principal point at the centre) for full-image translations and
            projections; ``None``: HMR2.0 / HaMeR's assumption (focal 5000 / 256 x max(W, H)).
        detector: the registered keypoint source run on each frame given neither keypoints nor
            boxes (``from_plugins``: ``"mediapipe"``, ``DEFAULT_DETECTOR``); ``None``: the whole
            frame is one person.
    """

    model: Any
    modalities: dict[str, Any]
    subject: Subject = attrs.field(default=BODY, converter=get_subject)
    body_model: Any = None
    keypoints: Any = None
    frames: int = 1
    overlap: int | None = None
    name: str = ""
    random_weights: bool = False
    weights: str = ""
    camera: Any = None
    rescale: float | None = None
    crop_size: int = 256
    device: Any = "cpu"
    dtype: Any = None
    tracker_options: dict[str, Any] = attrs.field(factory=dict)
    chunk_size: int = 64
    detector: str | None = None
    _detector_source: Any = attrs.field(default=None, init=False, repr=False)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_plugins(cls, model: str | None = None, **options: Any) -> Pipeline:
        """Assemble a pipeline from registered components: a recipe by name
        (``model="extpose-hamer"``, ``checkpoint=``, recipe options) or ``backbone=`` and
        ``head=`` (``modalities=``), with ``body_model=``, ``keypoints=``, ``frames=``,
        ``overlap=``, ``mask=``, ``device=``, ``dtype=``, ``seed=``, ``detector=`` (the
        keypoint source for frames given no keypoints, default ``"mediapipe"``; None: the whole
        frame). See
        ``extpose_sdk.assembly.assemble``; parts of different subjects raise ``FitError``."""
        detector = options.pop("detector", DEFAULT_DETECTOR)
        pipeline = assemble(cls, model, **options)
        pipeline.detector = detector  # a whole-body pipeline's is its body pipeline's
        return pipeline

    def keypoint_detector(self) -> Any:
        """The ``detector`` built for this subject's keypoint layout and loaded (once), or None
        without one. Raises ``MissingKeypointsError`` saying what to install or pass."""
        if self.detector is None:
            return None
        if self._detector_source is not None:
            return self._detector_source
        from extpose_sdk.plugins import UnknownComponentError, get_registries

        try:
            source = get_registries().keypoint_source.build(
                self.detector, layout=self.subject.detector_layout
            )
            load = getattr(source, "load", None)
            if load is not None:
                load()  # MediaPipe: imports it and loads its model, or names what to install
        except (UnknownComponentError, ImportError, ValueError) as error:
            reason = str(error)
            if isinstance(error, UnknownComponentError) and self.detector == DEFAULT_DETECTOR:
                reason = ("its plugin is not installed: pip install "
                          "'extpose-plugin-mediapipe[numpy2]' (docs/keypoints.md)")  # fmt: skip
            raise MissingKeypointsError(
                f"no 2D keypoints or boxes were given and the keypoint detector "
                f"{self.detector!r} cannot run: {reason}. Or give keypoints (extpose predict "
                "--keypoints FILE; keypoints= in Python), or run the whole frame as one person "
                "(--whole-frame; detector=None)"
            ) from error
        self._detector_source = source
        return source

    def to(self, device: Any = None, dtype: Any = None) -> Pipeline:
        """Move the model to ``device`` / ``dtype`` (bf16 runs the ViT faster where the hardware
        has it: ``extpose_sdk.precision``) and the body model to ``device``; the body model stays
        in float32, so vertices keep their precision whatever the model's dtype. Returns self."""
        self.device = device if device is not None else self.device
        self.dtype = dtype if dtype is not None else self.dtype
        if self.model is not None and hasattr(self.model, "to"):
            self.model.to(device=self.device, dtype=self.dtype)
        if self.body_model is not None and hasattr(self.body_model, "to"):
            self.body_model.to(device=self.device)
        if hasattr(self.model, "eval"):
            self.model.eval()
        return self

    # ------------------------------------------------------------------ calls
    def __call__(self, images: Any, keypoints: Any = None, boxes: Any = None) -> Results:
        """Predict on one image or a list of images, each on its own (T = 1).

        ``images``: a path, an ``(H, W, 3)`` RGB uint8 array, or a list of them. ``keypoints``:
        a ``Keypoints`` (or list, one per image); ``boxes``: ``(N, 4)`` (or list). An image with
        neither gets its keypoints from the pipeline's ``detector``.
        """
        from extpose_sdk.data.video import read_image

        single = isinstance(images, (str, Path)) or (
            isinstance(images, np.ndarray) and images.ndim == 3
        )
        images = [images] if single else list(images)
        keypoints = _per_image(keypoints, len(images), single)
        boxes = _per_image(boxes, len(images), single)
        missing = any(k is None and b is None for k, b in zip(keypoints, boxes, strict=True))
        detector = self.keypoint_detector() if missing else None  # fails before any image
        results = self._new_results()
        for index, image in enumerate(images):
            if isinstance(image, (str, Path)):
                image = read_image(image)
            image = as_rgb_frame(image, index, what="image", also=" or a path")
            if detector is not None and keypoints[index] is None and boxes[index] is None:
                keypoints[index] = detector.detect(image, frame=index)
            self.check_keypoints(keypoints[index], image.shape[:2], f"image {index}")
            people = self._people(image, keypoints[index], boxes[index], track_ids=None)
            pending = {index: people}
            results.frames.extend(
                self._run_window(
                    Window(index, index + 1, index, index + 1), pending, {index: image.shape[:2]}
                )
            )
        return results

    def video(
        self,
        source: Any,
        *,
        keypoints: Any = None,
        save_to: str | Path | list[str | Path] | None = None,
        backend: str = "auto",
        on_start: Callable[[FrameReader], Any] | None = None,
        on_frame: Callable[[np.ndarray, FrameResult], None] | None = None,
        progress: Callable[[int], Any] | bool | None = None,
    ) -> Results:
        """Predict on a video file, a directory of images, or frames in memory.

        ``keypoints``: a keypoint source (iterable of ``Keypoints`` per frame, or a detector
        with ``detect(image, frame=)``), a file, or None (then the pipeline's, else its
        ``detector`` on each frame, else the whole frame). ``save_to``: a results file (``.npz``,
        ``.json`` or ``.jsonl``) or a list of them; while the clip runs, finished frames are
        streamed to the first one's ``.jsonl`` (kept if the process dies; removed once the
        files are written). The video is opened here, once, in chunks of ``chunk_size``;
        ``on_start(reader)`` is called when it is open (its ``fps``, the frame count its header
        declares), ``on_frame(frame, result)`` for each finished frame, in order (overlays use
        it). ``progress``: ``progress(1)`` per finished frame, True for a progress bar, False /
        None for none.

        When reading fails midway or the keypoints do not fit (or their file breaks), every frame
        read so far is finished; on Ctrl-C the run stops at once with the frames finished. Either
        way they are saved to ``save_to`` with ``complete: false`` and the error, and the error
        is raised with ``error.results`` set.
        """
        targets = [Path(t) for t in (save_to if isinstance(save_to, (list, tuple)) else
                                     [save_to] if save_to is not None else [])]  # fmt: skip
        # (getattr: WholeBodyPipeline borrows this method and has no detector of its own)
        if keypoints is None and self.keypoints is None and getattr(self, "detector", None):
            keypoints = self.keypoint_detector()  # before anything is read or written
        results = self._new_results()
        stream = ResultsStream(targets[0].with_suffix(".jsonl"), results) if targets else None
        bar = None
        if progress is True:
            from tqdm import tqdm

            bar = tqdm(unit="frame", desc="predict")
            progress = bar.update
        try:
            reader = open_video(source, backend=backend, chunk_size=self.chunk_size)
            results.fps = float(getattr(reader, "fps", 0.0))
            if bar is not None:
                bar.total = len(reader) or None
            if on_start is not None:
                on_start(reader)
            self._video(reader, keypoints, results, on_frame, progress or None, stream)
        except BaseException as error:
            results.complete = False
            results.error = str(error) or ("interrupted" if isinstance(error, KeyboardInterrupt)
                                           else type(error).__name__)  # fmt: skip
            save_results(results, targets, stream)
            error.results = results  # type: ignore[attr-defined]
            raise
        finally:
            if bar is not None:
                bar.close()
        save_results(results, targets, stream)
        return results

    # ------------------------------------------------------------------ internals
    def _new_results(self) -> Results:
        from extpose_sdk.cameras import describe_camera

        return Results(model=self.name, random_weights=self.random_weights, weights=self.weights,
                       camera=describe_camera(self.camera))

    def _video(self, reader, keypoints, results, on_frame, progress, stream) -> None:
        frame_keypoints_of = FrameKeypoints(self.keypoints if keypoints is None else keypoints)
        where = frame_keypoints_of.where
        tracker = BoxTracker(**self.tracker_options)
        planner = WindowPlanner(self.frames, self._overlap())
        pending: dict[int, list[_Person]] = {}
        images: dict[int, np.ndarray] = {}
        shapes: dict[int, tuple[int, int]] = {}

        def take_frame(index: int, image: np.ndarray, frame_keypoints: Any) -> None:
            if frame_keypoints is not None:
                self.check_keypoints(frame_keypoints, image.shape[:2], f"frame {index}",
                                     where=where)  # fmt: skip
            people = self._people(image, frame_keypoints, None, track_ids=tracker)
            pending[index], shapes[index] = people, image.shape[:2]
            if on_frame is not None:
                images[index] = image

        def run(read: int, ended: bool) -> None:
            for window in planner.ready(read, ended=ended):
                frame_results = self._run_window(window, pending, shapes)
                results.frames.extend(frame_results)
                if stream is not None:
                    stream.write(frame_results)  # flushed: a kill from here on keeps them
                for frame_result in frame_results:
                    if on_frame is not None:
                        on_frame(images[frame_result.index], frame_result)
                    if progress is not None:
                        progress(1)
            keep_from = read if ended else planner.next * planner.stride
            for old in [f for f in pending if f < keep_from]:
                pending.pop(old), shapes.pop(old), images.pop(old, None)

        stream_frames(reader, frame_keypoints_of, take_frame, run)

    def check_keypoints(self, keypoints: Any, shape: tuple[int, int], frame: str,
                        where: str = "keypoints") -> None:  # fmt: skip
        """Raise ``KeypointFitError`` when ``keypoints`` (one frame's) do not fit this model or
        an image of ``shape`` (H, W) (``extpose_sdk.keypoints.fit.check_fit``)."""
        check_fit(keypoints, shape, self.subject, frame, model=self.name, where=where)

    def _overlap(self) -> int:
        if self.overlap is not None:
            return self.overlap
        return self.frames // 2

    def _people(
        self, image: np.ndarray, keypoints: Any, boxes: Any, track_ids: Any
    ) -> list[_Person]:
        """The crop inputs of each person in one frame."""
        from extpose_sdk.data.crops import make_crop, warp
        from extpose_sdk.modalities import CropEvidence

        height, width = image.shape[:2]
        points = layout = is_right = None
        if keypoints is not None:
            points, layout = keypoints.points, keypoints.layout
            is_right = keypoints.is_right
            if boxes is None:
                boxes = keypoints.boxes
        if boxes is None:
            boxes = np.array([[0.0, 0.0, width - 1.0, height - 1.0]])
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        valid = (
            np.isfinite(boxes).all(axis=1)
            & (boxes[:, 2] > boxes[:, 0])
            & (boxes[:, 3] > boxes[:, 1])
        )
        boxes = boxes[valid]
        if points is not None:
            points = points[valid]
            is_right = is_right[valid] if is_right is not None else None
        ids = track_ids.update(boxes) if track_ids is not None else np.full(len(boxes), -1)
        rescale = self._rescale(keypoints is not None)
        people = []
        for i, box in enumerate(boxes):
            # a model of right hands (HaMeR) sees a left hand's crop mirrored
            side = None if is_right is None else bool(is_right[i])
            crop = make_crop(box, image_width=width, rescale=rescale, size=self.crop_size,
                             flip=self._mirrored(side))
            evidence = CropEvidence(
                size=(self.crop_size, self.crop_size),
                transform=crop.transform,
                crop_rgb=warp(image, crop),
                keypoints=None if points is None else points[i],
                keypoint_layout=layout,
            )
            tensors = {
                name: modality(evidence) if modality.available(evidence) else None
                for name, modality in self.modalities.items()
            }
            people.append(
                _Person(
                    track_id=int(ids[i]),
                    box=box,
                    tensors=tensors,
                    keypoints=None if points is None else points[i],
                    is_right=side,
                )
            )
        return people

    def _run_window(
        self, window: Window, pending: dict[int, list[_Person]], shapes: dict[int, tuple[int, int]]
    ) -> list[FrameResult]:
        """Run each track of frames ``[start, stop)`` through the model; the kept frames' results."""
        import torch

        frames = list(range(window.start, window.stop))
        tracks: dict[Any, dict[int, _Person]] = {}
        for frame in frames:
            for number, person in enumerate(pending.get(frame, [])):
                # an untracked person (track id -1: images run one by one) is a track of its own
                key = person.track_id if person.track_id >= 0 else ("untracked", frame, number)
                tracks.setdefault(key, {})[frame] = person
        kept = {f: FrameResult(index=f) for f in range(window.keep_start, window.keep_stop)}
        for by_frame in tracks.values():
            inputs, present = {}, {}
            for name in self.modalities:
                sample = next(
                    (p.tensors[name] for p in by_frame.values() if p.tensors[name] is not None),
                    None,
                )
                if sample is None:  # absent in the whole window: zeros, marked absent
                    channels = getattr(self.modalities[name], "channels", 3)
                    sample = torch.zeros((channels, self.crop_size, self.crop_size))
                stack = torch.zeros((1, len(frames), *sample.shape), dtype=sample.dtype)
                seen = torch.zeros((1, len(frames)), dtype=torch.bool)
                for t, frame in enumerate(frames):
                    person = by_frame.get(frame)
                    if person is not None and person.tensors[name] is not None:
                        stack[0, t], seen[0, t] = person.tensors[name], True
                inputs[name] = stack.to(self.device, self.dtype or torch.float32)
                present[name] = seen.to(self.device)
            outputs = self._forward(inputs, present)
            for t, frame in enumerate(frames):
                person = by_frame.get(frame)
                if frame in kept and person is not None:
                    kept[frame].people.append(
                        self._person_result(frame, person, outputs, t, shapes[frame])
                    )
        self._add_meshes([p for f in kept.values() for p in f.people], shapes)
        return [kept[f] for f in sorted(kept)]

    def _forward(self, inputs: dict[str, Any], present: dict[str, Any]) -> Any:
        import torch

        forward = getattr(self.model, "forward", self.model)
        takes_present = "present" in inspect.signature(forward).parameters
        with torch.inference_mode():
            return self.model(inputs, present=present) if takes_present else self.model(inputs)

    def _person_result(
        self, frame: int, person: _Person, outputs: Any, t: int, shape
    ) -> PersonResult:
        """The parameters and the full-image camera of one person in one frame (``outputs``
        of its track's window, at ``t``); a mirrored left hand's camera is mirrored back."""
        from extpose_sdk.cameras import full_image_cam_t

        def pick(name: str):
            value = getattr(outputs, name, None)
            return None if value is None else value[0, t].detach().float().cpu().clone()

        params = {
            name: pick(name).numpy()
            for name in ("global_orient", self.subject.pose_key, "betas")
            if pick(name) is not None
        }
        pred_cam = pick("pred_cam")
        if pred_cam is not None and self._mirrored(person.is_right):  # as HaMeR's demo does
            pred_cam[1] = -pred_cam[1]
        result = PersonResult(
            frame=frame,
            track_id=person.track_id,
            box=person.box,
            params=params,
            pred_cam=None if pred_cam is None else pred_cam.numpy(),
            keypoints=person.keypoints,
            is_right=person.is_right,
        )
        if pred_cam is not None:
            result.cam_t = full_image_cam_t(
                pred_cam.numpy(), person.box, shape, self._rescale(person.keypoints is not None),
                self.camera,
            )
        return result

    def _add_meshes(self, people: list[PersonResult], shapes: dict[int, tuple[int, int]]) -> None:
        """Vertices, 3D joints and their full-image projection for ``people`` (a window's), with
        one run of the body model; a mirrored left hand's mesh is mirrored back (x -> -x)."""
        import torch

        people = [p for p in people if p.params]
        if self.body_model is None or not people:
            return
        with torch.inference_mode():
            body = self.body_model(**{
                name: torch.as_tensor(np.stack([p.params[name] for p in people])).to(self.device)
                for name in people[0].params
            })
        vertices = body.vertices.float().cpu().numpy()
        joints = body.joints.float().cpu().numpy()
        for i, person in enumerate(people):
            sign = np.array([-1.0 if self._mirrored(person.is_right) else 1.0, 1.0, 1.0],
                            dtype=np.float32)
            person.vertices, person.joints_3d = vertices[i] * sign, joints[i] * sign
            if person.cam_t is not None:
                from extpose_sdk.cameras import project_full_image

                person.keypoints_2d = project_full_image(person.joints_3d, person.cam_t,
                                                         shapes[person.frame], self.camera)

    def _mirrored(self, is_right: bool | None) -> bool:
        """Whether a person's crop was mirrored: a left hand, for a subject seen as right hands."""
        return self.subject.mirror_left and is_right is False

    def _rescale(self, from_keypoints: bool) -> float:
        """How much a person's box is enlarged before cropping: the subject's ``crop_rescale``
        (or ``rescale``) for boxes around keypoints, 1 for the whole frame."""
        if not from_keypoints:
            return 1.0
        return self.rescale if self.rescale is not None else self.subject.crop_rescale


_END = object()


class FrameKeypoints:
    """Each frame's keypoints from ``source``: a detector (``detect(image, frame=)``) run on the
    frame, the next entry of a keypoint file / source / iterable, or None for every frame."""

    def __init__(self, source: Any) -> None:
        if isinstance(source, (str, Path)):
            source = keypoint_source_for(source)
        self.where = str(getattr(source, "path", None) or "the keypoints")
        self.detector = source if hasattr(source, "detect") else None
        self.entries: Iterator[Any] | None = (
            None if self.detector is not None else iter(source()) if callable(source)
            else (iter(source) if source is not None else None)
        )  # fmt: skip

    def __call__(self, image: np.ndarray, index: int) -> Any:
        """Frame ``index``'s keypoints; ``KeypointFitError`` when a file ends before the video."""
        if self.detector is not None:
            return self.detector.detect(image, frame=index)
        if self.entries is None:
            return None
        entry = next(self.entries, _END)
        if entry is _END:
            raise KeypointFitError(
                f"{self.where}: the keypoints end at frame {index} but the video goes on; give a "
                "keypoint file with one entry per frame of this video"
            )
        return entry

    def check_used_up(self, read: int) -> None:
        """``KeypointFitError`` when entries are left after the video's ``read`` frames."""
        if self.entries is not None and next(self.entries, _END) is not _END:
            raise KeypointFitError(
                f"{self.where}: holds keypoints for more frames than the video's {read}; it may "
                "belong to another clip (the results of all frames are kept)"
            )


def stream_frames(reader: FrameReader, frame_keypoints_of: FrameKeypoints,
                  take_frame: Callable[[int, np.ndarray, Any], None],
                  run: Callable[[int, bool], None]) -> None:
    """Read ``reader`` chunk by chunk: ``take_frame(index, image, keypoints)`` for each frame,
    then ``run(read, ended=False)`` after each chunk (``read``: the frames read so far) and
    ``run(read, ended=True)`` at the end, also when reading fails, so that every frame read is
    kept (not on Ctrl-C: that stops at once); then the keypoints must be used up."""
    read = 0
    try:
        for start, chunk in reader.chunks():
            for offset, image in enumerate(chunk):
                index = start + offset
                take_frame(index, image, frame_keypoints_of(image, index))
                read = index + 1
            run(read, False)
    except (VideoReadError, KeypointFitError, KeypointFileError):
        run(read, True)
        raise
    run(read, True)
    frame_keypoints_of.check_used_up(read)


def _per_image(value: Any, count: int, single: bool) -> list[Any]:
    if value is None:
        return [None] * count
    if single:
        return [value]
    value = list(value)
    if len(value) != count:
        raise ValueError(f"expected one entry per image ({count}), got {len(value)}")
    return value
