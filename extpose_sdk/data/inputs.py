"""Model inputs from a collated batch: each modality's images, rendered when the batch lacks them.

A batch in the sample layout may carry a modality's images already (``rgb``; a data set that
pre-renders ``skeleton``); any other registered modality is rendered here, per frame, from the
crop evidence the sample layout keeps: ``detected_keypoints_2d`` (full-image px) with
``detected_layout``, and ``crop_transform``. A frame whose evidence the modality cannot use (no
confident keypoint, no detected keypoints at all) gets zeros and ``present=False``, so the model
treats it as absent; a batch in which no modality is present anywhere is an error.

    inputs, present = model_inputs(batch, ("rgb", "skeleton"))
    output = model(inputs)            # inputs["skeleton"]: (B, 3, 256, 256) or (B, T, 3, 256, 256)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from extpose_sdk.data.sample import CROP_SIZE


def model_inputs(batch: Mapping[str, Any], modalities: Sequence[str], *,
                 options: Mapping[str, Mapping[str, Any]] | None = None,
                 size: int = CROP_SIZE,
                 ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(inputs, present)``: per modality ``(B[, T], C, H, W)`` tensors and ``(B[, T])`` bools.

    ``options`` holds per-modality build options for rendered modalities
    (``{"skeleton": {"limb_width": 6}}``); ``size`` is the side of the rendered images (the
    crop's: ``crop_transform`` maps to a ``size`` square).
    """
    clip = "valid" in batch
    inputs: dict[str, torch.Tensor] = {}
    present: dict[str, torch.Tensor] = {}
    lead = None
    for name in modalities:
        if name in batch and torch.is_tensor(batch[name]):
            inputs[name] = batch[name]
            lead = batch[name].shape[: 2 if clip else 1]
            flag = batch.get(f"has_{name}")
            present[name] = (torch.ones(lead, dtype=torch.bool) if flag is None
                             else torch.as_tensor(flag, dtype=torch.bool))
    for name in modalities:
        if name not in inputs:
            inputs[name], present[name] = _render(batch, name, clip, (options or {}).get(name, {}),
                                                  size)
    if not any(bool(p.any()) for p in present.values()):
        have = sorted(k for k, v in batch.items() if torch.is_tensor(v))
        raise ValueError(f"none of the modalities {list(modalities)} is in the batch or can be "
                         f"rendered from its evidence; it has {have}")
    return inputs, present


def _render(batch: Mapping[str, Any], name: str, clip: bool, options: Mapping[str, Any],
            size: int = CROP_SIZE):
    from extpose_sdk.modalities import CropEvidence
    from extpose_sdk.plugins import get_registries

    modality = get_registries().modality.build(name, **options)
    if "detected_keypoints_2d" not in batch or "crop_transform" not in batch:
        lead = _lead(batch, clip)
        return (torch.zeros(*lead, modality.channels, size, size),
                torch.zeros(lead, dtype=torch.bool))
    keypoints = batch["detected_keypoints_2d"]
    transforms = batch["crop_transform"]
    lead = keypoints.shape[: 2 if clip else 1]
    layouts = batch.get("detected_layout")
    flat_keypoints = keypoints.reshape(-1, *keypoints.shape[len(lead):]).numpy()
    flat_transforms = transforms.reshape(-1, 2, 3).numpy().astype(np.float64)
    per_item = int(np.prod(lead[1:])) if clip else 1
    has = batch.get("has_detected_keypoints_2d")
    has = None if has is None else torch.as_tensor(has).reshape(-1).tolist()
    images, present = [], []
    for i in range(flat_keypoints.shape[0]):
        layout = layouts[i // per_item] if isinstance(layouts, list) else layouts
        evidence = CropEvidence(size=(size, size), transform=flat_transforms[i],
                                keypoints=flat_keypoints[i], keypoint_layout=layout)
        usable = (has is None or bool(has[i])) and modality.available(evidence)
        images.append(modality(evidence) if usable
                      else torch.zeros(modality.channels, size, size))
        present.append(usable)
    stacked = torch.stack(images).reshape(*lead, modality.channels, size, size)
    return stacked, torch.tensor(present, dtype=torch.bool).reshape(lead)


def _lead(batch: Mapping[str, Any], clip: bool) -> tuple[int, ...]:
    """``(B,)`` or ``(B, T)`` of a batch."""
    if clip:
        return tuple(batch["valid"].shape)
    first = next(v for v in batch.values() if torch.is_tensor(v))
    return (first.shape[0],)

