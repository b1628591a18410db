"""ExtPose SDK: pretrained ViT pose models extended with 2D skeleton images and video frames.

The public API. Importing this package loads no model, no plugin and no optional library.

    import extpose_sdk
    extpose_sdk.get_registries().backbone.names()
    model = extpose_sdk.load_model("hmr2", checkpoint="epoch=35-step=1000000.ckpt")
"""

from __future__ import annotations

from typing import Any

from extpose_sdk.plugins import (
    Component,
    PluginError,
    Registries,
    Registry,
    UnknownComponentError,
    get_plugin_manager,
    get_registries,
    hookimpl,
    lazy,
    register_plugin,
    reset_plugins,
    unregister_plugin,
)

__version__ = "0.1.0"

__all__ = [
    "Component",
    "Pipeline",
    "PluginError",
    "Registries",
    "Registry",
    "UnknownComponentError",
    "get_plugin_manager",
    "get_registries",
    "hookimpl",
    "lazy",
    "load_model",
    "register_plugin",
    "reset_plugins",
    "unregister_plugin",
]


def load_model(name: str, checkpoint: str | None = None, **options: Any) -> Any:
    """Build the registered model recipe ``name``, with weights from ``checkpoint`` if given
    (a file, or the name of registered weights such as ``extpose-hamer-synthetic``).

    ``extpose plugins`` lists the recipes; an unknown name fails with the available ones.
    """
    from extpose_sdk.checkpoints import resolve_weights

    weights = resolve_weights(checkpoint, name)
    return get_registries().model.build(weights.model, checkpoint=weights.path, **options)


def __getattr__(name: str) -> Any:
    """``extpose_sdk.Pipeline`` is imported on first use, so a plain import stays light."""
    if name == "Pipeline":
        from extpose_sdk.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'extpose_sdk' has no attribute {name!r}")
