"""benchmarks/articulation.py: the stand-in detector it probes, and a tiny run of it."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_detector_error_scales_the_default_and_given_fields_replace_it(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import articulation as probe

    noise = probe.detection_noise(0.25)
    assert (noise.jitter, noise.drop, noise.swap) == pytest.approx((0.005, 0.02, 0.0075))
    noise = probe.detection_noise(0.25, jitter=0.0, drop=None, swap=0.5)
    assert (noise.jitter, noise.drop, noise.swap) == pytest.approx((0.0, 0.02, 0.5))
    default = probe.detection_noise(1.0)
    assert (default.jitter, default.drop, default.swap) == (0.02, 0.08, 0.03)


def test_a_tiny_probe_reports_the_detector_it_used_and_three_scores():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "articulation.py"),
                           "--kind", "body", "--frames", "24", "--steps", "3",
                           "--detector-error", "0.5", "--swap", "0"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == ("synthetic-body: 24 frames (4 held out), detections: jitter 0.01 of the "
                        "box, 4.0% dropped, 0.00% of frames swapped")
    rows = {line[:28].strip(): float(line.split()[-1]) for line in lines[2:]}
    assert list(rows) == ["the mean articulation", "MLP on true 2D keypoints",
                          "MLP on detected 2D keypoints"]
    assert rows["the mean articulation"] == 1.0


def test_a_negative_detector_error_is_refused():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "articulation.py"),
                           "--detector-error", "-1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--detector-error must be >= 0; got -1.0" in done.stderr
