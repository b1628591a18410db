"""Reading video frames: decord when installed (extra ``video``), OpenCV otherwise.

Both readers give the same frames: RGB ``uint8`` arrays of shape ``(H, W, 3)``. Frames are read
in chunks of ``chunk_size`` so memory does not grow with the video's length.

    reader = open_video("clip.mp4")            # decord if installed, else OpenCV
    for start, frames in reader.chunks():       # frames: (n, H, W, 3) uint8, RGB
        ...

A missing file raises ``FileNotFoundError`` naming the path; a file that cannot be opened or a
frame that cannot be decoded raises ``VideoReadError`` naming the path and the frame index.
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


class VideoReadError(RuntimeError):
    """A video could not be opened, or one of its frames could not be decoded.

    ``frame`` is the index of the first frame that could not be read (None when the file itself
    could not be opened); ``path`` is the file.
    """

    def __init__(self, message: str, *, path: str | None = None, frame: int | None = None):
        super().__init__(message)
        self.path = path
        self.frame = frame


class FrameReader:
    """Frames of one video, read in order in chunks. Subclasses implement ``_read``."""

    path: str = "<frames>"
    num_frames: int = 0
    fps: float = 0.0
    chunk_size: int = 64

    def __len__(self) -> int:
        return self.num_frames

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(start_index, frames (n, H, W, 3) uint8 RGB)`` for consecutive chunks."""
        for start in range(0, self.num_frames, self.chunk_size):
            stop = min(start + self.chunk_size, self.num_frames)
            yield start, self._read(start, stop)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, frames in self.chunks():
            yield from frames

    def _read(self, start: int, stop: int) -> np.ndarray:
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
    """Frames decoded by OpenCV's ``VideoCapture``, read sequentially, converted BGR -> RGB."""

    def __init__(self, path: str | Path, chunk_size: int = 64) -> None:
        import cv2

        self.path = _existing(path)
        self.chunk_size = chunk_size
        self._capture = cv2.VideoCapture(self.path)
        if not self._capture.isOpened():
            raise VideoReadError(f"{self.path}: OpenCV cannot open this video", path=self.path)
        self.num_frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if self.num_frames <= 0:
            raise VideoReadError(f"{self.path}: the video declares no frames", path=self.path)
        self._next = 0

    def _read(self, start: int, stop: int) -> np.ndarray:
        import cv2

        if start != self._next:  # seeking is rare (restarts); rewind exactly by decoding
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._next = 0
            while self._next < start:
                self._grab(self._next)
        frames = []
        for index in range(start, stop):
            frames.append(cv2.cvtColor(self._grab(index), cv2.COLOR_BGR2RGB))
        return np.stack(frames)

    def _grab(self, index: int) -> np.ndarray:
        ok, frame = self._capture.read()
        if not ok or frame is None:
            raise self._failed(index, "the decoder returned no image")
        self._next = index + 1
        return frame

    def close(self) -> None:
        self._capture.release()


class DecordReader(FrameReader):
    """Frames decoded by decord, a chunk at a time with ``get_batch``."""

    def __init__(self, path: str | Path, chunk_size: int = 64) -> None:
        import decord

        self.path = _existing(path)
        self.chunk_size = chunk_size
        try:
            self._reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=1)
        except Exception as error:  # decord raises its own DECORDError / RuntimeError
            raise VideoReadError(
                f"{self.path}: decord cannot open this video ({error})", path=self.path
            ) from error
        decodable = len(self._reader)
        declared = _declared_frame_count(self.path)
        # decord silently drops frames it cannot index (a truncated file); the container's own
        # count tells, so both readers fail at the same frame.
        self.num_frames = max(decodable, declared)
        self._decodable = decodable
        self.fps = float(self._reader.get_avg_fps() or 0.0)
        if self.num_frames <= 0:
            raise VideoReadError(f"{self.path}: the video declares no frames", path=self.path)

    def _read(self, start: int, stop: int) -> np.ndarray:
        if stop > self._decodable:
            if start >= self._decodable:
                raise self._failed(self._decodable, "the file ends early (truncated?)")
            # return what can be read, the next chunk names the missing frame
            stop = self._decodable
        try:
            return self._reader.get_batch(list(range(start, stop))).asnumpy()
        except Exception:
            for index in range(start, stop):  # find the frame that fails
                try:
                    self._reader.get_batch([index])
                except Exception as error:
                    raise self._failed(index, str(error).splitlines()[0]) from error
            raise

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        index = 0
        while index < self.num_frames:
            stop = min(index + self.chunk_size, self.num_frames)
            frames = self._read(index, stop)
            yield index, frames
            index += len(frames)

    def close(self) -> None:
        self._reader = None


class ArrayReader(FrameReader):
    """Frames already in memory: an ``(T, H, W, 3)`` uint8 array or a sequence of images."""

    def __init__(self, frames: np.ndarray | Sequence[np.ndarray], chunk_size: int = 64) -> None:
        self._frames = frames
        self.num_frames = len(frames)
        self.chunk_size = chunk_size

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.stack([_as_rgb_frame(self._frames[i], i) for i in range(start, stop)])


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

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.stack([read_image(self.files[i], frame=i) for i in range(start, stop)])


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
        return DecordReader(path, chunk_size=chunk_size)
    return OpenCVReader(path, chunk_size=chunk_size)


def _existing(path: str | Path) -> str:
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    return str(path)


def _as_rgb_frame(frame: Any, index: int) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"frame {index}: expected an (H, W, 3) uint8 RGB image, got shape {frame.shape} "
            f"dtype {frame.dtype}"
        )
    return frame
