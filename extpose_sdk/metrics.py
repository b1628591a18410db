"""Mesh-recovery metrics and the evaluation protocols of 3DPW, Human3.6M, FreiHAND and HO3D.

The metric functions take batched torch tensors (``(B, N, 3)`` points, any unit) and return one
value per sample (``(B,)``) in the unit they were given; a ``Protocol`` picks the joints, aligns
the root, converts metres to millimetres and names the results as the benchmark reports them::

    from extpose_sdk.metrics import PROTOCOLS
    per_sample = PROTOCOLS["3dpw"].evaluate(pred_joints44, gt_joints44)   # metres in
    per_sample["pa_mpjpe"].mean()                                          # millimetres out

Procrustes alignment (``similarity_transform``) is the batched least-squares similarity
(Umeyama): scale, a proper rotation (never a reflection: det = +1) and translation.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from extpose_sdk.subjects import BODY, HAND

Tensor = torch.Tensor


def _check_points(name: str, points: Tensor, like: Tensor | None = None) -> None:
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"{name}: expected shape (B, N, 3), got {tuple(points.shape)}")
    if like is not None and points.shape != like.shape:
        raise ValueError(f"{name}: expected shape {tuple(like.shape)} like the ground truth, "
                         f"got {tuple(points.shape)}")


def _weights(valid: Tensor | None, points: Tensor) -> Tensor:
    if valid is None:
        return torch.ones(points.shape[:2], dtype=points.dtype, device=points.device)
    if valid.shape != points.shape[:2]:
        raise ValueError(f"valid: expected shape {tuple(points.shape[:2])}, got {tuple(valid.shape)}")
    return valid.to(points.dtype)


def similarity_transform(source: Tensor, target: Tensor, valid: Tensor | None = None):
    """Scale ``s (B,)``, rotation ``R (B, 3, 3)``, translation ``t (B, 3)`` minimising
    ``sum_i valid_i * |s R source_i + t - target_i|^2``, with ``det R = +1``.

    Args:
        source, target: ``(B, N, 3)`` corresponding points.
        valid: optional ``(B, N)`` mask (or weights) of the points that count.
    """
    _check_points("source", source)
    _check_points("target", target, like=source)
    dtype = source.dtype
    x, y = source.double(), target.double()
    w = _weights(valid, x)
    w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
    mu_x = (w[..., None] * x).sum(dim=1)
    mu_y = (w[..., None] * y).sum(dim=1)
    x0, y0 = x - mu_x[:, None], y - mu_y[:, None]
    var_x = (w * (x0**2).sum(dim=-1)).sum(dim=1)
    cov = torch.einsum("bn,bni,bnj->bij", w, y0, x0)  # sum_i w_i y_i x_i^T
    u, sigma, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(u @ vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    z = torch.ones_like(sigma)
    z[:, -1] = d
    rotation = u @ torch.diag_embed(z) @ vh
    scale = (sigma * z).sum(dim=1) / var_x.clamp_min(1e-12)
    translation = mu_y - scale[:, None] * torch.einsum("bij,bj->bi", rotation, mu_x)
    return scale.to(dtype), rotation.to(dtype), translation.to(dtype)


def procrustes_align(source: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """``source`` moved onto ``target`` by the best similarity (``similarity_transform``)."""
    scale, rotation, translation = similarity_transform(source, target, valid)
    moved = scale[:, None, None] * torch.einsum("bij,bnj->bni", rotation, source.to(rotation.dtype))
    return moved + translation[:, None]


def _mean_error(pred: Tensor, gt: Tensor, valid: Tensor | None) -> Tensor:
    error = torch.linalg.norm(pred - gt, dim=-1)
    w = _weights(valid, gt)
    total = w.sum(dim=1)
    mean = (error * w).sum(dim=1) / total.clamp_min(1e-12)
    return torch.where(total > 0, mean, torch.full_like(mean, float("nan")))


def mpjpe(pred: Tensor, gt: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean per-joint position error ``(B,)``: mean Euclidean distance over (valid) joints
    (``nan`` for a sample without a valid joint)."""
    _check_points("gt", gt)
    _check_points("pred", pred, like=gt)
    return _mean_error(pred, gt, valid)


def pa_mpjpe(pred: Tensor, gt: Tensor, valid: Tensor | None = None) -> Tensor:
    """MPJPE after Procrustes alignment (scale, rotation, translation) of ``pred`` to ``gt``."""
    return mpjpe(procrustes_align(pred, gt, valid), gt, valid)


def pve(pred_vertices: Tensor, gt_vertices: Tensor) -> Tensor:
    """Per-vertex error (PVE / MPVPE) ``(B,)``: mean distance over corresponding vertices."""
    return mpjpe(pred_vertices, gt_vertices)


