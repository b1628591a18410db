"""Training recipes: a TOML file a person reads and edits, overridable with ``key=value``.

    recipe = load_recipe("training/synthetic-hand.toml", ["max_steps=20", "optim.lr=1e-4"])
    recipe.optim.max_steps   # 20

A recipe has the sections ``model``, ``data``, ``optim``, ``loss`` and ``train`` (see the attrs
classes below: every key, its default and its meaning). An override names a key as
``section.key=value`` or, when the key is unique across sections, as ``key=value``; the value is
read as TOML (``1e-4``, ``true``, ``[1, 2]``, ``"text"``) and else kept as a string. An unknown
key fails with the close matches. The resolved recipe is written beside every checkpoint
(``recipe.toml``), so a run can always be repeated.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

import attrs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SECTIONS = ("model", "data", "optim", "loss", "train")


@attrs.define
class ModelRecipe:
    """What is trained: a registered model recipe, its options, and where it starts from."""

    recipe: str = "extpose-hamer"  # registered model recipe (``extpose plugins``)
    checkpoint: str = ""  # official .ckpt or ExtPose .safetensors to start from ("": scratch)
    trust_checkpoint: bool = False  # allow a .ckpt that needs more than the restricted unpickler
    backbone_weights: str = ""  # pretrained backbone to start from, the head new (as the official
    # training starts from ViTPose's ViT): any weights file, its keys under backbone. or bare
    modalities: list[str] = attrs.field(factory=lambda: ["rgb", "skeleton"])
    mask: str = "paper"  # ExtendedViT attention mask
    frames: int = 1  # T: frames per training clip (1: single images)
    options: dict[str, Any] = attrs.field(factory=dict)  # backbone / head sizes (embed_dim...)
    body_model: str = "synthetic"  # SMPL / MANO file for the losses' joints; "synthetic"
    checkpointing: bool = False  # per-block gradient checkpointing (memory for compute)
    attention: str = "auto"  # auto, sdpa, xformers, reference
    init_decoder_xavier: bool = False  # official INIT_DECODER_XAVIER: gain 0.01 on the readouts
    mean_params_from_data: bool = True  # from scratch: the head's mean pose / shape / camera
    mean_params_samples: int = 512  # samples the mean parameters are computed from
    crop_rescale: float = 0.0  # box enlargement the pipeline crops this model with (0: the
    # subject's default, HaMeR's 2.0 / HMR2.0's 1.2); saved in model.json: 1.0 for the synthetic
    # sets, whose crops are the padded joint box as it is


@attrs.define
class DataRecipe:
    """Where the samples come from. ``train``: a list of ``{name, weight, split, options}``."""

    train: list[dict[str, Any]] = attrs.field(factory=lambda: [{"name": "synthetic-hand"}])
    val: dict[str, Any] = attrs.field(factory=dict)  # {name, split, options}; {}: none
    crop_size: int = 256  # side of the model's input crops (and of the cache)
    cache: str = ""  # folder for a uint8 cache of the training set ("": read live)
    val_cache: str = ""
    keypoint_noise: float = 0.0  # detector-like jitter (fraction of the box) on skeleton input
    workers: int = 0  # DataLoader worker processes per rank


@attrs.define
class OptimRecipe:
    """AdamW, its schedule, and the step arithmetic (global batch over ranks and accumulation)."""

    lr: float = 1e-5
    weight_decay: float = 1e-4
    betas: list[float] = attrs.field(factory=lambda: [0.9, 0.999])
    batch_size: int = 32  # global: samples per optimizer step, over all ranks together
    accumulate: int = 1  # micro-batches per optimizer step on each rank
    max_steps: int = 50_000
    warmup_steps: int = 0
    schedule: str = "constant"  # constant or cosine (after warm-up)
    min_lr_ratio: float = 0.1  # cosine floor
    grad_clip: float = 0.0  # max gradient norm (0: none)
    amp: str = "none"  # none, bf16, fp16 (fp16 uses a gradient scaler)


@attrs.define
class LossRecipe:
    """Weights of the loss terms (official values; 0 switches a term off)."""

    keypoints_3d: float = 0.05
    keypoints_2d: float = 0.01
    global_orient: float = 0.001
    pose: float = 0.001
    betas: float = 0.0005
    adversarial: float = 0.0005  # bodies only, with ``mocap``
    mocap: str = ""  # cmu_mocap.npz (body_pose (M, 72), betas (M, 10)); "": no prior
    temporal: float = 0.0  # ours: acceleration matching within clips


@attrs.define
class TrainRecipe:
    """The run: seeds, dropout, logging, evaluation and checkpoint cadence, fault policy."""

    seed: int = 0
    device: str = "auto"  # auto (cuda when available), cpu, cuda
    modality_dropout: float = 0.5  # drop each modality of a clip whole with this probability
    log_every: int = 10
    eval_every: int = 0  # steps between validations (0: only at the end, if a val set is set)
    save_every: int = 500
    keep_last: int = 3
    best_metric: str = "pa_mpjpe"  # lower is better
    on_nonfinite: str = "stop"  # stop, or skip (the step is dropped and counted)
    max_skipped: int = 10  # with skip: stop after this many skipped steps in a row
    plot: bool = True  # curves.png at the end (needs matplotlib)
    tensorboard: bool = True  # when tensorboard is installed


@attrs.define
class Recipe:
    name: str = "recipe"
    model: ModelRecipe = attrs.field(factory=ModelRecipe)
    data: DataRecipe = attrs.field(factory=DataRecipe)
    optim: OptimRecipe = attrs.field(factory=OptimRecipe)
    loss: LossRecipe = attrs.field(factory=LossRecipe)
    train: TrainRecipe = attrs.field(factory=TrainRecipe)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def to_toml(self) -> str:
        """The recipe as TOML (``load_recipe`` reads it back to an equal recipe)."""
        lines = [f"name = {_toml_value(self.name)}", ""]
        for section in SECTIONS:
            lines.append(f"[{section}]")
            for key, value in attrs.asdict(getattr(self, section)).items():
                lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


_CLASSES = {"model": ModelRecipe, "data": DataRecipe, "optim": OptimRecipe, "loss": LossRecipe,
            "train": TrainRecipe}


class RecipeError(ValueError):
    """A recipe file or override that does not fit the recipe's keys or types."""


