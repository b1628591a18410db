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


D = torch.float64


def test_shape_checks_name_the_argument_exactly():
    cases = [
        (lambda: similarity_transform(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)), r"^source: "),
        (lambda: similarity_transform(torch.zeros(1, 2, 3), torch.zeros(1, 3, 3)), r"^target: "),
        (lambda: mpjpe(torch.zeros(1, 2, 3), torch.zeros(2, 3)), r"^gt: expected shape \(B, N, 3\)"
                                                                  r", got \(2, 3\)$"),
        (lambda: mpjpe(torch.zeros(1, 3, 3), torch.zeros(1, 2, 3)), r"^pred: expected shape "
                                                                    r"\(1, 2, 3\) like the ground "
                                                                    r"truth, got \(1, 3, 3\)$"),
        (lambda: mpjpe(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), torch.ones(1, 3)),
         r"^valid: expected shape \(1, 2\), got \(1, 3\)$"),
        (lambda: f_score(torch.zeros(1, 2, 3), torch.zeros(1, 2, 2), 0.1), r"^gt: "),
        (lambda: f_score(torch.zeros(1, 2), torch.zeros(1, 2, 3), 0.1), r"^pred: "),
        (lambda: acceleration_error(torch.zeros(4, 2, 3), torch.zeros(4, 2)),
         r"^gt: expected shape \(T, K, 3\), got \(4, 2\)$"),
        (lambda: acceleration_error(torch.zeros(4, 1, 3), torch.zeros(4, 2, 3)),
         r"^pred: expected shape \(4, 2, 3\), got \(4, 1, 3\)$"),
        (lambda: PROTOCOLS["ho3d"].evaluate(torch.zeros(1, 21, 3), torch.zeros(1, 21, 2)),
         r"^gt_joints: "),
        (lambda: PROTOCOLS["ho3d"].evaluate(torch.zeros(1, 20, 3), torch.zeros(1, 21, 3)),
         r"^pred_joints: expected shape \(1, 21, 3\) like"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    # either a wrong rank or a wrong last dimension is refused
    for bad in (torch.zeros(1, 2, 2), torch.zeros(2, 3)):
        with pytest.raises(ValueError, match="expected shape"):
            mpjpe(bad, bad)
    with pytest.raises(KeyError, match=r"unknown protocol 'nope'; available: 3dpw, h36m, freihand"):
        get_protocol("nope")


def test_similarity_transform_recovers_scale_rotation_translation_and_never_reflects():
    source = _points(b=2, n=6, seed=12)
    rotation = _rotations(2, seed=13)
    target = 2.5 * source @ rotation.transpose(1, 2) + torch.tensor([[[1.0, -2.0, 0.5]]], dtype=D)
    s, r, t = similarity_transform(source, target)
    torch.testing.assert_close(s, torch.full((2,), 2.5, dtype=D), atol=1e-12, rtol=0)
    torch.testing.assert_close(r, rotation, atol=1e-12, rtol=0)
    torch.testing.assert_close(t, torch.tensor([[1.0, -2.0, 0.5]] * 2, dtype=D), atol=1e-12, rtol=0)
    assert s.dtype == r.dtype == t.dtype == D
    single = similarity_transform(source.float(), target.float())
    assert all(x.dtype == torch.float32 for x in single)
    # a mirror image (z -> -z): the best proper rotation leaves the least-spread axis mirrored
    flat = torch.tensor([[[2.0, 0, 0], [-2, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 0.1],
                          [0, 0, -0.1]]], dtype=D)
    mirrored = flat * torch.tensor([1.0, 1.0, -1.0], dtype=D)
    s, r, t = similarity_transform(flat, mirrored)
    torch.testing.assert_close(r[0], torch.eye(3, dtype=D), atol=1e-12, rtol=0)
    torch.testing.assert_close(s, torch.tensor([(8 + 2 - 0.02) / (8 + 2 + 0.02)], dtype=D),
                               atol=1e-12, rtol=0)


def test_fractional_weights_are_normalised_by_their_sum():
    gt = torch.zeros(1, 2, 3, dtype=D)
    pred = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]], dtype=D)
    half = torch.tensor([[0.25, 0.25]], dtype=D)  # sums to 0.5: the mean is still (5 + 1) / 2
    assert mpjpe(pred, gt, half).item() == pytest.approx(3.0, abs=1e-12)
    assert math.isnan(mpjpe(pred, gt, torch.zeros(1, 2, dtype=D)).item())  # no valid joint
    source = _points(b=1, n=5, seed=14)
    target = 3.0 * source + 1.0
    weights = torch.full((1, 5), 0.1, dtype=D)  # sums to 0.5
    s, _, t = similarity_transform(source, target, weights)
    assert s.item() == pytest.approx(3.0, abs=1e-12)
    torch.testing.assert_close(t, torch.ones(1, 3, dtype=D), atol=1e-12, rtol=0)


