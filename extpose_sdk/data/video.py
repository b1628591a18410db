"""Reading video frames: decord when installed (extra ``video``), OpenCV otherwise.

Both readers give the same frames: RGB ``uint8`` arrays of shape ``(H, W, 3)``. Frames are read
in chunks of ``chunk_size`` so memory does not grow with the video's length.

    reader = open_video("clip.mp4")            # decord if installed, else OpenCV
    for start, frames in reader.chunks():       # frames: (n, H, W, 3) uint8, RGB
        ...

A missing file raises ``FileNotFoundError`` naming the path; a file that cannot be opened or a
frame that cannot be decoded raises ``VideoReadError`` naming the path and the frame index.

A container's declared frame count is a hint, never trusted: ``len(reader)`` is what the header
says, ``chunks()`` yields what actually decodes. A file that ends early yields every frame that
decoded (a last, shorter chunk) before the error. A header declaring more frames than the file
could hold (fewer than ``MIN_BYTES_PER_FRAME`` bytes a frame) is not given to decord, which would
try to allocate for all of them and abort the process; ``backend="auto"`` then reads it with
OpenCV, ``backend="decord"`` refuses it with a ``VideoReadError`` saying so.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Image suffixes read as frames when the input is a directory.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

BACKENDS = ("auto", "decord", "opencv")

#: No real video stores a frame in fewer bytes (a container index entry alone takes 4 to 16).
MIN_BYTES_PER_FRAME = 8


class VideoReadError(RuntimeError):
    """A video could not be opened, or one of its frames could not be decoded.

    ``frame`` is the index of the first frame that could not be read (None when the file itself
    could not be opened); ``path`` is the file.
    """

    def __init__(self, message: str, *, path: str | None = None, frame: int | None = None):
        super().__init__(message)
        self.path = path
        self.frame = frame


class ImplausibleHeaderError(VideoReadError):
    """The container declares more frames than the file could hold (a damaged or forged header)."""


class FrameReader:
    """Frames of one video, read in order in chunks. Subclasses implement ``_frame(index)``
    (or ``chunks`` itself). A frame that fails ends the reading after the frames before it,
    a short last chunk included, were yielded; so does a frame of another size than the first."""

    path: str = "<frames>"
    num_frames: int = 0
    fps: float = 0.0
    chunk_size: int = 64

    def __len__(self) -> int:
        return self.num_frames

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(start_index, frames (n, H, W, 3) uint8 RGB)`` for consecutive chunks."""
        shape = None
        for start in range(0, self.num_frames, self.chunk_size):
            stop = min(start + self.chunk_size, self.num_frames)
            frames: list[np.ndarray] = []
            try:
                for index in range(start, stop):
                    frame = self._frame(index)
                    shape = shape or frame.shape
                    if frame.shape != shape:
                        raise self._failed(
                            index, f"it is {frame.shape[1]}x{frame.shape[0]} but the first frame "
                            f"is {shape[1]}x{shape[0]}; the frames of one clip share a size"
                        )  # fmt: skip
                    frames.append(frame)
            except VideoReadError:
                if frames:  # every frame before the failure
                    yield start, np.stack(frames)
                raise
            yield start, np.stack(frames)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, frames in self.chunks():
            yield from frames

    def _frame(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def _failed(self, index: int, why: str = "") -> VideoReadError:
        detail = f": {why}" if why else ""
        return VideoReadError(
            f"{self.path}: frame {index} of {self.num_frames} could not be read{detail}",
            path=self.path,
            frame=index,
        )


def _declared_frame_count(path: str) -> int:
    """The frame count the container declares, read with OpenCV (-1 when unknown)."""
    import cv2

    capture = cv2.VideoCapture(path)
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else -1
    finally:
        capture.release()


class OpenCVReader(FrameReader):
    """Frames decoded by OpenCV's ``VideoCapture``, read sequentially, converted BGR -> RGB.

    Reads until the decoder stops, whatever the header declares (``len()``: the declared count,
    0 when unknown). Stopping before the declared count is an error, raised after the frames
    that did decode were yielded.
    """

    def __init__(self, path: str | Path, chunk_size: int = 64) -> None:
        import cv2

        self.path = _existing(path)
        self.chunk_size = chunk_size
        self._capture = cv2.VideoCapture(self.path)
        if not self._capture.isOpened():
            raise VideoReadError(f"{self.path}: OpenCV cannot open this video", path=self.path)
        self.num_frames = max(int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self._next = 0

    def chunks(self, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """Chunks from frame ``start`` on (frames before it are decoded and dropped: exact)."""
        import cv2

        if self._next != 0:  # a second pass: rewind
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._next = 0
        declared = self.num_frames
        while self._next < start:
            if not self._capture.grab():
                raise self._failed(self._next, "the file ends early (truncated?)")
            self._next += 1
        while True:
            start, frames = self._next, []
            while len(frames) < self.chunk_size:
                ok, frame = self._capture.read()
                if not ok or frame is None:
                    break
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                self._next += 1
            if frames:
                self.num_frames = max(self.num_frames, self._next)
                yield start, np.stack(frames)
            if len(frames) < self.chunk_size:  # the decoder stopped
                break
        if self._next == 0:
            raise self._failed(0, "no frame could be decoded")
        if self._next < declared:
            self.num_frames = declared
            raise self._failed(self._next, "the file ends early (truncated?)")

    def close(self) -> None:
        self._capture.release()


class DecordReader(FrameReader):
    """Frames decoded by decord, a chunk at a time with ``get_batch``."""

    def __init__(self, path: str | Path, chunk_size: int = 64) -> None:
        import decord

        self.path = _existing(path)
        self.chunk_size = chunk_size
        declared = _declared_frame_count(self.path)
        size = Path(self.path).stat().st_size
        if declared * MIN_BYTES_PER_FRAME > size:
            raise ImplausibleHeaderError(
                f"{self.path}: the header declares {declared} frames in a {size}-byte file, which "
                "cannot be true (a damaged or forged file); decord would run out of memory on it: "
                "read it with OpenCV (extpose predict --backend opencv; Python: backend='opencv')",
                path=self.path,
            )
        try:
            self._reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=1)
        except Exception as error:  # decord raises its own DECORDError / RuntimeError
            raise VideoReadError(
                f"{self.path}: decord cannot open this video ({error})", path=self.path
            ) from error
        decodable = len(self._reader)
        # decord silently drops frames it cannot index (a truncated file); the container's own
        # count tells, so both readers fail at the same frame.
        self.num_frames = max(decodable, declared)
        self._decodable = decodable
        self.fps = float(self._reader.get_avg_fps() or 0.0)
        if self.num_frames <= 0:
            raise VideoReadError(f"{self.path}: the video declares no frames", path=self.path)

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """decord's chunks until it fails or its index ends; then OpenCV from that frame on.

        decord is unreliable on a damaged file: after an error its decoder stays broken, and
        its read-ahead fails on frames that do decode (which ones varies from run to run). So
        from the first failure on, OpenCV decodes the rest sequentially, exactly as the OpenCV
        reader does: every frame that decodes is kept, and the error names the same frame."""
        index = 0
        while index < min(self.num_frames, self._decodable):
            stop = min(index + self.chunk_size, self.num_frames, self._decodable)
            try:
                frames = self._reader.get_batch(list(range(index, stop))).asnumpy()
            except Exception:  # noqa: BLE001 - decord raises its own DECORDError
                break
            yield index, frames
            index += len(frames)
        if index < self.num_frames:
            fallback = OpenCVReader(self.path, chunk_size=self.chunk_size)
            fallback.num_frames = max(fallback.num_frames, self.num_frames)
            try:
                yield from fallback.chunks(start=index)
            finally:
                fallback.close()

    def close(self) -> None:
        self._reader = None


class ArrayReader(FrameReader):
    """Frames already in memory: an ``(T, H, W, 3)`` uint8 array or a sequence of images."""

    def __init__(self, frames: np.ndarray | Sequence[np.ndarray], chunk_size: int = 64) -> None:
        self._frames = frames
        self.num_frames = len(frames)
        self.chunk_size = chunk_size

    def _frame(self, index: int) -> np.ndarray:
        return as_rgb_frame(self._frames[index], index)


class ImageFolderReader(FrameReader):
    """The images of a directory, in name order, as frames (read with OpenCV)."""

    def __init__(self, path: str | Path, chunk_size: int = 64) -> None:
        self.path = _existing(path)
        self.files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise VideoReadError(
                f"{self.path}: no image ({', '.join(IMAGE_SUFFIXES)}) in this directory",
                path=self.path,
            )
        self.num_frames = len(self.files)
        self.chunk_size = chunk_size

    def _frame(self, index: int) -> np.ndarray:
        return read_image(self.files[index], frame=index)


def read_image(path: str | Path, *, frame: int | None = None) -> np.ndarray:
    """One image file as an ``(H, W, 3)`` uint8 RGB array."""
    import cv2

    path = _existing(path)
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        where = f" (frame {frame})" if frame is not None else ""
        raise VideoReadError(f"{path}: the image cannot be decoded{where}", path=path, frame=frame)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def fixed_mmap_threshold(size: int = 128 * 1024) -> bool:
    """Ask glibc to mmap every allocation >= ``size`` (what ``MALLOC_MMAP_THRESHOLD_`` does).

    glibc otherwise raises its threshold after the first large free, so per-frame buffers (frames,
    crops) are carved from the heap between small long-lived allocations (the results) and the
    heap cannot shrink: resident memory then grows with a video's length although no object holds
    it (measured: 1.2 GB -> 1.6 GB from 500 to 2,000 frames; flat with this). Process-wide, so
    only the ``extpose predict`` command and the benchmark call it. False where not glibc.
    """
    import ctypes

    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, size))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def decord_available() -> bool:
    return importlib.util.find_spec("decord") is not None


