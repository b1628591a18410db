"""The base-ViT interface every backbone provides, and the SDK's one ViT implementation.

``BaseViT`` is what ExtPose extends: it splits a ViT into ``embed`` (patch + position embedding,
plus any prefix tokens), ``blocks`` (each called as ``block(tokens, attn_mask=...)``) and
``norm``. ``ViT`` implements it for the ViTPose family used by HMR2.0 and HaMeR, with the official
quirks as options: a convolutional patch embedding with padding, and a position embedding with
one extra "cls" slot that is added to every token as a bias; and one option of its own, a
convolutional stem in place of the patch embedding (a hybrid ViT) for training small models
from scratch.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import nn

from extpose_sdk.attention import SegmentMask, attention


class BaseViT(nn.Module):
    """Interface of a ViT backbone that ExtPose can extend.

    Attributes a subclass sets:
        img_size: (H, W) of the image it embeds.
        patch_size: side of a patch in pixels.
        grid_size: (h, w) token grid of one image.
        patch_padding: zero padding of the patch embedding (ViTPose: 2), so a modality's own
            patch embedding (``extpose_sdk.modalities.PatchEncoder``) makes the same grid.
        in_chans: channels of the images ``embed`` takes (3).
        embed_dim: token width D.
        num_prefix_tokens: tokens before the patch tokens (class / register tokens; 0 for ViTPose).
        blocks: ``nn.ModuleList``; ``block(x, attn_mask=mask)`` with x ``(B, L, D)`` and a boolean
            mask broadcastable to ``(B, heads, L, L)`` (``True`` = may attend).
        accepts_segment_masks: True if the blocks also take an
            ``extpose_sdk.attention.SegmentMask`` for x ``(1, L, D)`` holding several sequences
            packed back to back (per-token layers, attention within a segment, stochastic depth
            per segment). ExtPose then packs variable-length sequences for xformers. The SDK's
            own ``Block`` also takes an ``extpose_sdk.mask_paths.PaperMask`` (the paper's rule
            on a frames x modalities grid, computed without a dense mask).
        norm: the final normalisation (``nn.Identity`` if the model has none).
    """

    img_size: tuple[int, int]
    patch_size: int
    patch_padding: int = 0
    in_chans: int = 3
    grid_size: tuple[int, int]
    embed_dim: int
    num_prefix_tokens: int = 0
    accepts_segment_masks: bool = False
    blocks: nn.ModuleList
    norm: nn.Module

    @property
    def num_tokens(self) -> int:
        """Tokens per image: prefix tokens plus patch tokens."""
        return self.num_prefix_tokens + self.grid_size[0] * self.grid_size[1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` image -> ``(B, num_tokens, D)`` tokens, position embedding included."""
        raise NotImplementedError

    def position(self, patches: torch.Tensor) -> torch.Tensor:
        """``(B, h * w, D)`` patch tokens -> ``(B, num_tokens, D)``: what ``embed`` does after its
        patch embedding (prefix tokens, position embedding), so that tokens a modality makes
        with its own patch embedding sit on this ViT's grid."""
        raise NotImplementedError(
            f"{type(self).__name__} does not expose its position embedding (BaseViT.position); "
            "a modality with its own patch embedding needs it"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, num_tokens, D)``: the base model on its own."""
        tokens = self.embed(x)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def check_image(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` is ``(B, C, H, W)`` at this backbone's size."""
        if x.dim() != 4 or tuple(x.shape[-2:]) != tuple(self.img_size):
            raise ValueError(
                f"{type(self).__name__} expects images of shape (B, C, {self.img_size[0]}, "
                f"{self.img_size[1]}); got {tuple(x.shape)}"
            )


