"""Metrics against independent computations and worked cases with known answers."""

import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import procrustes as scipy_procrustes
from scipy.spatial.transform import Rotation

from extpose_sdk import metrics
from extpose_sdk.metrics import (
    PROTOCOLS,
    acceleration_error,
    f_score,
    get_protocol,
    mpjpe,
    pa_mpjpe,
    procrustes_align,
    similarity_transform,
)


def _points(b=4, n=14, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(b, n, 3)))


def _rotations(b, seed=1):
    return torch.from_numpy(Rotation.random(b, random_state=seed).as_matrix())


def test_mpjpe_worked_case():
    gt = torch.zeros(1, 2, 3, dtype=torch.float64)
    pred = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    assert mpjpe(pred, gt).item() == pytest.approx(3.0)  # (5 + 1) / 2
    assert mpjpe(pred, gt, valid=torch.tensor([[False, True]])).item() == pytest.approx(1.0)


def test_pure_similarity_is_removed_exactly():
    gt = _points()
    rotation = _rotations(4)
    scale = torch.tensor([0.5, 1.0, 2.0, 3.7], dtype=torch.float64)
    shift = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64)[:, None]
    pred = scale[:, None, None] * gt @ rotation.transpose(1, 2) + shift
    assert (mpjpe(pred, gt) > 0.1).all()
    assert torch.allclose(pa_mpjpe(pred, gt), torch.zeros(4, dtype=torch.float64), atol=1e-9)
    s, r, t = similarity_transform(pred, gt)
    assert torch.allclose(s, 1 / scale, atol=1e-9)
    assert torch.allclose(r, rotation.transpose(1, 2), atol=1e-9)


def test_rotation_and_scale_agree_with_scipy():
    source, target = _points(seed=2), _points(seed=3)
    s, r, _ = similarity_transform(source, target)
    compared = 0
    for i in range(source.shape[0]):
        a = source[i].numpy() - source[i].numpy().mean(0)
        b = target[i].numpy() - target[i].numpy().mean(0)
        r_scipy, singular_sum = orthogonal_procrustes(a, b)  # a @ r_scipy ~ b
        if np.linalg.det(r_scipy) < 0:  # scipy allows reflections; compare proper cases only
            continue
        np.testing.assert_allclose(r[i].numpy(), r_scipy.T, atol=1e-8)
        assert s[i].item() == pytest.approx(singular_sum / (a**2).sum(), rel=1e-8)
        compared += 1
    assert compared >= 2


def test_pa_error_agrees_with_scipy_procrustes_disparity():
    # scipy.spatial.procrustes standardises both sets to unit norm; its disparity is the
    # squared error of the aligned, standardised sets.
    source = _points(b=1, n=20, seed=4)
    target = source + 0.05 * _points(b=1, n=20, seed=5)
    _, _, disparity = scipy_procrustes(target[0].numpy(), source[0].numpy())
    b = target[0] - target[0].mean(0)
    aligned = procrustes_align(source, target)[0] - target[0].mean(0)
    ours = (((aligned - b) / torch.linalg.norm(b)) ** 2).sum().item()
    assert ours == pytest.approx(disparity, rel=1e-6)


def test_reflection_is_never_used():
    gt = _points(b=1, n=10, seed=6)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    _, r, _ = similarity_transform(mirrored, gt)
    assert torch.linalg.det(r).item() == pytest.approx(1.0)
    assert pa_mpjpe(mirrored, gt).item() > 0.05  # a reflection would make it 0


def test_masked_joints_do_not_affect_alignment():
    gt = _points(b=1, n=8, seed=7)
    pred = gt.clone()
    pred[0, -1] += 100.0
    valid = torch.ones(1, 8, dtype=torch.bool)
    valid[0, -1] = False
    assert pa_mpjpe(pred, gt, valid).item() == pytest.approx(0.0, abs=1e-9)


