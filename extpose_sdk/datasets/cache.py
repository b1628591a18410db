"""A data set written once to disk as uint8 crops plus arrays, read back at memory speed.

Rendering synthetic frames (or decoding and cropping real ones) costs more per sample than a
small model's training step, so a training run reads a cache instead::

    from extpose_sdk.datasets.cache import build_cache, CachedDataset
    build_cache(dataset, "cache/synthetic-hand", modalities=("rgb", "skeleton"), size=128)
    frames = CachedDataset("cache/synthetic-hand")            # what was cached: frames or clips
    frames = CachedDataset("cache/synthetic-hand", frames=1)  # single frames of cached clips

Layout: ``manifest.json`` (count, keys, shapes, dtypes, what was cached) and one ``KEY.npy`` per
tensor key, ``(N, ...)``. Image keys (a modality: ``(.., C, size, size)``) are stored as uint8
in 0..255 and normalised again on read (ImageNet statistics, as ``crops.normalize``); other
tensors as float32 / bool / int64; string keys in ``strings.json``. Writing is resumable: the
manifest records how many items are done, and a second ``build_cache`` continues from there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from extpose_sdk.modalities import IMAGENET_MEAN, IMAGENET_STD

MANIFEST = "manifest.json"
VERSION = 1


def _image_key(value: torch.Tensor, size: int) -> bool:
    return value.dim() >= 3 and tuple(value.shape[-2:]) == (size, size) and value.shape[-3] <= 4


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """ImageNet-normalised ``(.., C, H, W)`` -> uint8 0..255 (channel statistics as normalised):
    how the cache stores images."""
    c = x.shape[-3]
    shape = (c, 1, 1)
    image = x.float().numpy() * IMAGENET_STD[:c].reshape(shape) + IMAGENET_MEAN[:c].reshape(shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def from_uint8(x: np.ndarray) -> torch.Tensor:
    """uint8 ``(.., C, H, W)`` -> ImageNet-normalised float32: what ``to_uint8`` stored, as the
    model takes it."""
    c = x.shape[-3]
    shape = (c, 1, 1)
    image = (x.astype(np.float32) - IMAGENET_MEAN[:c].reshape(shape)) / IMAGENET_STD[:c].reshape(shape)
    return torch.from_numpy(image)


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, path)


def build_cache(dataset, folder: str | Path, *, modalities: Sequence[str] = ("rgb",),
                size: int | None = None, describe: dict[str, Any] | None = None,
                progress: bool = True, flush_every: int = 256) -> Path:
    """Write every item of ``dataset`` (samples or clips) to ``folder``; resumable.

    Modalities the samples lack (``skeleton``) are rendered from their detected keypoints at
    ``size`` (default: the samples' ``rgb`` side). ``describe`` (what the data set is: name,
    options) is stored in the manifest; a folder holding a cache of something else is an error,
    never overwritten.
    """
    from extpose_sdk.engine.data import with_modalities

    folder = Path(folder)
    describe = dict(describe or {})
    manifest = read_manifest(folder)
    total = len(dataset)
    if manifest is not None:
        if manifest.get("describe") != describe or manifest.get("count") != total:
            raise FileExistsError(
                f"{folder} holds a cache of {manifest.get('describe')} ({manifest.get('count')} "
                f"items), not of {describe} ({total} items); choose another folder or delete it")
        if manifest["done"] >= total:
            return folder
    folder.mkdir(parents=True, exist_ok=True)
    first = with_modalities(dataset[0], modalities, size=size)
    if size is None:
        size = int(first["rgb"].shape[-1]) if "rgb" in first else None
    if manifest is None:
        keys = {}
        for key, value in first.items():
            if torch.is_tensor(value):
                image = size is not None and _image_key(value, size)
                dtype = "uint8" if image else {torch.bool: "bool", torch.int64: "int64"}.get(
                    value.dtype, "float32")
                keys[key] = {"shape": list(value.shape), "dtype": dtype, "image": image}
        strings = sorted(k for k, v in first.items() if isinstance(v, str))
        manifest = {"version": VERSION, "count": total, "done": 0, "keys": keys,
                    "strings": strings, "describe": describe, "size": size,
                    "modalities": list(modalities)}
        for key, spec in keys.items():
            np.lib.format.open_memmap(folder / f"{key}.npy", mode="w+", dtype=spec["dtype"],
                                      shape=(total, *spec["shape"]))
        _write_json(folder / "strings.json", {k: [] for k in strings})
        _write_json(folder / MANIFEST, manifest)
    arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r+") for k in manifest["keys"]}
    strings = json.loads((folder / "strings.json").read_text())
    start = int(manifest["done"])
    for key in strings:
        strings[key] = strings[key][:start]
    indices = range(start, total)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"caching {describe.get('name', 'data')}", unit="item",
                       initial=start, total=total)
    for i in indices:
        sample = with_modalities(dataset[i], modalities, size=size)
        for key, spec in manifest["keys"].items():
            if key not in sample:
                raise ValueError(f"item {i} lacks {key!r}, which item 0 has; a cache needs "
                                 "every item to have the same keys")
            value = sample[key]
            if tuple(value.shape) != tuple(spec["shape"]):
                raise ValueError(f"item {i}: {key!r} has shape {tuple(value.shape)}, item 0 "
                                 f"{tuple(spec['shape'])}")
            arrays[key][i] = to_uint8(value) if spec["image"] else value.numpy()
        for key in strings:
            strings[key].append(sample[key])
        if (i + 1) % flush_every == 0 or i + 1 == total:
            for array in arrays.values():
                array.flush()
            _write_json(folder / "strings.json", strings)
            manifest["done"] = i + 1
            _write_json(folder / MANIFEST, manifest)
    return folder


def add_modalities(folder: str | Path, modalities: Sequence[str], *, progress: bool = True
                   ) -> list[str]:
    """Render ``modalities`` a complete cache lacks (a skeleton for an RGB-only cache) from its
    cached keypoints, and add them; returns the names added. A partial write is redone."""
    from extpose_sdk.engine.data import with_modalities

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None or manifest["done"] < manifest["count"]:
        raise ValueError(f"{folder}: only a complete cache can be extended")
    missing = [m for m in modalities if m not in manifest["keys"]]
    if not missing:
        return []
    items = CachedDataset(folder)
    size = manifest["size"]
    first = with_modalities(items[0], missing, size=size)
    arrays = {}
    for name in missing:
        for key, value in ((name, first[name]), (f"has_{name}", first[f"has_{name}"])):
            if key in manifest["keys"]:
                continue
            image = key == name
            manifest["keys"][key] = {"shape": list(value.shape), "image": image,
                                     "dtype": "uint8" if image else "bool"}
            arrays[key] = np.lib.format.open_memmap(
                folder / f".{key}.partial.npy", mode="w+", dtype=manifest["keys"][key]["dtype"],
                shape=(manifest["count"], *value.shape))
    indices = range(manifest["count"])
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"adding {', '.join(missing)} to {folder.name}", unit="item")
    for i in indices:
        sample = with_modalities(items[i], missing, size=size)
        for key, array in arrays.items():
            array[i] = to_uint8(sample[key]) if manifest["keys"][key]["image"] \
                else sample[key].numpy()
    for key, array in arrays.items():
        array.flush()
        os.replace(folder / f".{key}.partial.npy", folder / f"{key}.npy")
    manifest["modalities"] = sorted({*manifest.get("modalities", []), *missing})
    _write_json(folder / MANIFEST, manifest)
    return missing


class CachedDataset(torch.utils.data.Dataset):
    """The items of a cache folder (``build_cache``), as the sample layout.

    ``frames=1`` turns a cache of clips into single frames (padded frames left out); ``frames``
    equal to the cached clip length (or ``None``) gives the items as cached.
    """

    def __init__(self, folder: str | Path, *, frames: int | None = None) -> None:
        self.folder = Path(folder)
        manifest = read_manifest(self.folder)
        if manifest is None:
            raise FileNotFoundError(f"{self.folder} is not a cache folder (no {MANIFEST}); "
                                    "write one with build_cache or a recipe's data.cache")
        if manifest["done"] < manifest["count"]:
            raise ValueError(f"cache {self.folder} is incomplete ({manifest['done']} of "
                             f"{manifest['count']} items); run build_cache again to finish it")
        self.manifest = manifest
        self.name = manifest.get("describe", {}).get("name", self.folder.name)
        self._arrays: dict[str, np.ndarray] | None = None
        self.strings = json.loads((self.folder / "strings.json").read_text())
        clips = "valid" in manifest["keys"]
        self.cached_length = int(manifest["keys"]["valid"]["shape"][0]) if clips else None
        if frames is not None and frames != 1 and frames != self.cached_length:
            raise ValueError(f"cache {self.folder} holds "
                             f"{'clips of ' + str(self.cached_length) if clips else 'frames'}; "
                             f"frames={frames} needs a cache of clips of that length")
        self.index: np.ndarray | None = None
        if clips and frames == 1:
            self.index = np.argwhere(np.asarray(self.arrays["valid"]))  # (item, t) pairs

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The memory-mapped arrays, opened in each process that reads (a DataLoader worker
        gets the folder, not a pickled copy of the data)."""
        if self._arrays is None:
            self._arrays = {k: np.load(self.folder / f"{k}.npy", mmap_mode="r")
                            for k in self.manifest["keys"]}
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else int(self.manifest["count"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.name}: index {i} out of range for {len(self)} items")
        i %= len(self)
        item, t = (int(self.index[i][0]), int(self.index[i][1])) if self.index is not None \
            else (i, None)
        sample: dict[str, Any] = {}
        for key, spec in self.manifest["keys"].items():
            if t is not None and key == "valid":
                continue
            value = self.arrays[key][item] if t is None else self.arrays[key][item, t]
            sample[key] = from_uint8(value) if spec["image"] else torch.from_numpy(np.array(value))
        for key, values in self.strings.items():
            sample[key] = values[item]
        return sample
