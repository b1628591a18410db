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
    fake = torch.tensor([[0.0, 1.0, 1.0], [2.0, 1.0, 1.0]])  # (B = 2, 3 scores)
    # (B = 3, 4 scores): the batch is not the number of scores, so neither can stand for the other
    real = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 3.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    assert L.adversarial_generator_loss(fake).item() == pytest.approx((1 + 0 + 0 + 1 + 0 + 0) / 2)
    fake_part = (0 + 1 + 1 + 4 + 1 + 1) / 2
    real_part = (0 + 1 + 0 + 0 + 0 + 4 + 0 + 0 + 0) / 3
    assert L.adversarial_discriminator_loss(fake, real).item() == pytest.approx(fake_part + real_part)


def test_discriminator_has_the_official_layers_and_a_pinned_output():
    """Sizes as HMR2.0's discriminator (a shared 9 -> 32 -> 32 joint embedding with ReLUs, one
    linear score per joint, shape 10 -> 10 -> 5 -> 1, pose 736 -> 1024 -> 1024 -> 1); the golden
    scores (seeded init, torch 2.14) catch a dropped activation or layer."""
    from extpose_sdk.geometry import axis_angle_to_rotmat

    torch.manual_seed(0)
    d = L.PoseDiscriminator()
    assert sum(p.numel() for p in d.parameters()) == 1_807_619
    g = torch.Generator().manual_seed(1)
    pose = axis_angle_to_rotmat(torch.randn(2, 23, 3, generator=g) * 0.3)
    betas = torch.randn(2, 10, generator=g)
    with torch.no_grad():
        scores = d(pose, betas)
    expected = torch.tensor([[0.103610, -0.040552, -0.148569, -0.264850, 0.004728],
                             [0.082785, -0.021169, -0.135661, -0.319809, -0.001588]])
    assert torch.allclose(scores[:, [0, 1, 2, 23, 24]], expected, atol=1e-5)


def test_discriminator_scores_every_joint_the_shape_and_the_pose():
    torch.manual_seed(0)
    d = L.PoseDiscriminator()
    scores = d(torch.eye(3).expand(4, 23, 3, 3), torch.zeros(4, 10))
    assert scores.shape == (4, 25)
    assert math.isfinite(float(scores.detach().sum()))
    with pytest.raises(ValueError, match=r"\(B, 23, 3, 3\)"):
        d(torch.eye(3).expand(4, 21, 3, 3), torch.zeros(4, 10))


def test_parameter_loss_is_the_squared_difference_of_nonzero_values():
    pred = torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    gt = torch.tensor([[0.5, 2.0], [4.0, 4.0]])
    # (1.5^2 + 3^2) for sample 0; sample 1 unlabelled; float has flags work like bools
    assert L.parameter_loss(pred, gt, torch.tensor([1.0, 0.0])).item() == pytest.approx(11.25)
    with pytest.raises(ValueError, match=r"pred \(2, 2\) and gt \(2, 3\) differ"):
        L.parameter_loss(pred, torch.zeros(2, 3), torch.ones(2))


def test_temporal_loss_is_root_relative_and_counts_short_clips():
    gt = torch.zeros(1, 3, 2, 3)
    gt[0, :, 0, 1] = torch.tensor([0.0, 1.0, 4.0])  # the root accelerates (2 / frame^2) ...
    gt[0, :, 1, 1] = gt[0, :, 0, 1] + 1.0  # ... and joint 1 with it: no relative acceleration
    pred = gt.clone()
    pred[0, :, 1, 0] = torch.tensor([0.1, 0.5, 0.2])  # joint 1 off the truth, relative to the root
    valid = torch.ones(1, 3, dtype=torch.bool)
    assert L.temporal_loss(pred, gt, valid).item() == pytest.approx(0.7)  # |0.1 - 2 * 0.5 + 0.2|
    gt_moved = gt.clone()
    gt_moved[0, :, 1, 0] = torch.tensor([0.1, 0.5, 0.2])  # the truth moves the same way
    assert L.temporal_loss(pred, gt_moved, valid).item() == pytest.approx(0.0)
    confident = torch.cat([gt, torch.ones(1, 3, 2, 1)], -1)  # (B, T, N, 4): confidence
    assert L.temporal_loss(pred, confident, valid).item() == pytest.approx(0.7)
    assert L.temporal_loss(pred[:, :2], gt[:, :2], valid[:, :2]).item() == 0.0  # no triple
    with pytest.raises(ValueError, match=r"\(B, T, N, 3\)"):
        L.temporal_loss(pred[..., :2], gt, valid)


