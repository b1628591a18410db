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
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, size={size}), got {overlap}")
    if num_frames == 0:
        return []
    stride = size - overlap
    size = min(size, num_frames)
    starts = list(range(0, num_frames - size + 1, stride))
    if starts[-1] + size < num_frames:
        starts.append(num_frames - size)
    centers = [s + (size - 1) / 2.0 for s in starts]
    windows = []
    for i, start in enumerate(starts):
        # a frame belongs to the window whose centre is nearest; boundaries are the midpoints
        # between neighbouring centres (a frame exactly at a midpoint goes to the earlier one)
        keep_start = start if i == 0 else _first_after(
            (centers[i - 1] + centers[i]) / 2.0
        )
        keep_stop = start + size if i == len(starts) - 1 else _first_after(
            (centers[i] + centers[i + 1]) / 2.0
        )
        windows.append(Window(start, start + size, keep_start, keep_stop))
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
