"""The training losses of HMR2.0 / HaMeR, one function per term, plus ExtPose's optional extras.

Each official term returns what the official code returns: a *sum over the batch* of per-sample
sums (no mean), so a weight from the official configs means the same thing here::

    total = 0.05 * keypoint_3d_loss(pred_j3d, gt_j3d, pelvis_id=39)      # bodies; hands: 0
          + 0.01 * keypoint_2d_loss(pred_j2d, gt_j2d)
          + 0.001 * parameter_loss(pred_orient, gt_orient, has_orient)   # rotation matrices
          + 0.001 * parameter_loss(pred_pose, gt_pose, has_pose)
          + 0.0005 * parameter_loss(pred_betas, gt_betas, has_betas)
          + 0.0005 * adversarial_generator_loss(discriminator(pose, betas))  # bodies only

Shapes: keypoints ``(B, N, 2|3)`` with the ground truth's confidence / validity in an extra last
column; parameters ``(B, ...)`` with ``has (B,)``. Clips are flattened to ``(B * T, ...)`` by the
caller. ``temporal_loss`` is ours (not in the paper): it penalises the difference between
predicted and true joint accelerations within a clip.
"""

from __future__ import annotations

import torch
from torch import nn


def _check(name: str, x: torch.Tensor, last: int, ndim: int = 3) -> None:
    if x.dim() != ndim or x.shape[-1] != last:
        raise ValueError(f"{name} must have shape (B, N, {last}); got {tuple(x.shape)}")


def keypoint_2d_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``sum_b sum_j conf * |pred - gt|_1``: pred ``(B, N, 2)``, gt ``(B, N, 3)`` (x, y, conf),
    both in crop-normalised coordinates."""
    _check("pred", pred, 2)
    _check("gt", gt, 3)
    confidence = gt[..., 2:]
    return (confidence * (pred - gt[..., :2]).abs()).sum()


def keypoint_3d_loss(pred: torch.Tensor, gt: torch.Tensor, pelvis_id: int) -> torch.Tensor:
    """``sum_b sum_j conf * |(pred - pred_pelvis) - (gt - gt_pelvis)|_1``: pred ``(B, N, 3)``, gt
    ``(B, N, 4)`` (x, y, z, conf); both centred on joint ``pelvis_id`` (39 for HMR2.0's 44 body
    joints, 0 (the wrist) for hands)."""
    _check("pred", pred, 3)
    _check("gt", gt, 4)
    pred = pred - pred[:, pelvis_id : pelvis_id + 1]
    points = gt[..., :3] - gt[:, pelvis_id : pelvis_id + 1, :3]
    return (gt[..., 3:] * (pred - points).abs()).sum()


def parameter_loss(pred: torch.Tensor, gt: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """``sum_b has_b * sum (pred - gt)^2``: squared error of parameters (rotation matrices
    ``(B, J, 3, 3)`` or betas ``(B, 10)``) over the samples that have them (``has (B,)``)."""
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ")
    if has.shape != pred.shape[:1]:
        raise ValueError(f"has must have shape ({pred.shape[0]},); got {tuple(has.shape)}")
    has = has.to(pred.dtype).reshape(-1, *([1] * (pred.dim() - 1)))
    return (has * (pred - gt) ** 2).sum()


def temporal_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor,
                  root: int = 0) -> torch.Tensor:
    """ExtPose SDK's own smoothness term for clips (not in the paper or the official code):
    ``sum |accel(pred) - accel(gt)|_1`` over joints relative to joint ``root`` (the one the 3D
    loss and the acceleration error centre on: the wrist, 0, for hands; HMR2.0's pelvis, 39, for
    bodies), ``(B, T, N, 3)``, and the frame triples whose three frames are ``valid (B, T)``. A
    4th column of gt is the joints' confidence: a joint counts in a triple only where it and the
    root are labelled in all three frames (an unlabelled joint's zeros are no motion to match)."""
    if pred.dim() != 4 or pred.shape[-1] != 3:
        raise ValueError(f"pred must have shape (B, T, N, 3); got {tuple(pred.shape)}")
    if not 0 <= root < pred.shape[2]:
        raise ValueError(f"root joint {root} is not one of the {pred.shape[2]} joints of pred "
                         f"{tuple(pred.shape)}")
    if pred.shape[1] < 3:
        return pred.sum() * 0.0
    labelled = valid[..., None].bool().expand(pred.shape[:3])  # (B, T, N)
    if gt.shape[-1] > 3:
        labelled = labelled & (gt[..., 3] > 0) & (gt[..., root : root + 1, 3] > 0)
    gt = gt[..., :3]
    pred = pred - pred[:, :, root : root + 1]
    gt = gt - gt[:, :, root : root + 1]

    def accel(x: torch.Tensor) -> torch.Tensor:
        return x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]

    triples = (labelled[:, 2:] & labelled[:, 1:-1] & labelled[:, :-2]).to(pred.dtype)
    return (triples[..., None] * (accel(pred) - accel(gt)).abs()).sum()


class PoseDiscriminator(nn.Module):
    """HMR2.0's LSGAN pose prior: scores SMPL body poses and shapes as real (1) or fake (0).

    ``forward(body_pose (B, 23, 3, 3), betas (B, 10)) -> (B, 25)``: one score per joint
    (a shared per-joint embedding, then a linear score per joint), one for the shape and one for
    the whole pose. Sizes follow the official discriminator.
    """

    def __init__(self, joints: int = 23, num_betas: int = 10) -> None:
        super().__init__()
        self.joints = joints
        self.joint_embedding = nn.Sequential(
            nn.Conv2d(9, 32, kernel_size=1), nn.ReLU(), nn.Conv2d(32, 32, kernel_size=1), nn.ReLU()
        )
        self.joint_scores = nn.ModuleList(nn.Linear(32, 1) for _ in range(joints))
        self.shape_score = nn.Sequential(
            nn.Linear(num_betas, 10), nn.ReLU(), nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 1)
        )
        self.pose_score = nn.Sequential(
            nn.Linear(32 * joints, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
            nn.Linear(1024, 1),
        )

    def forward(self, body_pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        B = body_pose.shape[0]
        if body_pose.shape[1:] != (self.joints, 3, 3):
            raise ValueError(f"body_pose must have shape (B, {self.joints}, 3, 3); "
                             f"got {tuple(body_pose.shape)}")
        x = body_pose.reshape(B, self.joints, 9).transpose(1, 2)[..., None]  # (B, 9, J, 1)
        embedded = self.joint_embedding(x)[..., 0]  # (B, 32, J)
        per_joint = torch.cat([score(embedded[:, :, j]) for j, score in
                               enumerate(self.joint_scores)], dim=1)
        return torch.cat([per_joint, self.shape_score(betas),
                          self.pose_score(embedded.reshape(B, -1))], dim=1)


def adversarial_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN generator term: ``sum (D(fake) - 1)^2 / B``."""
    return ((fake_scores - 1.0) ** 2).sum() / fake_scores.shape[0]


def adversarial_discriminator_loss(fake_scores: torch.Tensor,
                                   real_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator term: ``sum D(fake)^2 / B + sum (D(real) - 1)^2 / B``."""
    return ((fake_scores**2).sum() / fake_scores.shape[0]
            + ((real_scores - 1.0) ** 2).sum() / real_scores.shape[0])
