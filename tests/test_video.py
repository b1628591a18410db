"""Frame readers: decord and OpenCV agree; errors name the path or the frame; windows plan."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from extpose_sdk.data.video import (
    DecordReader,
    OpenCVReader,
    VideoReadError,
    open_video,
)
from extpose_sdk.windows import owner_of, plan_windows

cv2 = pytest.importorskip("cv2")
needs_decord = pytest.mark.skipif(
    importlib.util.find_spec("decord") is None, reason="decord (extra 'video') is not installed"
)


def write_video(path, num_frames=12, size=(48, 64), fourcc="mp4v", seed=0):
    """A small video of moving coloured squares on noise; returns nothing, frames are decoded."""
    rng = np.random.default_rng(seed)
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (w, h))
    assert writer.isOpened()
    for i in range(num_frames):
        frame = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        frame[8:24, 2 + 3 * i : 18 + 3 * i] = (40 * i % 255, 200, 90)
        writer.write(frame)
    writer.release()
    return path


@needs_decord
@pytest.mark.parametrize("fourcc,suffix", [("mp4v", ".mp4"), ("MJPG", ".avi")])
def test_decord_and_opencv_give_identical_frames(tmp_path, fourcc, suffix):
    path = write_video(tmp_path / f"clip{suffix}", num_frames=10, fourcc=fourcc)
    a = np.concatenate([f for _, f in DecordReader(path, chunk_size=3).chunks()])
    b = np.concatenate([f for _, f in OpenCVReader(path, chunk_size=4).chunks()])
    assert a.shape == b.shape == (10, 48, 64, 3)
    assert a.dtype == b.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    # RGB, not BGR: the square was written as BGR (x, 200, 90) so red is 90
    assert tuple(b[1, 16, 10].astype(int)) == pytest.approx((90, 200, 40), abs=16)


def test_chunks_are_bounded_and_cover_the_clip(tmp_path):
    path = write_video(tmp_path / "clip.mp4", num_frames=11)
    reader = open_video(path, backend="opencv", chunk_size=4)
    chunks = list(reader.chunks())
    assert [start for start, _ in chunks] == [0, 4, 8]
    assert [len(frames) for _, frames in chunks] == [4, 4, 3]
    again = np.stack(list(reader))  # a second pass over the same reader rewinds
    np.testing.assert_array_equal(again, np.concatenate([f for _, f in chunks]))


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        open_video(missing)


@pytest.mark.parametrize("backend", ["opencv", pytest.param("decord", marks=needs_decord)])
def test_unopenable_file_names_the_path(tmp_path, backend):
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoReadError, match="garbage.mp4") as info:
        open_video(bad, backend=backend)
    assert info.value.path == str(bad)


@pytest.mark.parametrize("backend", ["opencv", pytest.param("decord", marks=needs_decord)])
def test_truncated_video_names_the_first_unreadable_frame(tmp_path, backend):
    path = write_video(tmp_path / "clip.avi", num_frames=20, fourcc="MJPG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    reader = open_video(path, backend=backend, chunk_size=4)
    read = 0
    with pytest.raises(VideoReadError, match=r"clip\.avi: frame \d+ of 20") as info:
        for _, frames in reader.chunks():
            read += len(frames)
    assert info.value.frame == read
    assert 0 < read < 20


def test_frames_in_memory_are_checked():
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    assert len(list(open_video(frames))) == 3
    with pytest.raises(ValueError, match=r"frame 1: expected an \(H, W, 3\) uint8"):
        list(open_video([frames[0], np.zeros((8, 8), np.uint8)]))


def test_image_folder(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((4, 5, 3), i, np.uint8))
    frames = np.stack(list(open_video(tmp_path)))
    assert frames.shape == (3, 4, 5, 3)
    assert frames[:, 0, 0, 0].tolist() == [0, 1, 2]
    (tmp_path / "003.png").write_bytes(b"broken")
    with pytest.raises(VideoReadError, match=r"003\.png.*frame 3"):
        list(open_video(tmp_path))


@pytest.mark.parametrize(
    "num_frames,size,overlap",
    [(1, 4, 0), (10, 4, 2), (17, 16, 8), (40, 16, 8), (9, 3, 0), (5, 16, 4)],
)
def test_every_frame_is_kept_once_from_its_most_central_window(num_frames, size, overlap):
    windows = plan_windows(num_frames, size, overlap)
    kept = [f for w in windows for f in range(w.keep_start, w.keep_stop)]
    assert kept == list(range(num_frames))
    for w in windows:
        assert 0 <= w.start <= w.keep_start <= w.keep_stop <= w.stop <= num_frames
        assert w.stop - w.start == min(size, num_frames)
    for f in range(num_frames):
        best = min(abs(f - w.center) for w in windows if w.start <= f < w.stop)
        assert abs(f - owner_of(f, windows).center) == best


def test_a_window_covering_the_clip_is_the_whole_clip():
    assert [(w.start, w.stop, w.keep_start, w.keep_stop) for w in plan_windows(7, 16, 8)] == [
        (0, 7, 0, 7)
    ]
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(10, 4, 4)
