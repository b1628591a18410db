"""The HMR2.0 recipes: ``hmr2`` (the original) and ``extpose-hmr2`` (the same weights, extended)."""

from __future__ import annotations

from extpose_plugin_hmr2.official import CHECKPOINT_EXTRAS
from extpose_sdk.model import EXTENDED_MODALITIES, build_mesh_recovery_model


def hmr2(checkpoint=None, **options):
    """HMR2.0: ViTPose-H + SMPL head, RGB single frames (any T works through the extension)."""
    return build_mesh_recovery_model("smpl", checkpoint=checkpoint, subject="body",
                                     checkpoint_extras=CHECKPOINT_EXTRAS, **options)


def extpose_hmr2(checkpoint=None, **options):
    """HMR2.0 extended: RGB + skeleton images, attention across frames (mask ``paper`` by default)."""
    defaults = {"modalities": EXTENDED_MODALITIES, "mask": "paper"}
    return build_mesh_recovery_model("smpl", checkpoint=checkpoint, defaults=defaults,
                                     subject="body", checkpoint_extras=CHECKPOINT_EXTRAS,
                                     **options)
