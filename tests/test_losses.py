"""The training losses against values computed by hand (official reductions: sums)."""

import math

import pytest
import torch

from extpose_sdk.engine import losses as L


def test_keypoint_2d_loss_is_a_confidence_weighted_l1_sum():
    pred = torch.tensor([[[0.0, 0.0], [1.0, 1.0]], [[0.5, 0.5], [0.0, 0.0]]])
    gt = torch.tensor([[[1.0, 0.0, 1.0], [1.0, 3.0, 0.5]], [[0.0, 0.0, 0.0], [0.0, -1.0, 2.0]]])
    # sample 0: |0-1| + |0-0| = 1 (conf 1) + (|1-1| + |1-3|) * 0.5 = 1; sample 1: 0 + 1 * 2 = 2
    assert L.keypoint_2d_loss(pred, gt).item() == pytest.approx(4.0)


def test_keypoint_3d_loss_centres_both_on_the_pelvis():
    pred = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [5.0, 5.0, 5.0]]])
    # gt is pred shifted by (10, 10, 10), with joint 1 moved by 0.5 in z
    gt = torch.tensor([[[10.0, 10.0, 10.0, 1.0], [11.0, 10.0, 10.5, 1.0], [15.0, 15.0, 15.0, 0.3]]])
    assert L.keypoint_3d_loss(pred, gt, pelvis_id=0).item() == pytest.approx(0.5)
    # centred on joint 2 instead: joint 0 and joint 1 differ only by joint 1's offset
    assert L.keypoint_3d_loss(pred, gt, pelvis_id=2).item() == pytest.approx(0.5)
    # confidence weights the error: joint 2 off by 1 in x when centred on joint 0
    gt[0, 2, 0] += 1.0
    assert L.keypoint_3d_loss(pred, gt, pelvis_id=0).item() == pytest.approx(0.5 + 0.3)


def test_parameter_loss_counts_only_samples_that_have_the_label():
    pred = torch.zeros(3, 2, 3, 3)
    gt = torch.ones(3, 2, 3, 3)
    has = torch.tensor([1.0, 0.0, 1.0])
    assert L.parameter_loss(pred, gt, has).item() == pytest.approx(2 * 18)
    betas = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert L.parameter_loss(betas, torch.zeros(2, 2), torch.tensor([True, False])).item() == 5.0
    with pytest.raises(ValueError, match=r"has must have shape \(3,\)"):
        L.parameter_loss(pred, gt, torch.ones(2))


def test_temporal_loss_matches_accelerations_of_valid_triples():
    t = torch.arange(5.0)
    gt = torch.zeros(1, 5, 2, 3)
    gt[0, :, 1, 0] = t  # joint 1 moves at constant speed: no acceleration
    pred = gt.clone()
    valid = torch.ones(1, 5, dtype=torch.bool)
    assert L.temporal_loss(pred, gt, valid).item() == 0.0
    pred[0, 2, 1, 0] += 1.0  # a bump at frame 2: accelerations +1, -2, +1 on the triples
    assert L.temporal_loss(pred, gt, valid).item() == pytest.approx(4.0)
    valid[0, 4] = False  # the last triple (2, 3, 4) no longer counts
    assert L.temporal_loss(pred, gt, valid).item() == pytest.approx(3.0)


def test_lsgan_terms():
    fake = torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    real = torch.tensor([[1.0, 0.0]])
    assert L.adversarial_generator_loss(fake).item() == pytest.approx((1 + 0 + 1 + 0) / 2)
    assert L.adversarial_discriminator_loss(fake, real).item() == pytest.approx((0 + 1 + 4 + 1) / 2 + 1)


def test_discriminator_scores_every_joint_the_shape_and_the_pose():
    torch.manual_seed(0)
    d = L.PoseDiscriminator()
    scores = d(torch.eye(3).expand(4, 23, 3, 3), torch.zeros(4, 10))
    assert scores.shape == (4, 25)
    assert math.isfinite(float(scores.detach().sum()))
    with pytest.raises(ValueError, match=r"\(B, 23, 3, 3\)"):
        d(torch.eye(3).expand(4, 21, 3, 3), torch.zeros(4, 10))
