"""Faults during ``extpose predict`` on a 300-frame clip: SIGINT, SIGTERM and SIGKILL midway.

``predict`` appends each finished window's frames to ``out/results.jsonl`` and flushes it before
the frames count as done, so:

- SIGINT (Ctrl-C) and SIGTERM stop at once, write ``results.npz`` / ``results.json`` with every
  finished frame (``complete: false``), remove the stream and exit 130;
- SIGKILL leaves ``results.jsonl`` holding every frame flushed before the signal. All a kill can
  lose is the window being written at that instant: its kept frames (``--frames`` minus
  ``--overlap`` mid-clip, here 8 - 4 = 4; at most ``--frames``), as a torn last line that
  ``load_results`` skips. Frames read but whose window has not run were never finished.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from extpose_sdk.commands.predict import SAMPLE_OPTIONS
from extpose_sdk.datasets.synthetic import synthetic_model_path, write_sample_video
from extpose_sdk.results import load_results

FRAMES = 300
WAIT_FOR = 24  # finished frames on disk before the signal


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    video, keypoints = folder / "hand.mp4", folder / "hand_keypoints.npz"
    write_sample_video(video, frames=FRAMES, kind="hand", size=(64, 64), keypoints_path=keypoints,
                       model_path=synthetic_model_path("hand", folder))  # fmt: skip
    return video, keypoints


def start_predict(clip, out):
    options = [f"--option={k}={v}" for k, v in SAMPLE_OPTIONS.items()]
    return subprocess.Popen(
        [sys.executable, "-m", "extpose_sdk.cli", "predict", str(clip[0]), "--keypoints",
         str(clip[1]), "--out", str(out), "--frames", "8", "--overlap", "4", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C as in a terminal, also when this test runs in a background job (whose shell
        # ignores SIGINT, and a Python started with SIGINT ignored never raises
        # KeyboardInterrupt)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def frames_on_disk(stream) -> int:
    """Complete frame lines in the stream (the header and a torn last line do not count)."""
    if not stream.exists():
        return 0
    lines = stream.read_text().split("\n")[1:-1]  # after the header, before the open end
    return sum(1 for line in lines if line.startswith('{"index"'))


def run_until(clip, out, signum):
    """Start predict, wait until WAIT_FOR frames are flushed, send ``signum``; returns what the
    stream held just before the signal, the exit code and stderr."""
    process = start_predict(clip, out)
    stream = out / "results.jsonl"
    deadline = time.monotonic() + 120
    try:
        while (seen := frames_on_disk(stream)) < WAIT_FOR:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "predict made no progress"
            time.sleep(0.05)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return seen, process.returncode, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_write_every_finished_frame(tmp_path, long_clip, signum):
    out = tmp_path / "out"
    seen, code, err = run_until(long_clip, out, signum)
    assert code == 130 and "Traceback" not in err
    assert "extpose: interrupted" in err.splitlines()
    npz, as_json = load_results(out / "results.npz"), load_results(out / "results.json")
    done = int(npz["num_frames"])
    assert seen <= done < FRAMES  # nothing flushed before the signal is lost; it stopped
    assert npz["frame"].tolist() == list(range(done))
    assert [f["index"] for f in as_json["frames"]] == list(range(done))
    assert npz["metadata"]["complete"] is False and as_json["complete"] is False
    assert f"the {done} frames finished are in {out}/" in err
    assert not (out / "results.jsonl").exists()  # the final files replace the stream


def test_sigkill_keeps_every_flushed_frame_in_the_stream(tmp_path, long_clip):
    out = tmp_path / "out"
    seen, code, _ = run_until(long_clip, out, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not (out / "results.npz").exists()  # no chance to write them: the stream is all
    stream = out / "results.jsonl"
    raw = stream.read_text().split("\n")
    for line in raw[:-2]:  # every line but a torn last one is whole JSON
        json.loads(line)
    saved = load_results(stream)
    indices = [f["index"] for f in saved["frames"]]
    assert indices == list(range(len(indices))) and seen <= len(indices) < FRAMES
    assert saved["complete"] is False and "killed?" in saved["error"]
    assert all(len(f["people"]) == 1 for f in saved["frames"])  # one hand, every frame
