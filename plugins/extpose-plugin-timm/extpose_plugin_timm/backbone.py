"""A timm ViT adapted to ``extpose_sdk.vit.BaseViT``: timm's own modules, called in ExtPose's order.

``build_timm_backbone("vit_small_patch16_224", img_size=..., ...)`` builds the model with
``timm.create_model`` and wraps it in ``TimmViT``. Nothing is copied: ``embed`` is timm's patch
embedding, ``_pos_embed`` (class / register tokens, position embedding resampled as timm does),
patch dropout and ``norm_pre``; ``blocks`` call timm's blocks with ``attn_mask``; ``norm`` is
timm's final ``norm``. So ``norm(blocks(embed(x)))`` is timm's ``forward_features(x)``.

Two families are supported, chosen by what their blocks take:

- ``VisionTransformer`` (ViT, DeiT III, DINOv2 with registers, ...): ``block(x, attn_mask=...)``.
- ``Eva`` (EVA-02, rotary position embedding): ``block(x, rope=..., attn_mask=...)``. ExtPose puts
  the tokens of several images (frames, modalities) into one sequence, image after image; the
  rope given to the block is tiled so each patch token is rotated by its position in its own
  image, and every image's prefix tokens get the identity rotation, as the first image's do.

A model whose blocks take no attention mask (BEiT, older timm) fails with an error that names it.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import nn

from extpose_sdk.vit import BaseViT


class UnsupportedTimmModelError(ValueError):
    """The timm model cannot be run with ExtPose's attention mask."""


def build_timm_backbone(
    model_name: str,
    *,
    pretrained: bool = False,
    weights: str | Path | None = None,
    **options,
) -> TimmViT:
    """Factory of the ``timm:*`` backbones: ``timm.create_model(model_name, **options)``, adapted.

    ``pretrained=True`` downloads timm's weights as ``timm.create_model`` does (needs a network);
    ``weights=PATH`` loads a local safetensors or weights-only torch file into the timm model.
    ``num_classes`` defaults to 0 (no classifier: a backbone needs none).
    """
    import timm

    if pretrained and weights is not None:
        raise ValueError("give either pretrained=True (timm's download) or weights=PATH, not both")
    known = timm.list_models()
    if model_name.partition(".")[0] not in known:  # "name.pretrained_tag" is timm's too
        import difflib

        close = difflib.get_close_matches(model_name, known, n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ValueError(
            f"timm has no model named {model_name!r}{hint} (see timm.list_models('*vit*'))"
        )
    options.setdefault("num_classes", 0)
    if "img_size" in options and isinstance(options["img_size"], list):
        options["img_size"] = tuple(options["img_size"])
    model = timm.create_model(model_name, pretrained=pretrained, **options)
    backbone = TimmViT(model, name=model_name)
    if weights is not None:
        from extpose_plugin_timm.weights import load_timm_weights

        load_timm_weights(model, weights)
    return backbone


class TimmViT(BaseViT):
    """``BaseViT`` over a timm ``VisionTransformer`` or ``Eva``; its state dict is ``model.*``."""

    def __init__(self, model: nn.Module, name: str | None = None) -> None:
        super().__init__()
        self.name = name or type(model).__name__
        self.family = _family(model, self.name)
        _check_no_patch_dropout(model, self.name)
        self.model = model
        patch_embed = model.patch_embed
        self.img_size = tuple(patch_embed.img_size)
        patch = tuple(patch_embed.patch_size)
        self.patch_size = patch[0] if patch[0] == patch[1] else patch
        self.grid_size = tuple(patch_embed.grid_size)
        proj = getattr(patch_embed, "proj", None)
        self.in_chans = getattr(proj, "in_channels", 3)
        self.patch_padding = proj.padding[0] if isinstance(proj, nn.Conv2d) else 0
        self.embed_dim = model.embed_dim
        self.num_prefix_tokens = model.num_prefix_tokens
        # The adapted blocks hold timm's blocks; kept out of the module tree (no second copy of
        # the keys in state_dict, parameters counted once, under ``model.blocks``).
        adapted = nn.ModuleList(
            TimmBlock(block, self, index) for index, block in enumerate(model.blocks)
        )
        self.__dict__["_adapted_blocks"] = adapted

    @property
    def blocks(self) -> nn.ModuleList:  # type: ignore[override]
        """timm's blocks, each called as ``block(tokens, attn_mask=...)``."""
        return self.__dict__["_adapted_blocks"]

    @property
    def norm(self) -> nn.Module:  # type: ignore[override]
        """timm's final norm (``nn.Identity`` for models that pool through ``fc_norm``)."""
        return self.model.norm

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, num_tokens, D)``: patches, prefix tokens, position, norm_pre."""
        self.check_image(x)
        return self.position(self.model.patch_embed(x))

    def position(self, patches: torch.Tensor) -> torch.Tensor:
        """``(B, h * w, D)`` patch tokens -> prefix tokens, position embedding, norm_pre."""
        model = self.model
        if self.family == "eva":
            tokens, _ = model._pos_embed(patches)  # rope is applied per image in the blocks
        else:
            tokens = model._pos_embed(patches)
            tokens = model.patch_drop(tokens)
        return model.norm_pre(tokens)

    def patch_rope(self, index: int) -> torch.Tensor | None:
        """The rope of one image's patch tokens for block ``index`` (``(..., N, dim)``), or None."""
        model = self.model
        rope = getattr(model, "rope", None)
        if rope is None:
            return None
        if hasattr(rope, "feat_shape") and not getattr(model, "dynamic_img_size", False):
            embed = rope.get_embed()
        else:
            embed = rope.get_embed(shape=self.grid_size)
        if getattr(model, "rope_mixed", False):
            embed = embed[index]  # depth-dependent rope: (depth, heads, N, dim)
        return embed

    def sequence_rope(self, index: int, length: int) -> torch.Tensor | None:
        """Rope for a sequence of ``length`` tokens made of whole images, one after another.

        timm's attention rotates every token after the first image's prefix tokens; each later
        image's prefix tokens get the identity rotation (sin 0, cos 1) and its patch tokens the
        rope of their position in that image.
        """
        rope = self.patch_rope(index)
        if rope is None:
            return None
        per_image = self.num_tokens
        if length % per_image:
            raise ValueError(
                f"{self.name}: a sequence of {length} tokens is not whole images of "
                f"{per_image} tokens ({self.num_prefix_tokens} prefix + {per_image - self.num_prefix_tokens} "
                "patches); rotary position embedding needs each image's tokens in one piece"
            )
        images = length // per_image
        if images == 1:
            return rope
        sin, cos = rope.chunk(2, dim=-1)
        prefix_shape = rope.shape[:-2] + (self.num_prefix_tokens, sin.shape[-1])
        identity = torch.cat([sin.new_zeros(prefix_shape), cos.new_ones(prefix_shape)], dim=-1)
        return torch.cat([rope] + [identity, rope] * (images - 1), dim=-2)


