"""Loading a local weights file into a timm model: safetensors or a weights-only torch file.

The file is a timm state dict (as ``timm`` saves it, or nested under ``state_dict`` / ``model``).
timm's own ``checkpoint_filter_fn`` for the model's family converts it (original formats,
position embedding resampled to the model's image size). Keys must then match exactly, except
the classifier of a model built without one; a mismatch is an error naming the keys.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

_SHOWN = 8


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file, read by the core's one weights reader
    (``extpose_sdk.checkpoints.read_weights``: no code from the file runs)."""
    from extpose_sdk.checkpoints import read_weights

    return read_weights(path)[0]


def load_timm_weights(model: nn.Module, path: str | Path) -> None:
    """Load ``path`` into the timm ``model``; fail naming missing, unexpected or misshapen keys."""
    state = read_state_dict(path)
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if filter_fn is not None:
        state = filter_fn(state, model)
    expected = model.state_dict()
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    if classifier:  # a backbone built with num_classes=0 has no classifier to load
        state = {
            k: v for k, v in state.items()
            if k in expected or not k.startswith(f"{classifier}.")
        }
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(
        f"{k} (file {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or misshapen:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
                parts.append(f"{label} keys ({len(keys)}): {', '.join(keys[:_SHOWN])}{more}")
        raise ValueError(
            f"{path} does not fit timm model {type(model).__name__}: " + "; ".join(parts)
        )
    model.load_state_dict(state, strict=True)