def test_temporal_loss_centres_on_the_root_it_is_given():
    """Bodies centre on the pelvis (joint 39 of 44), not joint 0 (the nose): a nose that nods
    while the pelvis and the rest stay still is motion of one joint relative to the pelvis, of
    every joint relative to the nose."""
    gt = torch.zeros(1, 3, 3, 3)
    pred = gt.clone()
    pred[0, :, 0, 0] = torch.tensor([0.0, 1.0, 0.0])  # joint 0 bumps: |accel| = 2 in x
    valid = torch.ones(1, 3, dtype=torch.bool)
    assert L.temporal_loss(pred, gt, valid, root=2).item() == pytest.approx(2.0)
    assert L.temporal_loss(pred, gt, valid, root=0).item() == pytest.approx(4.0)  # joints 1, 2
    assert L.temporal_loss(pred, pred, valid, root=2).item() == 0.0  # the truth nods the same
    confident = torch.cat([gt, torch.ones(1, 3, 3, 1)], -1)
    confident[0, 1, 2, 3] = 0.0  # the root unlabelled in the middle frame: nothing counts
    assert L.temporal_loss(pred, confident, valid, root=2).item() == 0.0
    assert L.temporal_loss(pred, confident, valid, root=1).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"root joint 4 is not one of the 4 joints of pred \(1, 3, 4, 3\)"):
        L.temporal_loss(torch.zeros(1, 3, 4, 3), torch.zeros(1, 3, 4, 3), valid, root=4)


def test_the_engine_centres_the_temporal_term_on_the_subjects_root():
    from types import SimpleNamespace

    from extpose_sdk.engine.loop import loss_terms
    from extpose_sdk.engine.recipe import LossRecipe
    from extpose_sdk.subjects import BODY

    gt = torch.zeros(1, 3, 44, 4)
    gt[..., 3] = 1.0
    pred = torch.zeros(1, 3, 44, 3)
    pred[0, 1, 0, 0] = 1.0  # the nose (joint 0) bumps
    output = SimpleNamespace(pred_keypoints_3d=pred, pred_keypoints_2d=torch.zeros(1, 3, 44, 2),
                             betas=torch.zeros(1, 3, 10), global_orient=torch.zeros(1, 3, 1, 3, 3),
                             body_pose=torch.zeros(1, 3, 23, 3, 3))
    batch = {"keypoints_3d": gt, "valid": torch.ones(1, 3, dtype=torch.bool),
             "global_orient": torch.zeros(1, 3, 3), "body_pose": torch.zeros(1, 3, 69),
             "betas": torch.zeros(1, 3, 10)}
    weights = LossRecipe(keypoints_3d=0, keypoints_2d=0, global_orient=0, pose=0, betas=0,
                         adversarial=0, temporal=1.0)
    terms = loss_terms(output, batch, weights, BODY)
    assert set(terms) == {"temporal"}
    assert terms["temporal"].item() == pytest.approx(2.0)  # relative to the nose: 43 joints, 86


def test_temporal_loss_skips_joints_unlabelled_in_a_triple():
    """A joint with confidence 0 (a set without that label) has no motion to match; nor has any
    joint where the root, joint 0, is unlabelled, as joints are taken relative to it."""
    gt = torch.zeros(1, 4, 3, 4)
    gt[..., 3] = 1.0
    pred = torch.zeros(1, 4, 3, 3)
    pred[0, 1, 1, 0] = 1.0  # joint 1 bumps at frame 1: |-2| on triple (0-2), |1| on (1-3)
    pred[0, 2, 2, 0] = 0.5  # joint 2 bumps at frame 2: |0.5| on triple (0-2), |-1| on (1-3)
    valid = torch.ones(1, 4, dtype=torch.bool)
    assert L.temporal_loss(pred, gt, valid).item() == pytest.approx(2.0 + 1.0 + 0.5 + 1.0)
    unlabelled = gt.clone()
    unlabelled[0, 3, 1, 3] = 0.0  # joint 1 unlabelled at frame 3: its triple (1-3) drops
    assert L.temporal_loss(pred, unlabelled, valid).item() == pytest.approx(2.0 + 0.5 + 1.0)
    unlabelled = gt.clone()
    unlabelled[0, 1, 2, 3] = 0.0  # joint 2 unlabelled at frame 1, the middle of (0-2): both drop
    assert L.temporal_loss(pred, unlabelled, valid).item() == pytest.approx(2.0 + 1.0)
    no_root = gt.clone()
    no_root[0, 0, 0, 3] = 0.0  # the root unlabelled at frame 0: triple (0-2) drops for all
    assert L.temporal_loss(pred, no_root, valid).item() == pytest.approx(1.0 + 1.0)


@pytest.mark.parametrize("function, pred, gt, message", [
    (L.keypoint_2d_loss, torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), r"pred must have shape \(B, N, 2\)"),
    (L.keypoint_2d_loss, torch.zeros(2, 5, 2), torch.zeros(2, 5, 2), r"gt must have shape \(B, N, 3\)"),
    (L.keypoint_2d_loss, torch.zeros(5, 2), torch.zeros(2, 5, 3), r"pred must have shape .* got \(5, 2\)"),
    (lambda p, g: L.keypoint_3d_loss(p, g, 0), torch.zeros(2, 5, 4), torch.zeros(2, 5, 4),
     r"pred must have shape \(B, N, 3\)"),
    (lambda p, g: L.keypoint_3d_loss(p, g, 0), torch.zeros(2, 5, 3), torch.zeros(2, 5, 3),
     r"gt must have shape \(B, N, 4\)"),
])
def test_keypoint_losses_name_the_argument_with_a_bad_shape(function, pred, gt, message):
    with pytest.raises(ValueError, match=message):
        function(pred, gt)
