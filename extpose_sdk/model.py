"""``MeshRecoveryModel``: a ViT backbone, optionally extended, and a mesh head, as one module.

    model = MeshRecoveryModel(backbone, head, modalities=("rgb", "skeleton"), mask="frame")
    out = model({"rgb": x, "skeleton": s})  # x, s: (B, 3, 256, 256) or (B, T, 3, 256, 256)
    out.body_pose  # (B, 23, 3, 3) or (B, T, 23, 3, 3)
    model.parameter_report()  # shared (backbone, head) and added (modality encoders)

Inputs are normalised 256x256 crops as the official preprocessing makes them; the backbone sees
the central columns that fit its image size (``x[..., 32:-32]`` for ViTPose's 256x192). A
modality with an encoder of its own (``Modality.encoder``: a depth map's 1-channel patch
embedding) is embedded by it, with any channel count; its parameters live under
``encoders.<name>.*`` and are the only ones the model adds to the base. With RGB
only and single frames the model is the official one (backbone, then head on the frame's
tokens); with more modalities or T > 1 frames the backbone runs through ``ExtendedViT`` and the
head reads each frame's tokens of all present modalities. State-dict keys are the official ones:
``backbone.*`` and ``smpl_head.*`` / ``mano_head.*``.

``build_mesh_recovery_model`` is the generic recipe builder (a registered backbone and head);
the ``hmr2`` / ``extpose-hmr2`` and ``hamer`` / ``extpose-hamer`` recipes are their plugin
packages' calls of it with their official checkpoint layout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from extpose_sdk.cameras import FOCAL_LENGTH
from extpose_sdk.data.sample import CROP_SIZE
from extpose_sdk.heads.mesh import MeshParams
from extpose_sdk.subjects import Subject, get_subject, subject_of


@attrs.define
class MeshOutput(MeshParams):
    """A head's fields plus ``pred_cam_t (.., 3)``: the crop camera as a translation
    (focal 5000, crop 256). Leading dims ``(B,)`` or ``(B, T)`` as the input's.

    With a body model attached (``MeshRecoveryModel.set_body_model``) also the body model's
    ``pred_keypoints_3d (.., K, 3)`` and ``pred_vertices (.., V, 3)`` (metres, body-model frame,
    no translation) and ``pred_keypoints_2d (.., K, 2)``: the joints moved by ``pred_cam_t`` and
    projected with the crop camera, in crop-normalised coordinates (the official training
    losses' inputs)."""

    pred_cam_t: torch.Tensor | None = None
    pred_keypoints_3d: torch.Tensor | None = None
    pred_keypoints_2d: torch.Tensor | None = None
    pred_vertices: torch.Tensor | None = None




class MeshRecoveryModel(nn.Module):
    """Backbone + head. ``forward(inputs, present=None) -> MeshOutput``.

    Args:
        backbone: an ``extpose_sdk.vit.BaseViT``.
        head: a registered head (``smpl``, ``mano``...): ``head(context, context_mask)``.
        modalities: the input names, in token order; ``"rgb"`` first for the official models.
        mask: ``ExtendedViT``'s attention mask when the extension runs (``"frame"``, ``"paper"``...).
        head_name: the head's state-dict prefix; by default the one the head declares
            (``state_dict_prefix``: ``smpl_head`` / ``mano_head`` for the official heads, so
            official checkpoints load), else ``head``.
        subject: what the model reconstructs (``extpose_sdk.subjects``: ``"body"``, ``"hand"``
            or a ``Subject``); by default the head's ``subject``.
        encoders: modality name -> the module that embeds its images (``(B, C, H, W) -> (B, N,
            D)``) for modalities that bring their own (``extpose_sdk.modalities.build_encoders``);
            the others share the backbone's embedding.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        modalities: tuple[str, ...] | list[str] = ("rgb",),
        mask: Any = "frame",
        attention: str = "auto",
        checkpointing: bool = False,
        head_name: str | None = None,
        subject: str | Subject | None = None,
        encoders: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("MeshRecoveryModel needs at least one modality")
        unknown = sorted(set(encoders or {}) - set(modalities))
        if unknown:
            raise ValueError(f"encoders for {unknown}, which are not among the modalities "
                             f"{list(modalities)}")
        self._subject = None if subject is None else get_subject(subject)
        self.backbone = backbone
        self.encoders = nn.ModuleDict(dict(encoders or {}))  # no key when empty
        self.head_name = head_name or _default_head_name(head)
        self.add_module(self.head_name, head)
        self.modalities = tuple(modalities)
        self.mask = mask
        self.attention = attention
        self.checkpointing = checkpointing
        self._extended: dict[str, Any] = {}  # ExtendedViT, kept out of the state dict

    @property
    def head(self) -> nn.Module:
        return getattr(self, self.head_name)

    @property
    def subject(self) -> Subject:
        """What the model reconstructs: the one given, else the head's (``Subject``)."""
        return self._subject or subject_of(self.head)

    def forward(
        self,
        inputs: dict[str, torch.Tensor],
        present: dict[str, torch.Tensor] | None = None,
    ) -> MeshOutput:
        inputs = self._check_inputs(inputs)
        first = next(iter(inputs.values()))
        video = first.dim() == 5
        B, T = first.shape[0], (first.shape[1] if video else 1)
        inputs = {name: self._backbone_view(x) for name, x in inputs.items()}
        if not video:
            inputs = {name: x[:, None] for name, x in inputs.items()}
            if present is not None:
                present = {n: (p[:, None] if p.dim() == 1 else p) for n, p in present.items()}
        if self._is_plain(inputs, present, T):
            params = self.head(self.backbone(inputs["rgb"][:, 0]))
        else:
            tokens = self._extended_vit()(inputs, present)
            context, context_mask = tokens.frame_context()
            params = self.head(context, context_mask)
        output = _with_cam_t(params, (B, T) if video else (B,))
        if self.body_model is not None:
            _add_joints(output, self.body_model, self.subject.pose_key)
        return output

    def parameter_report(self) -> ParameterReport:
        """Parameters shared by every modality and frame (backbone and head) and those the
        modality encoders add, per modality (0 for RGB and the skeleton image)."""
        shared = {"backbone": _count(self.backbone), "head": _count(self.head)}
        added = {name: _count(self.encoders[name]) if name in self.encoders else 0
                 for name in self.modalities}
        return ParameterReport(shared=shared, added=added)

    @property
    def body_model(self) -> nn.Module | None:
        """The SMPL / MANO model whose joints the output carries (``None``: parameters only)."""
        return self._extended.get("body_model")

    def set_body_model(self, body_model: nn.Module | None) -> MeshRecoveryModel:
        """Attach a body model (kept out of the state dict: it holds the user's licensed data),
        so outputs carry ``pred_keypoints_3d / _2d`` and ``pred_vertices``."""
        if body_model is None:
            self._extended.pop("body_model", None)
        else:
            for parameter in body_model.parameters():
                parameter.requires_grad_(False)
            self._extended["body_model"] = body_model
        return self

    def _apply(self, fn, *args, **kwargs):
        """``.to(device)`` moves an attached body model along with the weights."""
        result = super()._apply(fn, *args, **kwargs)
        if self.body_model is not None:
            self.body_model._apply(fn, *args, **kwargs)
        return result

    # -- helpers, in the order forward uses them --

    def _channels(self, name: str) -> int | None:
        """Channels the images of modality ``name`` must have (None: its encoder says)."""
        if name in self.encoders:
            return getattr(self.encoders[name], "channels", None)
        return getattr(self.backbone, "in_chans", 3)

    def _check_inputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self._channels(self.modalities[0]) or "C"
        expected = f"(B, {c}, {CROP_SIZE}, {CROP_SIZE}) or (B, T, {c}, {CROP_SIZE}, {CROP_SIZE})"
        if not isinstance(inputs, Mapping):
            raise TypeError(f"inputs must be a dict of modality name -> tensor {expected}, e.g. "
                            f"model({{'rgb': x}}); got {type(inputs).__name__}")  # fmt: skip
        weights = next(self.parameters(), None)
        dtype = weights.dtype if weights is not None else torch.float32
        for name, x in inputs.items():
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"input {name!r} must be a torch.Tensor {expected}, got "
                                f"{type(x).__module__}.{type(x).__name__}; convert it with "
                                "torch.from_numpy(x)")  # fmt: skip
            if not x.is_floating_point():
                raise TypeError(f"input {name!r} has dtype {x.dtype}; the model takes normalised "
                                f"{dtype} crops (extpose_sdk.data.crops), not raw pixels")  # fmt: skip
            if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
                raise TypeError(f"input {name!r} has dtype {x.dtype} but the model's weights are "
                                f"{dtype}; pass x.to({dtype})")  # fmt: skip
            if x.dim() in (4, 5) and 0 in x.shape[: x.dim() - 3]:
                what = "batch" if x.shape[0] == 0 else "clip (T = 0 frames)"
                raise ValueError(f"input {name!r} is an empty {what}: shape {tuple(x.shape)}; "
                                 f"give at least one crop {expected}")  # fmt: skip
        unknown = [name for name in inputs if name not in self.modalities]
        if unknown or not inputs:
            raise ValueError(
                f"inputs {sorted(inputs)} do not fit this model's modalities {list(self.modalities)}"
            )
        shapes = {name: tuple(x.shape) for name, x in inputs.items()}
        first = next(iter(shapes.values()))
        for name, shape in shapes.items():
            channels = self._channels(name)
            if (len(shape) not in (4, 5) or shape[:-3] != first[:-3]
                    or channels is not None and shape[-3] != channels):
                c = "C" if channels is None else channels
                raise ValueError(
                    f"input {name!r} must have shape (B, {c}, {CROP_SIZE}, {CROP_SIZE}) or "
                    f"(B, T, {c}, {CROP_SIZE}, {CROP_SIZE}) with the same (B, T) for every "
                    f"modality; got {shapes}"
                )
        return {name: inputs[name] for name in self.modalities if name in inputs}

    def _backbone_view(self, x: torch.Tensor) -> torch.Tensor:
        """The central columns the backbone embeds: ``x[..., 32:-32]`` for 256 -> 192."""
        height, width = self.backbone.img_size
        if x.shape[-2] != height or x.shape[-1] < width:
            raise ValueError(
                f"input crops must have shape (.., 3, {height}, W >= {width}) for this backbone "
                f"(official: (.., 3, 256, 256)); got {tuple(x.shape)}"
            )
        left = (x.shape[-1] - width) // 2
        return x[..., left : left + width]

    def _is_plain(self, inputs, present, T: int) -> bool:
        if T != 1 or list(inputs) != ["rgb"] or self.modalities != ("rgb",) or self.encoders:
            return False
        return present is None or bool(torch.as_tensor(present.get("rgb", True)).all())

    def _extended_vit(self):
        if "vit" not in self._extended:
            try:
                from extpose_sdk.extend import ExtendedViT
            except ImportError as error:  # pragma: no cover - the extension is part of the core
                raise ImportError(
                    "more than RGB or T > 1 frames need extpose_sdk.extend.ExtendedViT"
                ) from error
            self._extended["vit"] = ExtendedViT(
                self.backbone, mask=self.mask, attention=self.attention,
                checkpointing=self.checkpointing, encoders=self.encoders,
            )
        return self._extended["vit"]


