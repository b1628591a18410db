"""The RGB modality: the image crop itself."""

from __future__ import annotations

import numpy as np

from extpose_sdk.modalities import CropEvidence, Modality


class RGBModality(Modality):
    """The RGB crop, normalised with ImageNet statistics as HMR2.0 / HaMeR do."""

    name = "rgb"
    channels = 3

    def available(self, evidence: CropEvidence) -> bool:
        return evidence.crop_rgb is not None

    def render(self, evidence: CropEvidence) -> np.ndarray:
        if evidence.crop_rgb is None:
            raise ValueError("the rgb modality needs evidence.crop_rgb, an (H, W, 3) uint8 RGB crop")
        return evidence.crop_rgb
