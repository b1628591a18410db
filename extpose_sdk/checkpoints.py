"""Reading official HMR2.0 / HaMeR Lightning checkpoints safely, and ExtPose's own checkpoints.

A user's checkpoint file is a security boundary: nothing here unpickles arbitrary objects.

- ``read_lightning_state_dict(path)`` first tries ``torch.load(weights_only=True)`` (tensors and
  plain containers only). The official files also hold ``hyper_parameters['cfg']``, a pickled
  OmegaConf config, which ``weights_only`` refuses; for those, the SDK's restricted unpickler
  (``extpose_sdk.safe_pickle``, policy ``CHECKPOINT``) rebuilds tensors and containers, turns
  the classes of known configuration libraries (``omegaconf``, ``typing``, ``pathlib``...) into
  inert stand-ins that run no code, and refuses any other class with an error naming it and how
  to opt in (``--trust-checkpoint`` / ``trust_checkpoint=True``).
- A ``.ckpt`` is a zip archive with a CRC-32 per record: it is checked before reading, so flipped
  bytes are an error, not silently wrong weights. Weights holding NaN or infinities are refused.
- ``load_official_checkpoint(model, path, extras=...)`` keeps the model's keys (``backbone.*``,
  ``smpl_head.*`` / ``mano_head.*``), skips the ``extras`` prefixes a recipe's plugin declares
  for its official checkpoint (HMR2.0: ``discriminator.*`` and the licensed ``smpl.*`` buffers)
  and bookkeeping keys, and fails naming missing / unexpected keys and shape mismatches.
- ExtPose checkpoints are a ``.safetensors`` file plus a ``.json`` config beside it
  (``save_extpose_checkpoint`` / ``read_extpose_checkpoint``). The JSON records the SHA-256 of
  the weights file (``weights_sha256``), checked on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import attrs
import torch

from extpose_sdk import safe_pickle
from extpose_sdk.safe_pickle import UnsafePickleError

#: Bookkeeping keys of a Lightning state dict (not weights).
SKIPPED_KEYS = ("initialized",)
TRUST_HINT = (
    "if you trust this file's origin, pass --trust-checkpoint (extpose predict / eval / convert "
    "checkpoint; Python: load_model(..., trust_checkpoint=True), read_checkpoint(path, "
    "trust=True)), which unpickles it in full"
)
#: The key of an ExtPose checkpoint's JSON that holds the SHA-256 of its weights file.
HASH_KEY = "weights_sha256"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model (the message names the keys)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holding a pickled object outside the allow-list."""


def read_checkpoint(path: str | Path, *, trust: bool = False) -> dict[str, Any]:
    """The whole checkpoint object (a dict), read without running code from the file.

    ``trust=True`` unpickles in full (only for files of trusted origin).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    check_zip_records(path)
    if trust:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # holds something beyond tensors and containers (the official OmegaConf cfg)
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read (corrupted or not a torch file): {error}") from error
    try:
        return torch.load(path, map_location="cpu", weights_only=False,
                          pickle_module=safe_pickle.pickle_module(safe_pickle.CHECKPOINT))
    except UnsafePickleError as error:
        raise UnsafeCheckpointError(
            f"{path}: checkpoint holds a pickled {error.qualified}, which the safe loader does "
            "not allow; " + TRUST_HINT) from None
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read (corrupted or not a torch file): {error}") from error


def check_zip_records(path: Path) -> None:
    """A torch / Lightning file is a zip archive with a CRC-32 per record: a record whose bytes
    changed (a bad download or copy, flipped bits) is a ``CheckpointError``. Legacy (non-zip)
    torch files carry no checksum and pass unchecked."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupted ({error}); download or copy it again") from None
    if bad is not None:
        raise CheckpointError(f"{path} is corrupted: record {bad} fails its checksum; download "
                              "or copy it again")  # fmt: skip


def check_finite(state_dict: dict[str, torch.Tensor], source: Any) -> None:
    """A ``CheckpointError`` when a floating-point tensor holds NaN or infinite values."""
    bad = [k for k, v in state_dict.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]  # fmt: skip
    if bad:
        raise CheckpointError(
            f"{source}: {len(bad)} tensors hold NaN or infinite values ({_few(bad, 3)}); the "
            "file is corrupted or its training diverged: use another checkpoint"
        )