def modality_encoders(names, vit: nn.Module) -> dict[str, nn.Module]:
    """The encoders the registered modalities ``names`` bring for ``vit`` (none for RGB and the
    skeleton image, which share its embedding)."""
    from extpose_sdk.modalities import build_encoders
    from extpose_sdk.plugins import get_registries

    registry = get_registries().modality
    return build_encoders({name: registry.build(name) for name in names}, vit)


@attrs.frozen
class ParameterReport:
    """Parameter counts: ``shared`` (module -> count: the backbone and the head, which every
    modality and frame uses) and ``added`` (modality -> the parameters its own encoder adds)."""

    shared: dict[str, int]
    added: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.shared.values()) + sum(self.added.values())

    def __str__(self) -> str:
        shared = ", ".join(f"{k} {v:,}" for k, v in self.shared.items())
        added = ", ".join(f"{k} {v:,}" for k, v in self.added.items())
        return (f"{self.total:,} parameters: shared {sum(self.shared.values()):,} ({shared}); "
                f"added {sum(self.added.values()):,} ({added})")


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _default_head_name(head: nn.Module) -> str:
    return getattr(head, "state_dict_prefix", None) or "head"


def _with_cam_t(params: MeshParams, leading: tuple[int, ...]) -> MeshOutput:
    """``MeshOutput`` with ``pred_cam_t`` and every field reshaped to ``leading`` dims."""
    from extpose_sdk.cameras import crop_cam_to_translation

    fields = {
        field.name: getattr(params, field.name) for field in attrs.fields(type(params))
    }
    fields = {
        name: None if value is None else value.reshape(*leading, *value.shape[1:])
        for name, value in fields.items()
    }
    fields["pred_cam_t"] = crop_cam_to_translation(
        fields["pred_cam"], focal_length=FOCAL_LENGTH, crop_size=CROP_SIZE
    )
    return MeshOutput(**fields)


