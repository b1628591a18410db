"""The HaMeR recipes: ``hamer`` (the original) and ``extpose-hamer`` (the same weights, extended)."""

from __future__ import annotations

from extpose_plugin_hamer.official import CHECKPOINT_EXTRAS
from extpose_sdk.model import EXTENDED_MODALITIES, build_mesh_recovery_model


def hamer(checkpoint=None, **options):
    """HaMeR: ViTPose-H + MANO head, RGB single frames of right hands (left ones mirrored)."""
    return build_mesh_recovery_model("mano", checkpoint=checkpoint, subject="hand",
                                     checkpoint_extras=CHECKPOINT_EXTRAS, **options)


def extpose_hamer(checkpoint=None, **options):
    """HaMeR extended: RGB + skeleton images, attention across frames (mask ``paper`` by default)."""
    defaults = {"modalities": EXTENDED_MODALITIES, "mask": "paper"}
    return build_mesh_recovery_model("mano", checkpoint=checkpoint, defaults=defaults,
                                     subject="hand", checkpoint_extras=CHECKPOINT_EXTRAS,
                                     **options)