def acceleration_error(pred: Tensor, gt: Tensor, valid: Tensor | None = None) -> Tensor:
    """Acceleration error of one sequence (3DPW protocol), in input units per frame^2.

    The acceleration of each joint is the second difference ``x[t-1] - 2 x[t] + x[t+1]``; the error
    is the distance between predicted and ground-truth accelerations, averaged over joints and
    over the frames whose three frames are all valid.

    Args:
        pred, gt: ``(T, K, 3)`` joint positions of consecutive frames (root-aligned as the
            protocol says).
        valid: optional ``(T,)`` bool of frames with a label.

    Returns:
        a scalar tensor (``nan`` when fewer than three consecutive valid frames exist).
    """
    if gt.ndim != 3 or gt.shape[-1] != 3:
        raise ValueError(f"gt: expected shape (T, K, 3), got {tuple(gt.shape)}")
    if pred.shape != gt.shape:
        raise ValueError(f"pred: expected shape {tuple(gt.shape)}, got {tuple(pred.shape)}")
    if gt.shape[0] < 3:
        return torch.tensor(float("nan"))

    def accel(x: Tensor) -> Tensor:
        return x[:-2] - 2 * x[1:-1] + x[2:]

    error = torch.linalg.norm(accel(pred) - accel(gt), dim=-1).mean(dim=-1)  # (T-2,)
    if valid is not None:
        valid = valid.bool()
        keep = valid[:-2] & valid[1:-1] & valid[2:]
        error = error[keep]
    if error.numel() == 0:
        return torch.tensor(float("nan"))
    return error.mean()


def f_score(pred: Tensor, gt: Tensor, threshold: float) -> Tensor:
    """F-score ``(B,)`` of two point sets at a distance ``threshold`` (FreiHAND protocol).

    Recall: fraction of ground-truth points with a predicted point closer than ``threshold``;
    precision: fraction of predicted points with a ground-truth point closer than it;
    F = 2 P R / (P + R) (0 when both are 0). The point sets need not correspond.
    """
    _check_points("gt", gt)
    _check_points("pred", pred)
    distances = torch.cdist(pred.double(), gt.double())  # (B, Np, Ng)
    precision = (distances.min(dim=2).values < threshold).double().mean(dim=1)
    recall = (distances.min(dim=1).values < threshold).double().mean(dim=1)
    total = precision + recall
    score = torch.where(total > 0, 2 * precision * recall / total.clamp_min(1e-12),
                        torch.zeros_like(total))
    return score.to(gt.dtype)


@attrs.frozen
class Protocol:
    """How a benchmark scores 3D joints and meshes.

    Attributes:
        name: benchmark name.
        joint_set: the joint set the protocol indexes (``smpl44``: HMR2.0's 44 body joints,
            ``mano21``: HaMeR's 21 OpenPose-order hand joints).
        joints: indices of the scored joints in that set (None: all).
        root: indices (in the full set) whose mean is the root subtracted from joints and
            vertices before the non-aligned metrics.
        to_mm: factor from input units (metres) to reported units (millimetres).
        f_thresholds: F-score thresholds in metres (FreiHAND: 5 mm and 15 mm).
        acceleration: whether the benchmark reports acceleration error (video).
    """

    name: str
    joint_set: str
    joints: tuple[int, ...] | None
    root: tuple[int, ...]
    to_mm: float = 1000.0
    f_thresholds: tuple[float, ...] = ()
    acceleration: bool = False

    @property
    def subject(self):
        """The subject (``extpose_sdk.subjects``) whose joint set the protocol scores."""
        from extpose_sdk.subjects import subject_of_joint_set

        return subject_of_joint_set(self.joint_set)

    def root_align(self, points: Tensor, joints: Tensor) -> Tensor:
        """``points`` minus the root of ``joints`` (both ``(B, *, 3)``, the root from the full set)."""
        return points - joints[:, list(self.root)].mean(dim=1, keepdim=True)

    def select(self, joints: Tensor) -> Tensor:
        """The scored joints ``(B, len(joints), 3)`` of a full set ``(B, K, 3)``."""
        return joints if self.joints is None else joints[:, list(self.joints)]

    def evaluate(self, pred_joints: Tensor, gt_joints: Tensor, *,
                 pred_vertices: Tensor | None = None, gt_vertices: Tensor | None = None,
                 valid: Tensor | None = None) -> dict[str, Tensor]:
        """Per-sample metrics ``{name: (B,)}`` in millimetres (F-scores in 0..1).

        Args:
            pred_joints, gt_joints: ``(B, K, 3)`` in metres, the protocol's full joint set
                (``gt_joints`` may be ``(B, K, 4)`` with a validity column).
            pred_vertices, gt_vertices: optional ``(B, V, 3)`` meshes in metres.
            valid: optional ``(B, K)`` mask of labelled joints.
        """
        if gt_joints.shape[-1] == 4:
            valid = gt_joints[..., 3] > 0 if valid is None else valid
            gt_joints = gt_joints[..., :3]
        _check_points("gt_joints", gt_joints)
        _check_points("pred_joints", pred_joints, like=gt_joints)
        pred = self.root_align(pred_joints, pred_joints)
        gt = self.root_align(gt_joints, gt_joints)
        scored_valid = None if valid is None else self.select(valid[..., None])[..., 0]
        p, g = self.select(pred), self.select(gt)
        out = {
            "mpjpe": mpjpe(p, g, scored_valid) * self.to_mm,
            "pa_mpjpe": pa_mpjpe(p, g, scored_valid) * self.to_mm,
        }
        if pred_vertices is not None and gt_vertices is not None:
            pv = self.root_align(pred_vertices, pred_joints)
            gv = self.root_align(gt_vertices, gt_joints)
            aligned = procrustes_align(pv, gv)
            out["pve"] = pve(pv, gv) * self.to_mm
            out["pa_pve"] = pve(aligned, gv) * self.to_mm
            for threshold in self.f_thresholds:
                out[f"f@{threshold * 1000:g}mm"] = f_score(aligned, gv, threshold)
        return out

    def sequence_metrics(self, pred_joints: Tensor, gt_joints: Tensor,
                         valid: Tensor | None = None) -> dict[str, Tensor]:
        """Per-sequence metrics of consecutive frames ``(T, K, 3)``: acceleration error in
        mm/frame^2 when the protocol reports it, else ``{}``."""
        if not self.acceleration:
            return {}
        pred = self.select(self.root_align(pred_joints, pred_joints))
        gt = self.select(self.root_align(gt_joints[..., :3], gt_joints[..., :3]))
        return {"accel": acceleration_error(pred, gt, valid) * self.to_mm}