def _add_joints(output: MeshOutput, body_model: nn.Module, pose_name: str) -> None:
    """Fill ``pred_keypoints_3d / _2d`` and ``pred_vertices`` of ``output`` in place."""
    pose = getattr(output, pose_name)
    lead = pose.shape[:-3]
    flat = body_model(global_orient=output.global_orient.reshape(-1, 1, 3, 3).float(),
                      **{pose_name: pose.reshape(-1, *pose.shape[-3:]).float()},
                      betas=output.betas.reshape(-1, output.betas.shape[-1]).float())
    joints, vertices = flat.joints, flat.vertices
    from extpose_sdk.cameras import project

    cam_t = output.pred_cam_t.reshape(-1, 3).float()
    # crop-normalised: the crop spans [-0.5, 0.5], focal 5000 / 256, principal point 0
    projected = project(joints + cam_t[:, None], FOCAL_LENGTH / CROP_SIZE)
    output.pred_keypoints_3d = joints.reshape(*lead, *joints.shape[1:])
    output.pred_vertices = vertices.reshape(*lead, *vertices.shape[1:])
    output.pred_keypoints_2d = projected.reshape(*lead, *projected.shape[1:])


#: Keyword options of a recipe that size the head (``head_dim=32`` -> the head's ``dim=32``).
HEAD_OPTIONS = {
    "head_dim": "dim",
    "head_depth": "depth",
    "head_heads": "heads",
    "head_dim_head": "dim_head",
    "head_mlp_dim": "mlp_dim",
    "mean_params": "mean_params",
}
EXTENDED_MODALITIES = ("rgb", "skeleton")