def open_video(source: Any, *, backend: str = "auto", chunk_size: int = 64) -> FrameReader:
    """A ``FrameReader`` for a video file, a directory of images, or frames in memory.

    ``backend``: ``"decord"``, ``"opencv"`` or ``"auto"`` (decord when installed).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; available: {', '.join(BACKENDS)}")
    if isinstance(source, FrameReader):
        return source
    if not isinstance(source, (str, Path)):
        return ArrayReader(source, chunk_size=chunk_size)
    path = Path(_existing(source))
    if path.is_dir():
        return ImageFolderReader(path, chunk_size=chunk_size)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ArrayReader([read_image(path)], chunk_size=chunk_size)
    if backend == "decord" or (backend == "auto" and decord_available()):
        try:
            return DecordReader(path, chunk_size=chunk_size)
        except ImplausibleHeaderError:
            if backend == "decord":
                raise
    return OpenCVReader(path, chunk_size=chunk_size)


def _existing(path: str | Path) -> str:
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    return str(path)


def as_rgb_frame(frame: Any, index: int, what: str = "frame", also: str = "") -> np.ndarray:
    """``frame`` as an ``(H, W, 3)`` uint8 RGB array, or a ``ValueError`` naming ``what`` it
    is (``frame 3``, ``image 0``), what else is accepted (``also``), and the shape and dtype
    it has instead."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"{what} {index}: expected an (H, W, 3) uint8 RGB image{also}, got shape "
            f"{frame.shape} dtype {frame.dtype}"
        )
    return frame