def read_weights(path: str | Path, *, trust: bool = False
                 ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, config)`` of a weights file; the one place its format is chosen (by
    suffix): an ExtPose ``.safetensors`` (``read_extpose_checkpoint``: the config from its JSON,
    the hash checked) or a torch / Lightning file, ``.ckpt``, ``.pt``... (config ``{}``)."""
    if Path(path).suffix == ".safetensors":
        return read_extpose_checkpoint(path)
    return read_lightning_state_dict(path, trust=trust), {}


def read_lightning_state_dict(path: str | Path, *, trust: bool = False) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a Lightning ``.ckpt`` (or ``model`` of a training checkpoint, or a
    bare state dict), safely read."""
    checkpoint = read_checkpoint(path, trust=trust)
    for key in ("state_dict", "model"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict) or not all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()
    ):
        raise CheckpointError(f"{path} holds no state dict of tensors (Lightning 'state_dict')")
    check_finite(checkpoint, path)
    return dict(checkpoint)


@attrs.frozen
class LoadReport:
    """What loading a state dict did: keys it skipped on purpose, and none missing / unexpected."""

    loaded: tuple[str, ...]
    skipped: tuple[str, ...]


def select_official_keys(state_dict: dict[str, torch.Tensor],
                         extras: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    """``(kept, skipped)``: drop the keys under the ``extras`` prefixes (what an official
    checkpoint holds beyond the model: HMR2.0's ``discriminator.*``, licensed ``smpl.*``
    buffers; each plugin declares its own) and bookkeeping keys."""
    kept, skipped = {}, []
    extras = tuple(extras)
    for key, value in state_dict.items():
        if key.startswith(extras) or key in SKIPPED_KEYS:
            skipped.append(key)
        else:
            kept[key] = value
    return kept, skipped


def load_state_dict_checked(
    module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source="", *, assign: bool = False
) -> None:
    """``module.load_state_dict`` that fails naming missing / unexpected keys and shape mismatches.

    ``assign=True`` takes the given tensors as the module's (for a module built on ``meta``).
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_few(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_few(mismatched)}")
    if problems:
        where = f" from {source}" if source else ""
        raise CheckpointError(f"state dict{where} does not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(state_dict, strict=True, assign=assign)


def backbone_part(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone's tensors of a state dict: those under ``backbone.``, without the prefix (a
    whole model's file, or ViTPose's beside its keypoint head), or all of them when no key has
    the prefix (a backbone's own file)."""
    prefix = "backbone."
    if not any(k.startswith(prefix) for k in state_dict):
        return dict(state_dict)
    return {k.removeprefix(prefix): v for k, v in state_dict.items() if k.startswith(prefix)}


def load_backbone_weights(model: torch.nn.Module, path: str | Path, *, trust: bool = False) -> int:
    """Start ``model.backbone`` from a pretrained backbone (the official training starts HMR2.0's
    ViT from ViTPose's weights); the head keeps its own start. Any weights file ``read_weights``
    reads; fails naming missing / unexpected keys and shape mismatches. Returns the tensor count."""
    state_dict, _ = read_weights(path, trust=trust)
    backbone = backbone_part(state_dict)
    load_state_dict_checked(model.backbone, backbone, source=str(path))
    return len(backbone)


def load_official_checkpoint(module: torch.nn.Module, path, *, extras: tuple[str, ...] = (),
                             trust: bool = False) -> LoadReport:
    """Load an official Lightning ``.ckpt`` into ``module`` (keys ``backbone.*``, ``*_head.*``),
    skipping the ``extras`` prefixes (see ``select_official_keys``)."""
    kept, skipped = select_official_keys(read_lightning_state_dict(path, trust=trust), extras)
    load_state_dict_checked(module, kept, source=str(path))
    return LoadReport(loaded=tuple(kept), skipped=tuple(skipped))


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_weights(tensors: dict[str, torch.Tensor], path: Path, config: dict[str, Any]) -> Path:
    """``path`` (.safetensors) and its ``.json`` (``config`` plus the weights' SHA-256), each
    written under a temporary name and renamed into place."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    config_path = path.with_suffix(".json")
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial_config = config_path.with_name(f".{config_path.name}.{os.getpid()}.partial")
    try:
        save_file(tensors, str(partial))
        config = {**config, HASH_KEY: file_sha256(partial)}
        partial_config.write_text(json.dumps(config, indent=2, sort_keys=True))
        os.replace(partial, path)
        os.replace(partial_config, config_path)
    finally:
        partial.unlink(missing_ok=True)
        partial_config.unlink(missing_ok=True)
    return config_path


def save_extpose_checkpoint(module: torch.nn.Module, path, config: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``path`` (.safetensors weights) and ``path`` with ``.json`` (the recipe config and
    the weights' SHA-256, ``weights_sha256``, checked when the checkpoint is read)."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    return path, _write_weights(tensors, path, config)


def read_extpose_checkpoint(path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, config)`` of an ExtPose checkpoint (the JSON config may be absent: ``{}``).

    When the JSON records the weights' SHA-256, the file must match it; NaN or infinite weights
    are refused either way (``CheckpointError``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    config_path = path.with_suffix(".json")
    config = _read_config(path)
    expected = config.pop(HASH_KEY, None) if isinstance(config, dict) else None
    if expected is not None and file_sha256(path) != expected:
        raise CheckpointError(
            f"{path} does not match the SHA-256 recorded in {config_path.name}: the weights are "
            "corrupted or were changed; copy or convert the checkpoint again"
        )
    try:
        state_dict = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file: {error}") from error
    check_finite(state_dict, path)
    return state_dict, config


@attrs.frozen
class ResolvedWeights:
    """A checkpoint argument resolved: the file to read (``None``: random weights), the recipe it
    is for (``None``: the caller's choice), and how results name it (``""`` when random)."""

    path: str | Path | None
    model: str | None
    label: str
    subject: str | None = None


def resolve_weights(checkpoint: str | Path | None, model: str | None = None) -> ResolvedWeights:
    """A path stays a path, with the recipe ``extpose train`` recorded beside it; the name of
    registered weights (``extpose-hamer-synthetic``; ``extpose plugins`` lists them) becomes the
    file its package ships and the recipe it was trained with. ``model``, when given, wins. A
    name that is neither an existing file nor registered fails with the registered names and
    close matches."""
    if checkpoint is None or checkpoint == "":
        return ResolvedWeights(None, model, "")
    text = str(checkpoint)
    looks_like_name = not Path(text).suffix and "/" not in text and os.sep not in text
    if Path(text).exists() or not looks_like_name:
        recorded = checkpoint_config(checkpoint).get("model")
        return ResolvedWeights(checkpoint, model or recorded, text)
    from extpose_sdk.plugins import get_registries

    registry = get_registries().weights
    component, _ = registry.resolve(text)  # unknown: the registered names and close matches
    path = Path(component.build())
    if not path.is_file():
        raise CheckpointError(f"weights {text!r} ({component.package}) should ship {path}, "
                              f"which is missing; reinstall {component.package or 'its package'}")
    return ResolvedWeights(path, model or component.metadata.get("model"), text,
                           component.metadata.get("subject"))


def checkpoint_config(path: str | Path | None) -> dict[str, Any]:
    """The config saved beside an ExtPose ``.safetensors`` (its ``.json``, without the hash);
    ``{}`` for other files, or none."""
    if path is None or Path(path).suffix != ".safetensors":
        return {}
    config = _read_config(Path(path))
    config.pop(HASH_KEY, None)
    return config


def _read_config(path: Path) -> dict[str, Any]:
    config_path = path.with_suffix(".json")
    try:
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{config_path} (the config of {path.name}) is not valid JSON "
                              f"({error}); restore it or re-convert the checkpoint") from None  # fmt: skip
    return config if isinstance(config, dict) else {}


def convert_checkpoint(source, target, *, extras: tuple[str, ...] = (), trust: bool = False,
                       config: dict | None = None) -> Path:
    """Official ``.ckpt`` (or an ExtPose ``.safetensors``) -> ExtPose ``.safetensors`` (+ ``.json``)
    without the ``extras`` prefixes (``official_extras()``: what the installed recipes declare).
    A ``.safetensors`` source's config is carried over; ``config`` entries are added. The
    target's folder is created; the source is never overwritten."""
    source, target = Path(source), Path(target)
    if target.suffix != ".safetensors":
        raise CheckpointError(f"the converted checkpoint is a .safetensors file; got {target}")
    if not source.is_file():
        raise FileNotFoundError(f"checkpoint {source} not found")
    json_target = target.with_suffix(".json")
    for written in (target, json_target):
        if written.exists() and written.resolve() == source.resolve():
            raise CheckpointError(f"{written} is the source {source}: converting onto it would "
                                  "destroy it; give another target")  # fmt: skip
    state_dict, carried = read_weights(source, trust=trust)
    state_dict = select_official_keys(state_dict, extras)[0]
    tensors = {k: v.contiguous() for k, v in state_dict.items()}
    _write_weights(tensors, target, {**carried, "source": source.name, **(config or {})})
    return target


def official_extras() -> tuple[str, ...]:
    """The official-checkpoint extras every registered model recipe declares
    (``register(..., checkpoint_extras=("discriminator.", "smpl."))``), together."""
    from extpose_sdk.plugins import get_registries

    declared = (c.metadata.get("checkpoint_extras", ()) for c in get_registries().model)
    return tuple(sorted({prefix for extras in declared for prefix in extras}))


def _few(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


