"""Start a depth model from trained weights that have no depth encoder.

The SDK loads a checkpoint only into a model with exactly its keys, so a model with the
``depth`` modality (which adds ``encoders.depth.*``) cannot start from weights trained without
it. This writes a copy of those weights with a freshly initialised depth encoder added (every
other tensor unchanged), which ``model.checkpoint`` in a recipe then names::

    python -m extpose_plugin_depth.start runs/hand-base/best/model.safetensors \\
        runs/depth-start/model.safetensors --modalities rgb skeleton depth
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_modality_encoders(source: str | Path, target: str | Path, modalities: list[str], *,
                          seed: int = 0) -> dict[str, Any]:
    """Write ``target`` (.safetensors + .json): ``source``'s weights and config with
    ``modalities``, the encoders of the new ones initialised with ``seed``. Returns the
    model's ``parameter_report()`` as ``{"shared": ..., "added": ...}``."""
    import torch

    import extpose_sdk
    from extpose_sdk.checkpoints import read_weights, save_extpose_checkpoint

    state_dict, config = read_weights(source)
    if "model" not in config:
        raise ValueError(f"{source}: no JSON config naming its model recipe beside it")
    torch.manual_seed(seed)
    model = extpose_sdk.load_model(config["model"], modalities=tuple(modalities),
                                   mask=config.get("mask"), **config.get("options", {}))
    own = model.state_dict()
    unexpected = sorted(set(state_dict) - set(own))
    if unexpected:
        raise ValueError(f"{source}: keys the new model lacks: {unexpected[:5]}")
    added = sorted(set(own) - set(state_dict))
    if any(not k.startswith("encoders.") for k in added):
        raise ValueError(f"{source}: lacks more than modality encoders: {added[:5]}")
    model.load_state_dict({**own, **state_dict})
    keep = {k: v for k, v in config.items() if k not in ("metrics", "step", "weights_sha256")}
    save_extpose_checkpoint(model, target, {**keep, "modalities": list(modalities),
                                            "started_from": str(source), "added_keys": added})
    report = model.parameter_report()
    return {"shared": report.shared, "added": report.added}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m extpose_plugin_depth.start",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="trained .safetensors (with its .json)")
    parser.add_argument("target", help="the .safetensors to write (its .json beside it)")
    parser.add_argument("--modalities", nargs="+", default=["rgb", "skeleton", "depth"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    Path(args.target).parent.mkdir(parents=True, exist_ok=True)
    report = add_modality_encoders(args.source, args.target, args.modalities, seed=args.seed)
    print(f"wrote {args.target}; parameters shared {report['shared']}, added {report['added']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