class TimmBlock(nn.Module):
    """One timm block called as ``block(x, attn_mask=...)`` (bool, ``True`` = may attend).

    A query that the mask lets see no key would make timm's attention return NaN (which then
    spreads to every token through the next blocks); such a query is let see itself instead.
    Those are tokens the extension marks absent, whose values nobody reads.
    """

    def __init__(self, block: nn.Module, owner: TimmViT, index: int) -> None:
        super().__init__()
        self.block = block
        self.index = index
        self.__dict__["_owner"] = owner  # a back-reference, not a submodule

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attn_mask is not None:
            attn_mask = _let_blind_queries_see_themselves(attn_mask)
        owner: TimmViT = self.__dict__["_owner"]
        if owner.family == "eva":
            rope = owner.sequence_rope(self.index, x.shape[1])
            return self.block(x, rope=rope, attn_mask=attn_mask)
        return self.block(x, attn_mask=attn_mask)


def _let_blind_queries_see_themselves(mask: torch.Tensor) -> torch.Tensor:
    if mask.dtype != torch.bool:
        raise TypeError(f"attention mask must be boolean (True = may attend), got {mask.dtype}")
    blind = ~mask.any(dim=-1, keepdim=True)
    if not bool(blind.any()):
        return mask
    length = mask.shape[-1]
    eye = torch.eye(length, dtype=torch.bool, device=mask.device)
    return mask | (blind & eye)


def _family(model: nn.Module, name: str) -> str:
    """``"vit"`` or ``"eva"``; a clear error for a model ExtPose cannot mask."""
    from timm.models.eva import Eva
    from timm.models.vision_transformer import VisionTransformer

    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "patch_embed"):
        raise UnsupportedTimmModelError(
            f"timm model {name!r} ({type(model).__name__}) is not a plain ViT (no patch_embed / "
            "blocks); ExtPose backbones need a ViT with one token per patch"
        )
    block = blocks[0]
    parameters = inspect.signature(block.forward).parameters
    if "attn_mask" not in parameters:
        raise UnsupportedTimmModelError(
            f"timm model {name!r} ({type(model).__name__}): its blocks "
            f"({type(block).__name__}.forward({', '.join(parameters)})) take no attention mask, "
            "so ExtPose cannot restrict attention between frames and modalities; use a "
            "VisionTransformer or Eva family model (timm >= 1.0 with attn_mask in its blocks)"
        )
    if isinstance(model, Eva):
        if "rope" not in parameters:
            raise UnsupportedTimmModelError(
                f"timm model {name!r} (Eva): its blocks take no rope argument; cannot place the "
                "rotary position embedding per image"
            )
        return "eva"
    if isinstance(model, VisionTransformer):
        return "vit"
    raise UnsupportedTimmModelError(
        f"timm model {name!r} ({type(model).__name__}) is not a supported ViT family; "
        "supported: VisionTransformer (vit_*, deit3_*, *_dinov2) and Eva (eva02_*)"
    )


def _check_no_patch_dropout(model: nn.Module, name: str) -> None:
    from timm.layers import PatchDropout

    patch_drop = getattr(model, "patch_drop", None)
    if isinstance(patch_drop, PatchDropout) and patch_drop.prob > 0:
        raise UnsupportedTimmModelError(
            f"timm model {name!r} was built with patch dropout (patch_drop_rate={patch_drop.prob}): "
            "it drops tokens per image, which ExtPose's per-image token groups cannot follow; "
            "build it with patch_drop_rate=0"
        )
