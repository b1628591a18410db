"""benchmarks/finger_probe.py's scores: R^2, the ridge probe and the flexion read-out."""

from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _probe(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import finger_probe

    return finger_probe


def test_r_squared_is_one_for_the_truth_and_zero_for_its_mean(monkeypatch):
    probe = _probe(monkeypatch)
    truth = np.array([[1.0, 0.0], [2.0, 4.0], [3.0, 2.0]])
    assert probe.r_squared(truth, truth) == 1.0
    assert probe.r_squared(np.tile(truth.mean(0), (3, 1)), truth) == 0.0
    # column 0 off by 1 everywhere: 1 - 3 / 2; column 1 exact
    assert probe.r_squared(truth + [1.0, 0.0], truth) == (1.0 - 3.0 / 2.0 + 1.0) / 2


def test_the_ridge_probe_finds_a_linear_signal_and_not_noise(monkeypatch):
    probe = _probe(monkeypatch)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 20))
    linear = features[:, :3] @ rng.normal(size=(3, 2))
    assert probe.ridge_r_squared(features, linear, 280) > 0.99
    assert probe.ridge_r_squared(features, rng.normal(size=(400, 2)), 280) < 0.05


def test_flexions_read_the_angle_about_z(monkeypatch):
    probe = _probe(monkeypatch)
    angles = torch.tensor([[0.3, -1.2, 1.5]])
    c, s = torch.cos(angles), torch.sin(angles)
    rotations = torch.zeros(1, 3, 3, 3)
    rotations[..., 0, 0], rotations[..., 0, 1], rotations[..., 1, 0] = c, -s, s
    rotations[..., 1, 1], rotations[..., 2, 2] = c, 1.0
    np.testing.assert_allclose(probe.flexions(rotations), angles.numpy(), atol=1e-6)
