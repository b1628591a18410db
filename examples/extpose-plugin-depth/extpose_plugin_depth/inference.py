"""Model inputs for one person with a user's depth map (``extpose_sdk.Pipeline`` builds its crop
evidence without ``extras``, so it cannot hand a depth map to the modality; this does it).

    from extpose_plugin_depth.inference import crop_inputs
    from extpose_plugin_depth.modality import read_depth

    inputs, present = crop_inputs(model.modalities, image, box, depth=read_depth("frame.png"),
                                  keypoints=points, keypoint_layout="openpose_hand21", size=128)
    output = model({k: v[None] for k, v in inputs.items()},
                   present={k: v[None] for k, v in present.items()})

Without ``depth`` (or with one that has nothing inside the crop) the depth image is zeros and
``present["depth"]`` is False: the model runs on the other modalities, as modality dropout
trained it to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def crop_inputs(modalities: Sequence[str], image: np.ndarray, box, *,
                depth: np.ndarray | None = None, keypoints: np.ndarray | None = None,
                keypoint_layout: str | None = None, size: int = 256, rescale: float = 1.0,
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(inputs, present)`` of one crop: ``(C, size, size)`` tensors and ``()`` bools per
    modality, from a full ``image`` (H, W, 3) RGB uint8, the person's ``box`` (x1, y1, x2, y2
    px), and optionally a full-image ``depth`` (H, W) metres and ``keypoints`` (K, 3) px."""
    import torch

    from extpose_sdk.data.crops import make_crop, warp
    from extpose_sdk.modalities import CropEvidence
    from extpose_sdk.plugins import get_registries

    if depth is not None and np.asarray(depth).shape != np.asarray(image).shape[:2]:
        raise ValueError(f"depth: shape {np.asarray(depth).shape} is not the image's "
                         f"{np.asarray(image).shape[:2]}; register the depth map to the image first")
    crop = make_crop(np.asarray(box, dtype=np.float64), image_width=np.asarray(image).shape[1],
                     rescale=rescale, size=size)
    evidence = CropEvidence(size=(size, size), transform=crop.transform,
                            crop_rgb=warp(image, crop), keypoints=keypoints,
                            keypoint_layout=keypoint_layout,
                            extras={} if depth is None else {"depth": depth})
    registry = get_registries().modality
    inputs, present = {}, {}
    for name in modalities:
        modality = registry.build(name)
        usable = modality.available(evidence)
        inputs[name] = (modality(evidence) if usable
                        else torch.zeros(modality.channels, size, size))
        present[name] = torch.tensor(usable)
    return inputs, present