def build_mesh_recovery_model(
    head: str,
    *,
    checkpoint: str | Path | None = None,
    backbone: str = "vitpose",
    modalities: tuple[str, ...] | None = None,
    mask: Any = None,
    trust_checkpoint: bool = False,
    attention: str = "auto",
    defaults: dict[str, Any] | None = None,
    subject: str | Subject | None = None,
    checkpoint_extras: tuple[str, ...] = (),
    **options: Any,
) -> MeshRecoveryModel:
    """The shared recipe: backbone (registered name, size options) + head (``smpl`` / ``mano``).

    ``options`` are the backbone's (``embed_dim, depth, num_heads, img_size...``) and the head's
    with a ``head_`` prefix (``head_dim, head_depth, head_heads, head_dim_head, head_mlp_dim``,
    ``mean_params``). ``checkpoint``: an official Lightning ``.ckpt`` or an ExtPose
    ``.safetensors`` (its JSON config's ``options`` size the model before loading, and its
    ``modalities`` / ``mask`` apply unless given here), then the recipe's ``defaults``
    (``{"modalities": ..., "mask": ...}``), then RGB with mask ``frame``. A recipe's plugin
    gives what its official checkpoints hold beyond the model (``checkpoint_extras``, skipped
    when loading) and may give the ``subject`` (else the head's).
    """
    from extpose_sdk import checkpoints
    from extpose_sdk.plugins import get_registries

    state_dict = None
    if checkpoint is not None:
        state_dict, config = checkpoints.read_weights(checkpoint, trust=trust_checkpoint)
        options = {**config.get("options", {}), **options}
        modalities = modalities or config.get("modalities")
        mask = mask or config.get("mask")
    defaults = defaults or {}
    modalities = tuple(modalities or defaults.get("modalities") or ("rgb",))
    mask = mask or defaults.get("mask") or "frame"
    head_options = {HEAD_OPTIONS[k]: options.pop(k) for k in list(options) if k in HEAD_OPTIONS}
    registries = get_registries()
    # with weights to load, build without allocating (meta) and take the checkpoint's tensors
    with torch.device("meta") if state_dict is not None else contextlib.nullcontext():
        vit = registries.backbone.build(backbone, **options)
        head_module = registries.head.build(
            head, context_dim=vit.embed_dim, token_grid=tuple(vit.grid_size), **head_options
        )
        model = MeshRecoveryModel(
            vit, head_module, modalities=modalities, mask=mask, attention=attention,
            subject=subject, encoders=modality_encoders(modalities, vit),
        )
    if state_dict is not None:
        checkpoints.load_state_dict_checked(
            model, checkpoints.select_official_keys(state_dict, checkpoint_extras)[0],
            source=str(checkpoint),
            assign=True,
        )
    return model.eval()