def test_acceleration_error_worked_case():
    gt = torch.zeros(5, 1, 3, dtype=torch.float64)
    pred = gt.clone()
    pred[2, 0, 0] = 1.0  # second differences along x: 1, -2, 1
    assert acceleration_error(pred, gt).item() == pytest.approx(4 / 3)
    valid = torch.tensor([True, True, True, True, False])  # last triple dropped
    assert acceleration_error(pred, gt, valid).item() == pytest.approx(3 / 2)
    constant_velocity = torch.arange(5.0, dtype=torch.float64)[:, None, None].expand(5, 1, 3)
    assert acceleration_error(constant_velocity, gt).item() == pytest.approx(0.0)
    assert math.isnan(acceleration_error(pred[:2], gt[:2]).item())


def test_f_score_worked_case():
    gt = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]]], dtype=torch.float64)
    pred = torch.tensor([[[0.001, 0, 0], [0.0, 5.0, 0], [0.0, 6.0, 0]]], dtype=torch.float64)
    # precision 1/3, recall 1/2 -> F = 2 * (1/6) / (5/6) = 0.4
    assert f_score(pred, gt, 0.005).item() == pytest.approx(0.4)
    assert f_score(gt, gt, 0.005).item() == pytest.approx(1.0)


def test_3dpw_protocol_centres_on_pelvis_and_scores_14_joints():
    protocol = get_protocol("3dpw")
    assert protocol.joints == (*range(25, 38), 43) and protocol.root == (39,)
    gt = _points(b=2, n=44, seed=8)
    pred = gt + torch.tensor([5.0, 0, 0], dtype=torch.float64)  # a global shift only
    pred[:, 0] += 1.0  # a joint outside the 14 scored ones
    out = protocol.evaluate(pred, gt)
    assert torch.allclose(out["mpjpe"], torch.zeros(2, dtype=torch.float64), atol=1e-9)
    pred[:, 30] += torch.tensor([0.014, 0, 0], dtype=torch.float64)  # 14 mm on one of 14 joints
    out = protocol.evaluate(pred, gt)
    assert torch.allclose(out["mpjpe"], torch.full((2,), 1.0, dtype=torch.float64))


def test_freihand_protocol_reports_mm_and_f_scores():
    protocol = PROTOCOLS["freihand"]
    gt_joints, gt_vertices = _points(b=2, n=21, seed=9) * 0.05, _points(b=2, n=50, seed=10) * 0.05
    rotation = _rotations(2, seed=11)
    pred_joints = 1.3 * gt_joints @ rotation.transpose(1, 2) + 0.2
    pred_vertices = 1.3 * gt_vertices @ rotation.transpose(1, 2) + 0.2
    out = protocol.evaluate(pred_joints, gt_joints, pred_vertices=pred_vertices,
                            gt_vertices=gt_vertices)
    assert set(out) == {"mpjpe", "pa_mpjpe", "pve", "pa_pve", "f@5mm", "f@15mm"}
    assert torch.allclose(out["pa_mpjpe"], torch.zeros(2, dtype=torch.float64), atol=1e-8)
    assert torch.allclose(out["f@5mm"], torch.ones(2, dtype=torch.float64))
    assert (out["mpjpe"] > 1.0).all()


def test_sequence_acceleration_in_mm():
    protocol = PROTOCOLS["3dpw"]
    gt = torch.zeros(4, 44, 3, dtype=torch.float64)
    pred = gt.clone()
    pred[1, 25:38] += 0.001  # 1 mm on 13 of the 14 scored joints, pelvis unchanged
    accel = protocol.sequence_metrics(pred, gt)["accel"].item()
    expected = 13 / 14 * math.sqrt(3) * (2 + 1) / 2  # frames (0,1,2): 2x, (1,2,3): 1x, averaged
    assert accel == pytest.approx(expected)
    assert PROTOCOLS["freihand"].sequence_metrics(pred[:, :21], gt[:, :21]) == {}


def test_shape_errors_name_expected_and_actual():
    with pytest.raises(ValueError, match=r"expected shape \(2, 5, 3\).*got \(2, 4, 3\)"):
        mpjpe(torch.zeros(2, 4, 3), torch.zeros(2, 5, 3))
    with pytest.raises(KeyError, match="available: 3dpw"):
        get_protocol("nope")


def test_summarize_skips_nan():
    out = metrics.summarize([{"a": 1.0, "b": float("nan")}, {"a": 3.0, "b": 2.0}])
    assert out == {"a": 2.0, "b": 2.0, "n": 2}
