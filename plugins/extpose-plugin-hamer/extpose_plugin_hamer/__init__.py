"""ExtPose plugin for HaMeR: the official hand model and its ExtPose extension.

Registered through the ``extpose`` entry point; nothing is built until a factory is called.
The core holds what is generic (the ViTPose ViT, the MANO head, the extension and
``extpose_sdk.model.build_mesh_recovery_model``); this package holds what is HaMeR's: its
recipes (``recipes.py``: the head, the modalities and mask of each, the subject) and its
official checkpoint's layout (``official.py``: what the Lightning file holds beyond the
model, skipped on loading and by ``extpose convert checkpoint``); and the weights it ships
(``weights/``: ``extpose-hamer-synthetic``, trained on the synthetic hand set).
HaMeR sees every hand as a right hand (the ``hand`` subject's ``mirror_left``):
``extpose_sdk.Pipeline`` mirrors left-hand crops and flips ``pred_cam[1]`` back, as
HaMeR's demo does.
"""

from extpose_plugin_hamer.official import CHECKPOINT_EXTRAS
from extpose_sdk import hookimpl, lazy


@hookimpl
def extpose_register_backbones(register):
    register(
        "hamer",
        lazy("extpose_sdk.vit:build_vitpose"),
        "HaMeR's ViTPose-H backbone (256x192, patch 16 pad 2, width 1280, depth 32, 16 heads)",
        subject="hand",
    )


@hookimpl
def extpose_register_models(register):
    register(
        "hamer",
        lazy("extpose_plugin_hamer.recipes:hamer"),
        "HaMeR: ViTPose-H + MANO transformer head (right hands); checkpoint= the official .ckpt",
        subject="hand",
        checkpoint_extras=CHECKPOINT_EXTRAS,
    )
    register(
        "extpose-hamer",
        lazy("extpose_plugin_hamer.recipes:extpose_hamer"),
        "HaMeR weights extended with skeleton images and video frames (rgb+skeleton, no new parameters)",
        subject="hand",
        checkpoint_extras=CHECKPOINT_EXTRAS,
    )


@hookimpl
def extpose_register_weights(register):
    register(
        "extpose-hamer-synthetic",
        lazy("extpose_plugin_hamer.weights:synthetic"),
        "ExtPose-HaMeR trained on the synthetic hand set (rgb+skeleton, T=8; synthetic world only)",
        model="extpose-hamer",
        subject="hand",
    )