#: HMR2.0's 14 LSP joints in its 44-joint set (the 19 regressed joints start at 25).
LSP14_OF_SMPL44: tuple[int, ...] = (*range(25, 38), 43)
#: The root each protocol centres on: the subject's root joint (HMR2.0's pelvis, 39 of its 44
#: joints, the MPII pelvis of the 19 regressed ones; the wrist of the 21 hand joints).
_BODY_ROOT, _HAND_ROOT = (BODY.root_joint,), (HAND.root_joint,)

PROTOCOLS: dict[str, Protocol] = {
    "3dpw": Protocol("3dpw", BODY.joint_set, LSP14_OF_SMPL44, _BODY_ROOT, acceleration=True),
    "h36m": Protocol("h36m", BODY.joint_set, LSP14_OF_SMPL44, _BODY_ROOT),
    "freihand": Protocol("freihand", HAND.joint_set, None, _HAND_ROOT, f_thresholds=(0.005, 0.015)),
    "ho3d": Protocol("ho3d", HAND.joint_set, None, _HAND_ROOT, f_thresholds=(0.005, 0.015)),
    # the SDK's synthetic sets: every joint, video metrics too
    "synthetic-body": Protocol("synthetic-body", BODY.joint_set, LSP14_OF_SMPL44, _BODY_ROOT,
                               acceleration=True),
    "synthetic-hand": Protocol("synthetic-hand", HAND.joint_set, None, _HAND_ROOT,
                               f_thresholds=(0.005, 0.015), acceleration=True),
}


def protocol_for_joint_set(joint_set: str) -> Protocol:
    """The protocol a training run validates with: ``synthetic-body`` for ``smpl44`` (HMR2.0's
    LSP joints, pelvis-centred), ``synthetic-hand`` for ``mano21`` (all joints, wrist-centred);
    both report the acceleration error on clips."""
    for protocol in PROTOCOLS.values():
        if protocol.name.startswith("synthetic") and protocol.joint_set == joint_set:
            return protocol
    raise KeyError(f"no validation protocol for joint set {joint_set!r}")


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; an unknown name fails with the available ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise KeyError(f"unknown protocol {name!r}; available: {', '.join(PROTOCOLS)}") from None


def summarize(per_sample: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over samples (NaNs skipped) and the sample count ``n``."""
    import math

    keys = dict.fromkeys(k for row in per_sample for k in row)
    out: dict[str, float] = {}
    for key in keys:
        values = [float(row[key]) for row in per_sample if key in row]
        values = [v for v in values if not math.isnan(v)]
        out[key] = sum(values) / len(values) if values else float("nan")
    out["n"] = len(per_sample)
    return out
