"""ExtPose plugin for HMR2.0 (4D-Humans): the official body model and its ExtPose extension.

Registered through the ``extpose`` entry point; nothing is built until a factory is called.
"""

from extpose_sdk import hookimpl, lazy


@hookimpl
def extpose_register_backbones(register):
    register(
        "hmr2",
        lazy("extpose_sdk.vit:build_vitpose"),
        "HMR2.0's ViTPose-H backbone (256x192, patch 16 pad 2, width 1280, depth 32, 16 heads)",
    )
