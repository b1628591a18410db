"""ExtPose plugin for HMR2.0 (4D-Humans): the official body model and its ExtPose extension.

Registered through the ``extpose`` entry point; nothing is built until a factory is called.
The SMPL head and the shared recipe code live in the core (``smpl`` head,
``extpose_sdk.model.build_mesh_recovery_model``); this package names the recipes.
"""

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
    )
    register(
        "extpose-hmr2",
        lazy("extpose_plugin_hmr2.recipes:extpose_hmr2"),
        "HMR2.0 weights extended with skeleton images and video frames (rgb+skeleton, no new parameters)",
        subject="body",
    )
