"""ExtPose plugin for HaMeR: the official hand model and its ExtPose extension.

Registered through the ``extpose`` entry point; nothing is built until a factory is called.
"""

from extpose_sdk import hookimpl, lazy


@hookimpl
def extpose_register_backbones(register):
    register(
        "hamer",
        lazy("extpose_sdk.vit:build_vitpose"),
        "HaMeR's ViTPose-H backbone (256x192, patch 16 pad 2, width 1280, depth 32, 16 heads)",
    )
