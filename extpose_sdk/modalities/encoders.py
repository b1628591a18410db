"""Encoders a modality can bring when the ViT's own patch embedding does not fit its images."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class PatchEncoder(nn.Module):
    """A modality's own patch embedding for ``channels``-channel images, followed by the ViT's
    own position embedding (shared): ``(B, channels, H, W) -> (B, vit.num_tokens, D)``.

    Its parameters are the convolution's, ``D * channels * p * p + D`` (a 1-channel depth map on
    a ViT of width D and patch p); the ViT is not a submodule: its parameters stay the base
    model's, counted once. The tokens sit on the ViT's grid (same patch size and padding, same
    position embedding), so they line up with the RGB tokens of the same crop.
    """

    def __init__(self, channels: int, vit: Any) -> None:
        super().__init__()
        self.channels = int(channels)
        self.proj = nn.Conv2d(self.channels, vit.embed_dim, vit.patch_size,
                              stride=vit.patch_size, padding=getattr(vit, "patch_padding", 0))
        self.__dict__["vit"] = vit  # shared, not owned

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"PatchEncoder expects (B, {self.channels}, H, W); got "
                             f"{tuple(x.shape)}")
        return self.vit.position(self.proj(x).flatten(2).transpose(1, 2))
