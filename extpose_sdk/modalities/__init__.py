"""Modalities: how one crop's evidence becomes an image the shared ViT can embed.

Every modality produces a ``(C, H, W)`` float tensor the size of the RGB crop, normalised as the
backbone expects, so it goes through the same patch and position embedding as the RGB crop.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

#: ImageNet statistics in 0..255 units, as the official HMR2.0 / HaMeR preprocessing uses them.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0


@attrs.define
class CropEvidence:
    """What is known about one person (or hand) in one frame, in the crop's frame of reference.

    Attributes:
        size: (H, W) of the crop the backbone sees.
        transform: (2, 3) affine matrix from full-image pixels to crop pixels.
        crop_rgb: (H, W, 3) uint8 RGB crop, or None when no image is available.
        keypoints: (K, 3) full-image pixel x, y and confidence, or None.
        keypoint_layout: name of the keypoint layout (``coco17``, ``openpose_hand21``...).
        extras: anything a plugin modality needs (depth map, mask...).
    """

    size: tuple[int, int]
    transform: np.ndarray
    crop_rgb: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    keypoint_layout: str | None = None
    extras: dict[str, Any] = attrs.field(factory=dict)


class Modality:
    """Base of modalities. Subclasses set ``name`` and ``channels`` and implement ``render``."""

    name: str = ""
    channels: int = 3

    def available(self, evidence: CropEvidence) -> bool:
        """Whether ``evidence`` holds what this modality needs (else the modality is absent)."""
        raise NotImplementedError

    def render(self, evidence: CropEvidence) -> np.ndarray:
        """The modality's (H, W, C) image for one crop, in 0..255 units."""
        raise NotImplementedError

    def __call__(self, evidence: CropEvidence):
        """``(C, H, W)`` float32 tensor, ImageNet-normalised."""
        import torch

        image = np.asarray(self.render(evidence), dtype=np.float32)
        expected = (*evidence.size, self.channels)
        if image.shape != expected:
            raise ValueError(
                f"modality {self.name!r} rendered an image of shape {image.shape}; expected {expected}"
            )
        image = (image - IMAGENET_MEAN[: self.channels]) / IMAGENET_STD[: self.channels]
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
