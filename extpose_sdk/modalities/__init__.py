"""Modalities: how one crop's evidence becomes an image, and how the image becomes tokens.

Every modality produces a ``(C, H, W)`` float tensor the size of the RGB crop, with any channel
count C. How it becomes tokens of the ViT is the modality's ``encoder(vit)``:

- ``None`` (RGB, the skeleton image): the ViT's own patch and position embedding, shared: no new
  parameter (the image must have the ViT's ``in_chans`` channels);
- a module of the modality's own, ``(B, C, H, W) -> (B, vit.num_tokens, D)``: its parameters are
  added to the model and reported as added (``MeshRecoveryModel.parameter_report``).
  ``extpose_sdk.modalities.encoders.PatchEncoder(C, vit)`` is the usual one: a patch embedding for C channels, then the ViT's
  own position embedding, so the tokens sit on the same grid as the RGB ones (a 1-channel depth
  map: ``D * 16 * 16 + D`` parameters).
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
    """Base of modalities. Subclasses set ``name`` and ``channels`` and implement ``available``
    and ``render``; a modality whose images the ViT cannot embed itself (another channel count,
    or tokens of its own) returns its module from ``encoder``. ``mean`` / ``std`` (per channel,
    0..255 units) normalise the rendered image; by default ImageNet's."""

    name: str = ""
    channels: int = 3
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def encoder(self, vit: Any) -> Any:
        """``None``: the image goes through ``vit``'s own patch and position embedding (zero new
        parameters). Else a ``torch.nn.Module`` mapping ``(B, channels, H, W)`` to ``(B,
        vit.num_tokens, vit.embed_dim)`` tokens, with parameters of its own."""
        return None

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
        mean = IMAGENET_MEAN[: self.channels] if self.mean is None else self.mean
        std = IMAGENET_STD[: self.channels] if self.std is None else self.std
        image = (image - mean) / std
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


def build_encoders(modalities: dict[str, Modality], vit: Any) -> dict[str, Any]:
    """The modules of the modalities that bring their own (``Modality.encoder``), by name; a
    modality without one must have the ViT's channel count (a ``ValueError`` says so)."""
    encoders = {}
    for name, modality in modalities.items():
        make = getattr(modality, "encoder", None)
        encoder = make(vit) if make is not None else None
        channels = getattr(modality, "channels", 3)
        if encoder is not None:
            encoders[name] = encoder
        elif channels != getattr(vit, "in_chans", 3):
            raise ValueError(
                f"modality {name!r} makes {channels}-channel images but the backbone "
                f"embeds {getattr(vit, 'in_chans', 3)} channels: give the modality an encoder "
                "(Modality.encoder, e.g. extpose_sdk.modalities.encoders.PatchEncoder)"
            )
    return encoders
