"""SMPL (HMR2.0) and MANO (HaMeR) heads: the transformer decoder plus the parameter readout.

The readout is residual on mean parameters: ``pose = decpose(t) + init_pose`` (6D rotations in
the official layout: 24 * 6 = 144 for SMPL, 16 * 6 = 96 for MANO), ``betas = decshape(t) +
init_betas``, ``cam = deccam(t) + init_cam`` (weak perspective ``[s, tx, ty]``). The mean
parameters are buffers (``init_body_pose`` / ``init_hand_pose``, ``init_betas``, ``init_cam``),
read from the official ``smpl_mean_params.npz`` / ``mano_mean_params.npz`` (keys ``pose``,
``shape``, ``cam``) when given, and overwritten by a checkpoint's values when one is loaded.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import torch
from torch import nn

from extpose_sdk.heads.transformer import TransformerDecoder
from extpose_sdk.subjects import BODY, HAND, Subject


@attrs.define
class MeshParams:
    """A head's prediction for one frame. Leading dims ``(B,)`` (``(B, T)`` from a model).

    ``global_orient (.., 1, 3, 3)``, ``body_pose (.., 23, 3, 3)`` (SMPL) or ``hand_pose
    (.., 15, 3, 3)`` (MANO), ``betas (.., 10)``, ``pred_cam (.., 3)`` = ``[s, tx, ty]``.
    """

    global_orient: torch.Tensor
    betas: torch.Tensor
    pred_cam: torch.Tensor
    body_pose: torch.Tensor | None = None
    hand_pose: torch.Tensor | None = None


@attrs.frozen
class HeadConfig:
    """Sizes of the decoder head. Defaults are the official ones (about 39.5M parameters)."""

    dim: int = 1024
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    mlp_dim: int = 1024
    num_betas: int = 10


IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # official layout: first two columns, one after the other
DEFAULT_CAM = (0.9, 0.0, 0.0)


class MeshHead(nn.Module):
    """Transformer decoder + residual readout of ``num_joints`` rotations, betas and camera.

    ``forward(context (B, N, D), context_mask (B, N) bool | None) -> MeshParams``. A subclass
    sets ``subject`` (``extpose_sdk.subjects``): what it predicts, which sizes its pose readout,
    and may set ``state_dict_prefix``: the name ``MeshRecoveryModel`` keeps it under.
    """

    subject: Subject
    state_dict_prefix: str = "head"

    @property
    def pose_name(self) -> str:
        """The output's pose field: ``body_pose`` or ``hand_pose`` (the subject's pose key)."""
        return self.subject.pose_key

    @property
    def num_joints(self) -> int:
        """Rotations predicted, the global orientation included (SMPL 24, MANO 16)."""
        return self.subject.pose_joints + 1

    def __init__(
        self,
        context_dim: int = 1280,
        token_grid: tuple[int, int] | None = None,
        *,
        config: HeadConfig | None = None,
        mean_params: str | Path | None = None,
        **sizes,
    ) -> None:
        super().__init__()
        config = attrs.evolve(config or HeadConfig(), **sizes)
        self.config = config
        self.context_dim = context_dim
        self.token_grid = None if token_grid is None else tuple(token_grid)
        self.transformer = TransformerDecoder(
            dim=config.dim,
            depth=config.depth,
            heads=config.heads,
            dim_head=config.dim_head,
            mlp_dim=config.mlp_dim,
            context_dim=context_dim,
        )
        npose = 6 * self.num_joints
        self.decpose = nn.Linear(config.dim, npose)
        self.decshape = nn.Linear(config.dim, config.num_betas)
        self.deccam = nn.Linear(config.dim, 3)
        pose, betas, cam = _mean_params(mean_params, npose, config.num_betas, self.num_joints)
        self.register_buffer(f"init_{self.pose_name}", pose[None])
        self.register_buffer("init_betas", betas[None])
        self.register_buffer("init_cam", cam[None])

    def forward(self, context: torch.Tensor, context_mask: torch.Tensor | None = None) -> MeshParams:
        token = self.transformer(context, context_mask).squeeze(1)  # (B, dim)
        pose_6d = self.decpose(token) + getattr(self, f"init_{self.pose_name}")
        betas = self.decshape(token) + self.init_betas
        cam = self.deccam(token) + self.init_cam
        from extpose_sdk.geometry import rot6d_to_rotmat

        rotmats = rot6d_to_rotmat(pose_6d.reshape(token.shape[0], self.num_joints, 6))
        return MeshParams(
            global_orient=rotmats[:, :1],
            betas=betas,
            pred_cam=cam,
            **{self.pose_name: rotmats[:, 1:]},
        )


class SMPLHead(MeshHead):
    """HMR2.0's head (keys ``smpl_head.*`` in the official checkpoint): 24 rotations."""

    subject = BODY
    state_dict_prefix = "smpl_head"


class MANOHead(MeshHead):
    """HaMeR's head (keys ``mano_head.*`` in the official checkpoint): 16 rotations of the
    right hand (left hands are mirrored onto it: ``HAND.mirror_left``)."""

    subject = HAND
    state_dict_prefix = "mano_head"


def _mean_params(path, npose: int, num_betas: int, num_joints: int):
    """``(pose (npose,), betas (num_betas,), cam (3,))`` from an official npz, or neutral values."""
    if path is None:
        return (
            torch.tensor(IDENTITY_6D * num_joints),
            torch.zeros(num_betas),
            torch.tensor(DEFAULT_CAM),
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"mean parameters file {path} not found; it is the official smpl_mean_params.npz / "
            "mano_mean_params.npz (keys pose, shape, cam), or leave mean_params unset and load a checkpoint"
        )
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("pose", "shape", "cam") if k not in data.files]
        if missing:
            raise KeyError(f"{path} lacks keys {missing}; it has {sorted(data.files)}")
        pose, betas, cam = (np.asarray(data[k], dtype=np.float32).reshape(-1) for k in ("pose", "shape", "cam"))
    for name, value, size in (("pose", pose, npose), ("shape", betas, num_betas), ("cam", cam, 3)):
        if value.size != size:
            raise ValueError(f"{path}: {name} has {value.size} values; expected {size}")
    return torch.from_numpy(pose), torch.from_numpy(betas), torch.from_numpy(cam)


def build_smpl_head(context_dim: int = 1280, token_grid=None, **options) -> SMPLHead:
    """Factory of the ``smpl`` head; size options ``dim, depth, heads, dim_head, mlp_dim``."""
    return SMPLHead(context_dim, token_grid, **options)


def build_mano_head(context_dim: int = 1280, token_grid=None, **options) -> MANOHead:
    """Factory of the ``mano`` head; size options ``dim, depth, heads, dim_head, mlp_dim``."""
    return MANOHead(context_dim, token_grid, **options)
