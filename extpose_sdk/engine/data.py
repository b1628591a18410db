"""Training data: registered data sets mixed by weight, modality images, a resumable order.

The engine sees one global stream of sample indices, a pure function of ``(seed, position)``:
data set ``d`` is drawn with probability ``weight_d``, then a uniform item of it (with
replacement, as official training resamples its shards). Optimizer step ``s`` consumes stream
positions ``[s * B, (s + 1) * B)`` for the global batch ``B``; rank ``r`` of ``W`` takes the
``r``-th contiguous share, and each DataLoader worker builds whole batches of it. So a run is
the same whatever the number of processes and workers, and resuming at step ``s`` needs only
``s``.

Streamed data sets (``torch.utils.data.IterableDataset``: the official WebDataset shards,
``tar-shards``) have no index. A recipe with one of them reads ``MixedStream`` instead: each
rank and DataLoader worker draws the set of every sample by weight from its own seeded generator
(as the official ``wds.RandomMix``) and takes the next sample of that stream; the shards split
themselves over ranks and workers. Resuming then restarts the streams with a new seed for the
step it resumes at: the order is not the uninterrupted one (the official loader is resampled and
shuffled anyway), the rest of the state (weights, optimizer, schedule, RNG) is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def with_modalities(sample: dict[str, Any], modalities: Sequence[str], *, size: int | None = None,
                    keypoint_noise: float = 0.0, rng: np.random.Generator | None = None
                    ) -> dict[str, Any]:
    """``sample`` (a frame or a clip) with every modality image present and ``has_<modality>``.

    Missing modalities are rendered from ``detected_keypoints_2d`` (see
    ``extpose_sdk.data.inputs``). ``keypoint_noise`` jitters those keypoints first by that
    fraction of the box side (a detector's error) with ``rng``; then every modality but ``rgb``
    is drawn anew, also where the sample (a cache) already holds one, so the noise is fresh at
    every read.
    """
    from extpose_sdk.data.inputs import model_inputs

    redraw = [m for m in modalities if m != "rgb"] if keypoint_noise > 0 else []
    missing = [m for m in modalities if m not in sample or m in redraw]
    if not missing and all(f"has_{m}" in sample for m in modalities):
        return sample
    sample = {k: v for k, v in sample.items() if k not in redraw}
    if keypoint_noise > 0 and "detected_keypoints_2d" in sample:
        sample["detected_keypoints_2d"] = _jitter(sample["detected_keypoints_2d"],
                                                  sample.get("box"), keypoint_noise,
                                                  rng or np.random.default_rng())
    if size is None:
        size = int(sample["rgb"].shape[-1]) if "rgb" in sample else 256
    batch = {k: [v] if isinstance(v, str) else v[None] if torch.is_tensor(v) else v
             for k, v in sample.items()}
    inputs, present = model_inputs(batch, list(modalities), size=size)
    for name in modalities:
        sample[name] = inputs[name][0]
        sample[f"has_{name}"] = present[name][0]
    return sample


def _jitter(points: torch.Tensor, box: torch.Tensor | None, fraction: float,
            rng: np.random.Generator) -> torch.Tensor:
    side = points.new_tensor(1.0)
    if box is not None:
        side = torch.maximum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])[..., None, None]
    noise = torch.from_numpy(rng.normal(0.0, fraction, (*points.shape[:-1], 2))).to(points)
    out = points.clone()
    out[..., :2] = points[..., :2] + noise * side
    return out


class WithModalities(torch.utils.data.Dataset):
    """A data set whose samples carry every modality image (``with_modalities``)."""

    def __init__(self, dataset, *, modalities: Sequence[str], size: int,
                 keypoint_noise: float = 0.0, seed: int = 0) -> None:
        self.dataset = dataset
        self.name = getattr(dataset, "name", type(dataset).__name__)
        self.modalities = tuple(modalities)
        self.size = size
        self.keypoint_noise = keypoint_noise
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, item, 7]) if self.keypoint_noise else None
        return with_modalities(self.dataset[item], self.modalities, size=self.size,
                               keypoint_noise=self.keypoint_noise, rng=rng)


class StreamWithModalities(torch.utils.data.IterableDataset):
    """A streamed data set whose samples carry every modality image."""

    def __init__(self, dataset, *, modalities: Sequence[str], size: int,
                 keypoint_noise: float = 0.0, seed: int = 0) -> None:
        self.dataset = dataset
        self.name = getattr(dataset, "name", type(dataset).__name__)
        self.modalities, self.size = tuple(modalities), size
        self.keypoint_noise, self.seed = keypoint_noise, seed

    def __iter__(self):
        rng = np.random.default_rng([self.seed, 7, _worker_id()])
        for sample in self.dataset:
            yield with_modalities(sample, self.modalities, size=self.size,
                                  keypoint_noise=self.keypoint_noise, rng=rng)


def _worker_id() -> int:
    info = torch.utils.data.get_worker_info()
    return 0 if info is None else info.id


def is_stream(dataset) -> bool:
    return isinstance(dataset, torch.utils.data.IterableDataset)


class MixedStream(torch.utils.data.IterableDataset):
    """Endless collated micro-batches of ``micro`` samples mixed by weight (streamed sets)."""

    def __init__(self, datasets: Sequence[Any], weights: Sequence[float], *, micro: int,
                 seed: int, rank: int, first_step: int) -> None:
        self.datasets, self.micro = list(datasets), micro
        weights = np.asarray(weights, dtype=np.float64)
        self.probabilities = weights / weights.sum()
        self.seed, self.rank, self.first_step = seed, rank, first_step

    def __iter__(self):
        from extpose_sdk.data.sample import collate

        rng = np.random.default_rng([self.seed, self.rank, self.first_step, _worker_id()])
        streams = [iter(d) if is_stream(d) else None for d in self.datasets]
        while True:
            batch = []
            for _ in range(self.micro):
                which = int(rng.choice(len(self.datasets), p=self.probabilities))
                dataset = self.datasets[which]
                if streams[which] is None:
                    batch.append(dataset[int(rng.integers(len(dataset)))])
                    continue
                try:
                    batch.append(next(streams[which]))
                except StopIteration:  # a finite stream starts again
                    streams[which] = iter(dataset)
                    batch.append(next(streams[which]))
            yield collate(batch)


class TrainingSet(torch.utils.data.Dataset):
    """Several data sets behind one index ``(set, item)``."""

    def __init__(self, datasets: Sequence[Any]) -> None:
        self.datasets = list(datasets)

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def __getitem__(self, index: tuple[int, int]) -> dict[str, Any]:
        which, item = index
        return self.datasets[which][item]


def stream_indices(weights: Sequence[float], lengths: Sequence[int], seed: int,
                   start: int, count: int) -> list[tuple[int, int]]:
    """Positions ``[start, start + count)`` of the global stream: ``(set, item)`` pairs."""
    weights = np.asarray(weights, dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"data-set weights must be >= 0 with a positive sum; got {list(weights)}")
    probabilities = weights / weights.sum()
    out = []
    for position in range(start, start + count):
        rng = np.random.default_rng([seed, position])
        which = int(rng.choice(len(lengths), p=probabilities)) if len(lengths) > 1 else 0
        out.append((which, int(rng.integers(lengths[which]))))
    return out


class StepBatches(torch.utils.data.Sampler):
    """Batch sampler: for steps ``first_step...``, this rank's ``accumulate`` micro-batches.

    Endless (the loop stops it); ``first_step`` is where a resumed run starts.
    """

    def __init__(self, weights: Sequence[float], lengths: Sequence[int], *, batch_size: int,
                 rank: int, world_size: int, accumulate: int = 1, seed: int = 0,
                 first_step: int = 0) -> None:
        if batch_size % (world_size * accumulate):
            raise ValueError(f"batch_size {batch_size} must divide by processes x accumulate "
                             f"({world_size} x {accumulate})")
        self.weights, self.lengths = list(weights), list(lengths)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.accumulate, self.seed, self.first_step = accumulate, seed, first_step
        self.micro = batch_size // (world_size * accumulate)

    def __iter__(self):
        step = self.first_step
        share = self.batch_size // self.world_size
        while True:
            start = step * self.batch_size + self.rank * share
            for m in range(self.accumulate):
                yield stream_indices(self.weights, self.lengths, self.seed,
                                     start + m * self.micro, self.micro)
            step += 1


def build_training_set(recipe, *, progress: bool = True) -> tuple[TrainingSet, list[float]]:
    """The recipe's training data sets (cached when ``data.cache`` is set) and their weights."""
    datasets, weights = [], []
    for i, entry in enumerate(recipe.data.train):
        dataset = _dataset(entry, recipe, split_default="train",
                           cache=_cache_folder(recipe.data.cache, i, len(recipe.data.train)),
                           cache_key="data.cache", progress=progress)
        if not is_stream(dataset) and len(dataset) == 0:
            frames = recipe.model.frames
            raise ValueError(
                f"data.train entry {entry.get('name')!r} gives no training "
                f"{f'clips of {frames} frames' if frames > 1 else 'frames'}: training drops clips "
                "that a sequence cannot fill, so its sequences must be at least as long as "
                f"model.frames (the synthetic sets: options.sequence_length >= {frames})")
        wrap = StreamWithModalities if is_stream(dataset) else WithModalities
        datasets.append(wrap(dataset, modalities=recipe.model.modalities,
                             size=recipe.data.crop_size, keypoint_noise=recipe.data.keypoint_noise,
                             seed=recipe.train.seed + i))
        weights.append(float(entry.get("weight", 1.0)))
    return TrainingSet(datasets), weights


def build_validation_set(recipe, *, progress: bool = True):
    """The recipe's validation data set (or ``None``), with its modality images."""
    entry = recipe.data.val
    if not entry:
        return None
    dataset = _dataset(entry, recipe, split_default="test", cache=recipe.data.val_cache or None,
                       cache_key="data.val_cache", progress=progress)
    return WithModalities(dataset, modalities=recipe.model.modalities, size=recipe.data.crop_size)


def _cache_folder(cache: str, i: int, count: int) -> str | None:
    if not cache:
        return None
    return cache if count == 1 else f"{cache}/{i}"


def _dataset(entry: Mapping[str, Any], recipe, *, split_default: str, cache: str | None,
             cache_key: str, progress: bool):
    """One registered data set of a recipe entry ``{name, split, options}``, maybe cached in
    ``cache`` (the recipe's ``cache_key``, which an error names)."""
    import extpose_sdk
    from extpose_sdk.datasets.cache import CachedDataset, add_modalities, build_cache, read_manifest

    unknown = set(entry) - {"name", "weight", "split", "options"}
    if unknown or "name" not in entry:
        raise ValueError(f"data entry {dict(entry)}: needs name, may have weight, split, "
                         f"options; unknown: {sorted(unknown)}")
    frames = recipe.model.frames
    options = dict(entry.get("options", {}))
    options.setdefault("split", entry.get("split", split_default))
    clip_length = options.pop("clip_length", None) or (frames if frames > 1 else None)
    if cache is not None and clip_length is None:
        clip_length = options.pop("cache_clip_length", None)
    options.pop("cache_clip_length", None)
    if clip_length:
        options["clip_length"] = clip_length
    registry = extpose_sdk.get_registries().dataset
    if cache is None:
        return registry.build(entry["name"], **options)
    if "root" not in options and entry["name"] == "tar-shards":
        raise ValueError("data.cache caches indexable data sets; stream tar-shards without it")
    describe = {"name": entry["name"], "options": options}
    version = registry.get(entry["name"]).metadata.get("data_version")
    if version is not None:  # a cache of older data is refused (hookspecs: data_version)
        describe["version"] = version
    manifest = read_manifest(cache)
    if manifest is None or manifest["done"] < manifest["count"]:
        dataset = registry.build(entry["name"], **options)
        build_cache(dataset, cache, modalities=recipe.model.modalities,
                    size=recipe.data.crop_size, describe=describe, progress=progress)
    elif manifest.get("describe") != describe:
        raise FileExistsError(f"{cache} holds a cache of {manifest.get('describe')}, not of "
                              f"{describe}; set {cache_key} to another folder")
    else:  # a cache written for other modalities (an RGB base): add the missing images once
        add_modalities(cache, recipe.model.modalities, progress=progress)
    return CachedDataset(cache, frames=frames if frames == 1 else None)