@attrs.frozen
class ViTConfig:
    """Sizes and official quirks of the ViTPose-family ViT. Defaults are ViTPose-H as in HMR2.0."""

    img_size: tuple[int, int] = (256, 192)
    patch_size: int = 16
    patch_padding: int = 2
    in_chans: int = 3
    embed_dim: int = 1280
    depth: int = 32
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    norm_eps: float = 1e-6
    cls_slot_bias: bool = True  # pos_embed has one extra slot, added to every patch token
    final_norm: bool = True
    #: How a new position embedding starts: "noise" (small random values, as a ViT trained from
    #: scratch) or "sincos" (2D sine-cosine codes, as MAE, from which ViTPose and so HMR2.0 /
    #: HaMeR start). A checkpoint overwrites either. Training a small ViT from scratch, "sincos"
    #: helped it find the hand in one set of RGB crops and not in another; a conv stem did in both
    #: (``stem``, benchmarks/rgb_backbones.py).
    pos_embed_init: str = attrs.field(default="noise", validator=attrs.validators.in_(("noise", "sincos")))
    #: The standard deviation of the "noise" start (a normal cut at -2 and 2). A conv
    #: stem's tokens carry content of about unit size; a position code as large (1.0) lets a
    #: small hybrid ViT trained from scratch tell its tokens apart sooner than 0.02 or "sincos"
    #: (benchmarks/rgb_backbones.py).
    pos_embed_std: float = attrs.field(default=0.02, validator=attrs.validators.gt(0.0))
    #: How pixels become tokens: "patch" (ViTPose: one convolution over non-overlapping patches)
    #: or "conv" (a hybrid ViT: log2(patch_size) stride-2 stages of two 3 x 3 convolutions with
    #: group norm, then a 1 x 1 projection; ``ConvStem``). Trained from scratch on the synthetic
    #: crops, the "patch" ViT does not learn to read RGB in thousands of steps, the "conv" stem
    #: to stride 32 does in hundreds (benchmarks/rgb_backbones.py).
    stem: str = attrs.field(default="patch", validator=attrs.validators.in_(("patch", "conv")))

    def __attrs_post_init__(self) -> None:
        if self.stem == "conv":
            p, (h, w) = self.patch_size, self.img_size
            if p < 2 or p & (p - 1):
                raise ValueError(f"a conv stem needs a patch_size that is a power of 2; got {p}")
            if h % p or w % p:
                raise ValueError(f"a conv stem needs img_size divisible by patch_size {p}; "
                                 f"got {tuple(self.img_size)}")

    @property
    def grid_size(self) -> tuple[int, int]:
        h, w = self.img_size
        p, pad = self.patch_size, self.patch_padding
        if self.stem == "conv":  # each 3 x 3 stride-2 stage (padding 1) halves the side exactly
            return (h // p, w // p)
        return ((h + 2 * pad - p) // p + 1, (w + 2 * pad - p) // p + 1)


class PatchEmbed(nn.Module):
    """Non-overlapping convolutional patches (ViTPose pads by 2): ``(B, C, H, W) -> (B, N, D)``."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, padding: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class ConvStem(nn.Module):
    """A hybrid ViT's patch embedding: ``log2(patch_size)`` stages, each a stride-2 and a stride-1
    3 x 3 convolution with group norm and ReLU (channels 32, 64, ... up to ``embed_dim``), then a
    1 x 1 projection to ``embed_dim``: ``(B, C, H, W) -> (B, H/p * W/p, D)``. Group norm, not
    batch norm, as RGB and skeleton images share it and need no running statistics."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for stage in range(patch_size.bit_length() - 1):
            width = min(32 << stage, embed_dim)
            groups = math.gcd(8, width)
            layers += [nn.Conv2d(channels, width, 3, 2, 1), nn.GroupNorm(groups, width), nn.ReLU(),
                       nn.Conv2d(width, width, 3, 1, 1), nn.GroupNorm(groups, width), nn.ReLU()]
            channels = width
        self.stages = nn.Sequential(*layers)
        self.proj = nn.Conv2d(channels, embed_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.stages(x)).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection; the backend is selectable."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.backend = "auto"

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, L, D = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.num_heads, D // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = attention(q, k, v, mask=attn_mask, backend=self.backend)
        return self.proj(out.transpose(1, 2).reshape(B, L, D))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at evaluation).

    With ``segments``, x ``(1, L, D)`` holds packed samples and each segment is one sample.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, segments: SegmentMask | None = None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if segments is None:
            keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        else:
            per_segment = x.new_empty(len(segments.lengths)).bernoulli_(1.0 - self.p)
            keep = per_segment[segments.segment_ids(x.device)][None, :, None]
        return x * keep / (1.0 - self.p)


class Block(nn.Module):
    """Pre-norm transformer block: attention then MLP, each with a residual."""

    def __init__(self, config: ViTConfig, drop_path: float = 0.0) -> None:
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn = Attention(dim, config.num_heads, config.qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | SegmentMask | None = None
    ) -> torch.Tensor:
        segments = attn_mask if isinstance(attn_mask, SegmentMask) else None
        x = x + self.drop_path(self.attn(self.norm1(x), attn_mask=attn_mask), segments)
        return x + self.drop_path(self.mlp(self.norm2(x)), segments)


class ViT(BaseViT):
    """The ViTPose-family ViT (HMR2.0 / HaMeR backbone); state-dict keys match the official ones.

    Keys: ``pos_embed``, ``patch_embed.proj.*``, ``blocks.i.{norm1,attn.qkv,attn.proj,norm2,
    mlp.fc1,mlp.fc2}.*``, ``last_norm.*``.
    """

    def __init__(self, config: ViTConfig | None = None, **overrides) -> None:
        super().__init__()
        config = attrs.evolve(config or ViTConfig(), **overrides)
        self.config = config
        self.img_size = tuple(config.img_size)
        self.patch_size = config.patch_size
        # what a modality's own single-convolution patch embedding needs to make the same grid
        self.patch_padding = config.patch_padding if config.stem == "patch" else 0
        self.in_chans = config.in_chans
        self.grid_size = config.grid_size
        self.embed_dim = config.embed_dim
        self.num_prefix_tokens = 0
        self.accepts_segment_masks = True
        if config.stem == "conv":
            self.patch_embed = ConvStem(config.in_chans, config.embed_dim, config.patch_size)
        else:
            self.patch_embed = PatchEmbed(
                config.in_chans, config.embed_dim, config.patch_size, config.patch_padding
            )
        num_patches = self.grid_size[0] * self.grid_size[1]
        slots = num_patches + (1 if config.cls_slot_bias else 0)
        self.pos_embed = nn.Parameter(torch.zeros(1, slots, config.embed_dim))
        steps = max(config.depth - 1, 1)  # stochastic depth grows linearly with depth
        rates = [config.drop_path_rate * i / steps for i in range(config.depth)]
        self.blocks = nn.ModuleList(Block(config, rate) for rate in rates)
        self.last_norm = (
            nn.LayerNorm(config.embed_dim, eps=config.norm_eps) if config.final_norm else nn.Identity()
        )
        self.reset_parameters()

    @property
    def norm(self) -> nn.Module:  # the official name is last_norm
        return self.last_norm

    def reset_parameters(self) -> None:
        if self.pos_embed.is_meta:  # sized without memory (e.g. to count parameters)
            return
        if self.config.pos_embed_init == "sincos":
            with torch.no_grad():
                self.pos_embed.zero_()
                self.pos_embed[0, -math.prod(self.grid_size):] = sincos_position(self.grid_size, self.embed_dim)
        else:
            nn.init.trunc_normal_(self.pos_embed, std=self.config.pos_embed_std)  # cut at -2 and 2
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                nn.init.trunc_normal_(module.weight, std=math.sqrt(1.0 / fan_in))
                nn.init.zeros_(module.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.check_image(x)
        return self.position(self.patch_embed(x))

    def position(self, patches: torch.Tensor) -> torch.Tensor:
        if self.config.cls_slot_bias:
            return patches + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        return patches + self.pos_embed

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, D, h, w)``: the official backbone's output layout."""
        tokens = self(x)
        return tokens.transpose(1, 2).reshape(x.shape[0], self.embed_dim, *self.grid_size)


def sincos_position(grid: tuple[int, int], dim: int) -> torch.Tensor:
    """``(h * w, dim)`` 2D sine-cosine position codes, row by row: a quarter of the channels each
    for sin(x), cos(x), sin(y), cos(y), at geometric frequencies from 1 towards 1/10000."""
    if dim % 4:
        raise ValueError(f"sine-cosine positions need a width divisible by 4; got {dim}")
    quarter = dim // 4
    frequency = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    y, x = torch.meshgrid(torch.arange(grid[0], dtype=torch.float32),
                          torch.arange(grid[1], dtype=torch.float32), indexing="ij")
    codes = []
    for coordinate in (x, y):
        angle = coordinate.reshape(-1, 1) * frequency
        codes += [angle.sin(), angle.cos()]
    return torch.cat(codes, 1)


def build_vitpose(**options) -> ViT:
    """Factory of the ``vitpose`` backbone: ViTPose-H by default, any size by keyword."""
    if "img_size" in options:
        options["img_size"] = tuple(options["img_size"])
    return ViT(ViTConfig(**options))

