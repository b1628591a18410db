"""Checkpoints of a training run: weights a user loads, and the state a resumed run needs.

    OUT/checkpoints/step-000500/model.safetensors   weights (load_model / extpose predict read it)
                                model.json          how to rebuild the model (recipe, options)
                                recipe.toml         the resolved training recipe
                                state.pt            optimizer, scaler, every rank's RNG, step
                                                    (torch.load(weights_only=True)); the
                                                    schedule follows from the recipe and step
    OUT/checkpoints/latest                          the newest complete checkpoint's folder name
    OUT/best/                                       the best checkpoint by the recipe's metric

A checkpoint is written into a temporary folder and renamed into place, and ``latest`` is
replaced atomically after it, so a run killed at any moment leaves the previous checkpoint
whole. Only the last ``keep_last`` step folders are kept.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

LATEST = "latest"


def step_name(step: int) -> str:
    return f"step-{step:07d}"


def rng_state() -> dict[str, Any]:
    """This process's random states as tensors and plain values (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
             "numpy": [kind, int(pos), int(has_gauss), float(cached)],
             "python": _python_state(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss,
                         cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _python_state(state) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def save_weights(model: torch.nn.Module, folder: Path, config: dict[str, Any]) -> Path:
    """``folder/model.safetensors`` + ``model.json`` (the SDK's checkpoint format), replacing an
    earlier ``folder`` only once the new one is whole."""
    from extpose_sdk.checkpoints import save_extpose_checkpoint

    partial = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    save_extpose_checkpoint(model, partial / "model.safetensors", config)
    _replace_folder(partial, folder)
    return folder / "model.safetensors"


def _replace_folder(new: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(out: Path, step: int, *, model: torch.nn.Module, config: dict[str, Any],
                    recipe_toml: str, state: dict[str, Any], keep_last: int) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it, drop the oldest ones."""
    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    partial = root / f".{step_name(step)}.{os.getpid()}.new"
    save_weights(model, partial, config)
    (partial / "recipe.toml").write_text(recipe_toml)
    torch.save(state, partial / "state.pt")
    _replace_folder(partial, final)  # the same step again (a resumed run re-saving): whole
    latest = root / f".{LATEST}.{os.getpid()}"
    latest.write_text(final.name + "\n")
    os.replace(latest, root / LATEST)
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[: max(0, len(steps) - max(1, keep_last))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint folder of a run (``None`` when it has none)."""
    root = Path(out) / "checkpoints"
    pointer = root / LATEST
    if pointer.is_file():
        folder = root / pointer.read_text().strip()
        if (folder / "state.pt").is_file():
            return folder
    steps = sorted(p for p in root.glob("step-*") if (p / "state.pt").is_file())
    return steps[-1] if steps else None


def load_state(folder: Path) -> dict[str, Any]:
    """The training state of a checkpoint folder (step, optimizer, scaler, RNG), read without
    running code. Its weights load with the model (``build_model(recipe, resume_from=folder)``)."""
    return torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
