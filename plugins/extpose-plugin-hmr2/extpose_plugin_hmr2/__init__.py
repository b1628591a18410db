"""ExtPose plugin for HMR2.0 (4D-Humans): the official body model and its ExtPose extension.

Registered through the ``extpose`` entry point; nothing is built until a factory is called.
The core holds what is generic (the ViTPose ViT, the SMPL head, the extension and
``extpose_sdk.model.build_mesh_recovery_model``); this package holds what is HMR2.0's: its
recipes (``recipes.py``: the head, the modalities and mask of each, the subject) and its
official checkpoint's layout (``official.py``: what the Lightning file holds beyond the
model, skipped on loading and by ``extpose convert checkpoint``); and the weights it ships
(``weights/``: ``extpose-hmr2-synthetic``, trained on the synthetic body set).
"""

from extpose_plugin_hmr2.official import CHECKPOINT_EXTRAS
from extpose_sdk import hookimpl, lazy


@hookimpl
def extpose_register_backbones(register):
    register(
        "hmr2",
        lazy("extpose_sdk.vit:build_vitpose"),
        "HMR2.0's ViTPose-H backbone (256x192, patch 16 pad 2, width 1280, depth 32, 16 heads)",
        subject="body",
    )


@hookimpl
def extpose_register_models(register):
    register(
        "hmr2",
        lazy("extpose_plugin_hmr2.recipes:hmr2"),
        "HMR2.0: ViTPose-H + SMPL transformer head; checkpoint= the official .ckpt",
        subject="body",
        checkpoint_extras=CHECKPOINT_EXTRAS,
    )
    register(
        "extpose-hmr2",
        lazy("extpose_plugin_hmr2.recipes:extpose_hmr2"),
        "HMR2.0 weights extended with skeleton images and video frames (rgb+skeleton, no new parameters)",
        subject="body",
        checkpoint_extras=CHECKPOINT_EXTRAS,
    )


@hookimpl
def extpose_register_weights(register):
    register(
        "extpose-hmr2-synthetic",
        lazy("extpose_plugin_hmr2.weights:synthetic"),
        "ExtPose-HMR2.0 trained on the synthetic body set (rgb+skeleton, T=8; synthetic world only)",
        model="extpose-hmr2",
        subject="body",
    )