def test_acceleration_error_on_three_frames_and_moving_truth():
    gt = torch.zeros(3, 1, 3, dtype=D)
    gt[1, 0, 1] = 1.0  # the truth accelerates: 1, -2, 1 along y
    pred = torch.zeros(3, 1, 3, dtype=D)
    assert acceleration_error(pred, gt).item() == pytest.approx(2.0)  # one triple
    assert acceleration_error(gt, gt).item() == 0.0
    assert math.isnan(acceleration_error(pred, gt, torch.tensor([True, False, True])).item())


def test_f_score_per_sample_threshold_boundary_and_dtype():
    gt = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]], [[0.0, 0, 0], [1.0, 0, 0]]])
    pred = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]], [[0.0, 0, 0], [5.0, 0, 0]]])
    out = f_score(pred, gt, 0.5)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([1.0, 0.5]))  # second: P = R = 1/2
    at_threshold = torch.tensor([[[0.25, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    assert f_score(at_threshold, gt[:1], 0.25).item() == pytest.approx(0.5)  # not closer than 0.25
    assert f_score(torch.full((1, 1, 3), 9.0), gt[:1], 0.1).item() == 0.0


def test_protocol_uses_the_validity_column_and_reports_millimetres():
    protocol = PROTOCOLS["freihand"]
    gt = torch.zeros(1, 21, 4, dtype=D)
    gt[..., :3] = 0.1 * _points(b=1, n=21, seed=15)
    gt[..., 3] = 1.0
    gt[0, 5, 3] = 0.0  # an unlabelled joint
    pred = gt[..., :3].clone()
    pred[0, 5] += 1.0  # far off, but unlabelled: not counted
    pred[0, 7, 1] += 0.021  # 21 mm on one of the 20 labelled joints
    out = protocol.evaluate(pred, gt)
    expected = protocol.evaluate(pred[:, [i for i in range(21) if i != 5]],
                                 gt[:, [i for i in range(21) if i != 5], :3])
    torch.testing.assert_close(out["mpjpe"], expected["mpjpe"])
    torch.testing.assert_close(out["pa_mpjpe"], expected["pa_mpjpe"])
    assert out["mpjpe"].item() == pytest.approx(21.0 / 20, rel=1e-9)
    keep = [i for i in range(21) if i != 5]
    p, g = pred - pred[:, :1], gt[..., :3] - gt[:, :1, :3]
    torch.testing.assert_close(out["pa_mpjpe"], 1000 * pa_mpjpe(p[:, keep], g[:, keep]))
    labelled = protocol.evaluate(pred, gt[..., :3], valid=gt[..., 3] > 0)
    torch.testing.assert_close(labelled["mpjpe"], out["mpjpe"])
    everything = protocol.evaluate(pred, gt, valid=torch.ones(1, 21, dtype=torch.bool))
    assert everything["mpjpe"].item() > 40.0  # the given mask wins over the column
    vertices = torch.zeros(1, 4, 3, dtype=D)
    vertices[0, :, 0] = torch.arange(4, dtype=D) * 0.01
    shifted = vertices + torch.tensor([0.0, 0.0, 0.003], dtype=D)
    with_mesh = protocol.evaluate(gt[..., :3], gt, pred_vertices=shifted, gt_vertices=vertices)
    assert with_mesh["pve"].item() == pytest.approx(3.0, rel=1e-9)  # mm
    assert with_mesh["pa_pve"].item() == pytest.approx(0.0, abs=1e-9)
    assert "pve" not in protocol.evaluate(gt[..., :3], gt, pred_vertices=shifted)


def test_sequence_metrics_take_a_validity_column_and_frames():
    protocol = PROTOCOLS["synthetic-hand"]
    gt = torch.zeros(3, 21, 4, dtype=D)
    gt[..., 3] = 1.0
    pred = torch.zeros(3, 21, 3, dtype=D)
    pred[1, 1:, 0] = 0.001  # 1 mm on 20 of 21 joints, the root (wrist) unchanged
    accel = protocol.sequence_metrics(pred, gt)["accel"].item()
    assert accel == pytest.approx(20 / 21 * 2.0, rel=1e-9)  # second difference 1, -2, 1: |2| mm
    dropped = protocol.sequence_metrics(pred, gt, torch.tensor([True, True, False]))["accel"]
    assert math.isnan(dropped.item())


def test_validation_protocol_of_each_joint_set():
    assert metrics.protocol_for_joint_set("smpl44").name == "synthetic-body"
    assert metrics.protocol_for_joint_set("mano21").name == "synthetic-hand"
    with pytest.raises(KeyError, match=r"no validation protocol for joint set 'smpl24'"):
        metrics.protocol_for_joint_set("smpl24")


def test_summarize_of_an_all_nan_metric_is_nan():
    out = metrics.summarize([{"a": float("nan")}, {"a": float("nan"), "b": 4.0}])
    assert math.isnan(out["a"]) and out["b"] == 4.0 and out["n"] == 2


def test_a_bool_mask_weighs_in_the_points_precision():
    """A mask of 7 of 8 joints (weights 1/7, not exact in float32): a pure similarity is still
    removed to the last digits of float64."""
    gt = _points(b=1, n=8, seed=16)
    pred = 3.0 * gt + torch.tensor([5.0, -4.0, 2.0], dtype=D)
    pred[0, -1] += 50.0
    valid = torch.ones(1, 8, dtype=torch.bool)
    valid[0, -1] = False
    s, _, t = similarity_transform(pred, gt, valid)
    assert s.item() == pytest.approx(1 / 3, rel=1e-13, abs=0)
    torch.testing.assert_close(t, torch.tensor([[-5.0, 4.0, -2.0]], dtype=D) / 3, atol=1e-13,
                               rtol=0)
    assert pa_mpjpe(pred, gt, valid).item() < 1e-13
    error = torch.linalg.norm(pred - gt, dim=-1)[0, :7].mean()
    assert mpjpe(pred, gt, valid).item() == pytest.approx(error.item(), rel=1e-14, abs=0)


def test_acceleration_error_refuses_points_without_a_joint_axis():
    with pytest.raises(ValueError, match=r"^gt: expected shape \(T, K, 3\), got \(4, 3\)$"):
        acceleration_error(torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"^gt: expected shape \(T, K, 3\), got \(4, 2, 2\)$"):
        acceleration_error(torch.zeros(4, 2, 2), torch.zeros(4, 2, 2))


def test_mesh_errors_of_an_imperfect_alignment_by_hand():
    """A flat set and its mirror image (z -> -z), 5 cm across: no proper rotation undoes the
    mirror, so the aligned mesh keeps an error that is worked out here."""
    protocol = PROTOCOLS["freihand"]
    flat = 0.025 * torch.tensor([[[2.0, 0, 0], [-2, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 0.1],
                                  [0, 0, -0.1]]], dtype=D)
    mirrored = flat * torch.tensor([1.0, 1.0, -1.0], dtype=D)
    joints = torch.zeros(1, 21, 3, dtype=D)  # the root at the origin: the meshes as given
    out = protocol.evaluate(joints, joints, pred_vertices=flat, gt_vertices=mirrored)
    # z points are 2 * 0.0025 m apart, the other four coincide: 10 mm / 6 in mean
    assert out["pve"].item() == pytest.approx(2 * 2 * 2.5 / 6, rel=1e-12)
    # the best similarity is the identity rotation at scale s (see the test above), t = 0
    s = (8 + 2 - 0.02) / (8 + 2 + 0.02)
    per_point = 0.025 * np.array([2 * (1 - s)] * 2 + [1 - s] * 2 + [0.1 * (1 + s)] * 2)
    assert out["pa_pve"].item() == pytest.approx(1000 * per_point.mean(), rel=1e-10)
    assert out["f@5mm"].item() == 1.0  # every aligned point within 5 mm of its nearest