def recipe_search_path() -> list[Path]:
    """Folders searched for a recipe given by name: ``./training`` then the checkout's."""
    here = Path(__file__).resolve().parents[2] / "training"
    return [Path.cwd() / "training", here]


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe file by path, or by name in ``recipe_search_path()`` (``synthetic-hand``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    names: set[str] = set()
    for folder in recipe_search_path():
        candidate = folder / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
        names.update(p.stem for p in folder.glob("*.toml"))
    close = difflib.get_close_matches(str(name_or_path), sorted(names), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise FileNotFoundError(
        f"no recipe file {str(name_or_path)!r} and no recipe of that name in "
        f"{', '.join(str(p) for p in recipe_search_path())} (available: "
        f"{', '.join(sorted(names)) or 'none'}){hint}")


def load_recipe(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe (path or name) and apply ``key=value`` overrides."""
    path = find_recipe(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"{path}: not valid TOML: {error}") from error
    data.setdefault("name", path.stem)
    return recipe_from_dict(data, overrides, source=str(path))


def recipe_from_dict(data: dict[str, Any], overrides=(), *, source: str = "recipe") -> Recipe:
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    unknown = [k for k in data if k not in (*SECTIONS, "name")]
    if unknown:
        raise RecipeError(f"{source}: unknown section(s) {unknown}; "
                          f"a recipe has name and [{'], ['.join(SECTIONS)}]")
    for item in overrides:
        section, key, value = _parse_override(item)
        data.setdefault(section, {})[key] = value
    sections = {}
    for section, cls in _CLASSES.items():
        values = data.get(section, {})
        if not isinstance(values, dict):
            raise RecipeError(f"{source}: [{section}] must be a table")
        fields = {f.name: f for f in attrs.fields(cls)}
        for key in values:
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise RecipeError(f"{source}: unknown key {section}.{key}{hint}")
        converted = {k: _coerce(f"{section}.{k}", v, _default(fields[k])) for k, v in values.items()}
        sections[section] = cls(**converted)
    return Recipe(name=str(data.get("name", "recipe")), **sections)


def recipe_changes(before: str, after: str) -> list[str]:
    """``section.key: old -> new`` for each value that differs between two recipes' TOML
    (a resumed run's checkpoint recipe and the recipe it resumes with)."""
    old, new = tomllib.loads(before), tomllib.loads(after)
    changes = [f"name: {old.get('name')!r} -> {new.get('name')!r}"] if (
        old.get("name") != new.get("name")) else []
    for section in SECTIONS:
        a, b = old.get(section, {}), new.get(section, {})
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                changes.append(f"{section}.{key}: {_toml_value(a[key]) if key in a else '(none)'}"
                               f" -> {_toml_value(b[key]) if key in b else '(none)'}")
    return changes


def _default(field: attrs.Attribute) -> Any:
    return field.default.factory() if isinstance(field.default, attrs.Factory) else field.default


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of ``default`` (ints widen to floats)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise RecipeError(f"{name} must be true or false; got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    if type(default) in (int, float, str, list, dict) and not isinstance(value, type(default)):
        raise RecipeError(f"{name} must be a {type(default).__name__}; got {value!r}")
    return value


def _parse_override(item: str) -> tuple[str, str, Any]:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"override {item!r} is not key=value (e.g. max_steps=100)")
    if "." in key:
        section, _, name = key.partition(".")
        if section not in _CLASSES:
            raise RecipeError(f"override {item!r}: unknown section {section!r}; "
                              f"available: {', '.join(SECTIONS)}")
    else:
        owners = [s for s, cls in _CLASSES.items() if key in attrs.fields_dict(cls)]
        if len(owners) != 1:
            every = sorted({k for cls in _CLASSES.values() for k in attrs.fields_dict(cls)})
            if owners:
                raise RecipeError(f"override {item!r}: {key} is in sections {owners}; "
                                  f"write it as {owners[0]}.{key}=...")
            close = difflib.get_close_matches(key, every, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise RecipeError(f"override {item!r}: no recipe key {key!r}{hint}")
        section, name = owners[0], key
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return section, name, value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise RecipeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)
