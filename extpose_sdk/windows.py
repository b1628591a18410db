"""Sliding windows of T frames over a clip, and which window each frame's output comes from.

Windows of ``size`` frames start every ``size - overlap`` frames; the last one is moved back so
it ends at the clip's end. Each frame's output is taken from the window where the frame is most
central (ties go to the earlier window), so a frame near a window's edge, which sees little
context on one side, is taken from its neighbour instead. A window that covers the whole clip
gives exactly whole-clip inference.

    for window in plan_windows(num_frames=100, size=16, overlap=8):
        outputs = model(frames[window.start:window.stop])
        keep = outputs[window.keep_start - window.start : window.keep_stop - window.start]
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs


@attrs.frozen
class Window:
    """Frames ``[start, stop)`` go into the model; frames ``[keep_start, keep_stop)`` are kept."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int

    @property
    def center(self) -> float:
        return (self.start + self.stop - 1) / 2.0

    @property
    def keep(self) -> slice:
        """The kept frames as a slice into the window's own outputs."""
        return slice(self.keep_start - self.start, self.keep_stop - self.start)


def plan_windows(num_frames: int, size: int, overlap: int = 0) -> list[Window]:
    """The windows covering ``num_frames`` frames, each frame kept from exactly one window."""
    return list(iter_windows(num_frames, size, overlap))


def _check(size: int, overlap: int) -> None:
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, size={size}), got {overlap}")


def iter_windows(num_frames: int, size: int, overlap: int = 0, *, first: int = 0) -> Iterator[Window]:
    """``plan_windows``' windows one at a time from window number ``first``: memory stays
    constant whatever ``num_frames`` is."""
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    _check(size, overlap)
    if num_frames == 0:
        return
    stride = size - overlap
    size = min(size, num_frames)
    regular = (num_frames - size) // stride + 1  # windows starting every stride frames
    tail = (regular - 1) * stride + size < num_frames  # one more, moved back to end the clip
    count = regular + int(tail)

    def start(i: int) -> int:
        return i * stride if i < regular else num_frames - size

    def center(i: int) -> float:
        return start(i) + (size - 1) / 2.0

    for i in range(first, count):
        # a frame belongs to the window whose centre is nearest; boundaries are the midpoints
        # between neighbouring centres (a frame exactly at a midpoint goes to the earlier one)
        keep_start = start(i) if i == 0 else _first_after((center(i - 1) + center(i)) / 2.0)
        keep_stop = (
            start(i) + size if i == count - 1 else _first_after((center(i) + center(i + 1)) / 2.0)
        )
        yield Window(start(i), start(i) + size, keep_start, keep_stop)


class WindowPlanner:
    """The windows of a clip whose length is unknown until it ends (a video's declared frame
    count is not trusted): ``ready(frames_read)`` gives the windows that can run now,
    ``ready(frames_read, ended=True)`` the rest. Together they are exactly
    ``plan_windows(frames_read_at_the_end, size, overlap)``.

    A window runs once the frames after it show that the next window is a regular one, so at
    most ``size + (size - overlap)`` frames wait at any time.
    """

    def __init__(self, size: int, overlap: int = 0) -> None:
        _check(size, overlap)
        self.size, self.overlap = size, overlap
        self.stride = size - overlap
        self.next = 0  # the number of the next window to give

    def ready(self, available: int, *, ended: bool = False) -> list[Window]:
        if ended:
            windows = list(iter_windows(available, self.size, self.overlap, first=self.next))
            self.next += len(windows)
            return windows
        windows = []
        # window i is a regular one with a regular successor once frames up to the successor's
        # end exist: then its bounds and kept frames are those of any longer clip
        half = self.stride / 2.0 + (self.size - 1) / 2.0  # from a start to a boundary
        while (self.next + 1) * self.stride + self.size <= available:
            start = self.next * self.stride
            keep_start = start if self.next == 0 else _first_after(start - self.stride + half)
            windows.append(Window(start, start + self.size, keep_start, _first_after(start + half)))
            self.next += 1
        return windows


def owner_of(frame: int, windows: list[Window]) -> Window:
    """The window whose output frame ``frame`` is taken from."""
    for window in windows:
        if window.keep_start <= frame < window.keep_stop:
            return window
    raise IndexError(f"frame {frame} is in no window (clip of {windows[-1].stop if windows else 0} frames)")


def _first_after(midpoint: float) -> int:
    """The first frame index strictly after ``midpoint`` (frames at the midpoint stay earlier)."""
    return int(midpoint) + 1
