"""The shared training / evaluation engine: one loop for one CPU or many GPUs (torchrun DDP).

    from extpose_sdk.engine import load_recipe, train
    train(load_recipe("synthetic-hand", ["max_steps=100"]), "runs/hand")

Modules, one idea each: ``recipe`` (TOML recipes and overrides), ``data`` (mixing, sharding,
modality images), ``model`` (what is trained, its initialisation), ``losses`` (the official
terms), ``loop`` (``train``: the loop), ``evaluate`` (the Evaluator), ``state`` (checkpoints, resuming),
``distributed`` (process groups), ``log`` (JSONL, TensorBoard, curves). Importing this package
imports no torch until a name is used.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "load_recipe": "extpose_sdk.engine.recipe",
    "Recipe": "extpose_sdk.engine.recipe",
    "train": "extpose_sdk.engine.loop",
    "TrainResult": "extpose_sdk.engine.loop",
    "TrainingError": "extpose_sdk.engine.loop",
    "Evaluator": "extpose_sdk.engine.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'extpose_sdk.engine' has no attribute {name!r}")
