"""The model a recipe trains: a registered recipe, its body model, and its initialisation.

    model = build_model(recipe)            # MeshRecoveryModel with a body model attached
                                           # (model.backbone_weights: a pretrained backbone)
    init_mean_params(model, dataset, 512)  # from scratch: the head's mean pose / shape / camera

The body model gives the losses their joints. ``body_model = "synthetic"`` uses the SDK's
synthetic SMPL- / MANO-format file (the one the synthetic data sets are rendered with); a path
uses the user's own (licensed) file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from extpose_sdk.subjects import Subject, get_subject, subject_of


def load_training_body_model(path: str, subject: str | Subject):
    """The body model of ``subject`` (``body`` / ``hand`` or a ``Subject``) from ``path`` or
    ``"synthetic"``."""
    from extpose_sdk.body_models import EXPECTED_FILE, load_body_model

    subject = get_subject(subject)
    if not path:
        raise ValueError(f"the recipe needs a body model for its losses: add model.body_model="
                         f"PATH/{EXPECTED_FILE[subject.body_model]} (licensed; see "
                         "docs/body-models.md)")
    if path == "synthetic":
        from extpose_sdk.datasets.synthetic import synthetic_model_path

        path = str(synthetic_model_path(subject))
    return load_body_model(subject.body_model, path)


def build_model(recipe, *, resume_from: Path | None = None) -> Any:
    """The recipe's model, in train mode, with its body model attached. ``resume_from``: a run's
    own checkpoint folder, which holds every weight: the model is built from it, and neither the
    start checkpoint (``model.checkpoint``) nor the pretrained backbone is read (either file may
    be gone by then)."""
    import extpose_sdk

    m = recipe.model
    if m.checkpoint and m.backbone_weights:
        raise ValueError("give model.checkpoint or model.backbone_weights, not both: a checkpoint "
                         "brings its own backbone")
    options: dict[str, Any] = dict(m.options)
    checkpoint = m.checkpoint or None
    if resume_from is not None:
        checkpoint = str(Path(resume_from) / "model.safetensors")
    elif m.checkpoint:
        options["trust_checkpoint"] = m.trust_checkpoint
    model = extpose_sdk.load_model(m.recipe, checkpoint=checkpoint,
                                   modalities=tuple(m.modalities), mask=m.mask,
                                   attention=m.attention, **options)
    if m.backbone_weights and resume_from is None:
        from extpose_sdk.checkpoints import load_backbone_weights

        load_backbone_weights(model, m.backbone_weights, trust=m.trust_checkpoint)
    model.checkpointing = m.checkpointing
    model.set_body_model(load_training_body_model(m.body_model, subject_of(model)))
    if m.init_decoder_xavier and not checkpoint:
        init_decoder_xavier(model.head)
    return model.train()


def model_config(recipe) -> dict[str, Any]:
    """The JSON config saved beside trained weights: what ``load_model`` needs to rebuild them."""
    options = {k: v for k, v in recipe.model.options.items() if k != "mean_params"}
    config = {"model": recipe.model.recipe, "options": options,
              "modalities": list(recipe.model.modalities), "mask": recipe.model.mask,
              "frames": recipe.model.frames, "crop_size": recipe.data.crop_size,
              "recipe": recipe.name}
    if recipe.model.crop_rescale > 0:
        config["crop_rescale"] = recipe.model.crop_rescale
    return config


def init_decoder_xavier(head: torch.nn.Module, gain: float = 0.01) -> None:
    """The official ``INIT_DECODER_XAVIER``: Xavier-uniform readouts (pose, shape, camera) with a
    small gain, so a new head starts at its mean parameters."""
    for name in ("decpose", "decshape", "deccam"):
        layer = getattr(head, name)
        torch.nn.init.xavier_uniform_(layer.weight, gain=gain)


@torch.no_grad()
def mean_parameters(dataset, count: int, pose_key: str) -> dict[str, torch.Tensor]:
    """Mean pose (6D, global orientation first), betas and crop camera of ``count`` samples.

    Rotations are averaged as matrices and projected back to the nearest rotation; the camera
    scale fits the samples' 2D joints to their 3D joints under weak perspective
    (``x = s / 2 * X``, crop-normalised, as the official camera); translation 0.
    """
    from itertools import islice

    from extpose_sdk.geometry import axis_angle_to_rotmat, rotmat_to_rot6d

    rotations, betas, scales = [], [], []
    if isinstance(dataset, torch.utils.data.IterableDataset):
        samples = islice(iter(dataset), count)
    else:
        step = max(1, len(dataset) // max(1, count))
        samples = (dataset[i] for i in range(0, len(dataset), step))
    for sample in samples:
        orient = sample["global_orient"].reshape(-1, 1, 3)  # (F, 1, 3): a frame or a clip
        pose = sample[pose_key].reshape(orient.shape[0], -1, 3)
        rotations.append(axis_angle_to_rotmat(torch.cat([orient, pose], 1)))
        betas.append(sample["betas"].reshape(orient.shape[0], -1))
        k2d, k3d = sample["keypoints_2d"], sample["keypoints_3d"]
        scales.append(_weak_perspective_scale(k2d.reshape(-1, *k2d.shape[-2:]),
                                              k3d.reshape(-1, *k3d.shape[-2:])))
        if sum(len(b) for b in betas) >= count:
            break
    R = torch.cat(rotations).double().mean(0)  # (J, 3, 3)
    U, _, Vh = torch.linalg.svd(R)
    fix = torch.ones_like(R[..., 0])
    fix[..., -1] = torch.det(U @ Vh)
    mean_R = (U * fix[..., None, :]) @ Vh
    scale = torch.cat(scales)
    scale = scale[torch.isfinite(scale)]
    return {"pose": rotmat_to_rot6d(mean_R.float()).reshape(-1),
            "betas": torch.cat(betas).float().mean(0),
            "cam": torch.tensor([float(scale.median()) if len(scale) else 0.9, 0.0, 0.0])}


def _weak_perspective_scale(points_2d: torch.Tensor, points_3d: torch.Tensor) -> torch.Tensor:
    """(N,) ``s`` per frame: least squares of centred ``x2d = s / 2 * X3d[:, :2]``."""
    w = (points_2d[..., 2] > 0) & (points_3d[..., 3] > 0)
    w = w.double()[..., None]
    n = w.sum(1, keepdim=True).clamp_min(1)
    x = points_2d[..., :2].double()
    X = points_3d[..., :2].double()
    x = x - (x * w).sum(1, keepdim=True) / n
    X = X - (X * w).sum(1, keepdim=True) / n
    a = (w * x * X).sum((1, 2)) / (w * X * X).sum((1, 2)).clamp_min(1e-12)
    return 2 * a


def init_mean_params(model, dataset, count: int) -> dict[str, torch.Tensor]:
    """Set the head's mean-parameter buffers from ``dataset`` (the official ones are computed
    from the training data too); returns what was set."""
    head = model.head
    pose_key = subject_of(model).pose_key
    means = mean_parameters(dataset, count, pose_key)
    getattr(head, f"init_{pose_key}").copy_(means["pose"][None])
    head.init_betas.copy_(means["betas"][None])
    head.init_cam.copy_(means["cam"][None])
    return means
