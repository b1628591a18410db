"""The official HMR2.0 / HaMeR training data (WebDataset tar shards) in the SDK's sample layout.

The layout (``hmr2_training_data/dataset_tars/<name>/{000000..NNNNNN}.tar``; HaMeR's hand data
is the same)::

    <key>.jpg | .jpeg | .png   the full image
    <key>.data.pyd             a pickle of a LIST of per-person dicts, one image may hold several
                               people: keypoints_2d (N, 3) full-image px + confidence,
                               keypoints_3d (N, 4) + confidence, center (2,), scale (2,) (box
                               size / 200), body_pose (72,) / hand_pose (48,) axis-angle with the
                               global orient first, betas (10,), has_body_pose / has_hand_pose,
                               has_betas (0/1), extra_info (dict); hands also right (1.0 / 0.0)
    N = 44 for bodies (OpenPose 25 + 19 extra, joint set ``smpl44``), 21 for hands (``mano21``)

``TarShards`` reads the shards with ``webdataset`` (split by node and by DataLoader worker, a
shard shuffle, a shuffle buffer of tar samples), splits each image into its people, drops people
with too few confident keypoints, and crops and augments each person with
``extpose_sdk.data.augment`` (one ``sample_params`` draw per person)::

    from extpose_sdk.datasets.tars import TarShards
    data = TarShards(urls="dataset_tars/coco-train-2014-pruned/{000000..000017}.tar")
    hands = TarShards("dataset_tars/freihand-train", kind="hand", resampled=True)
    sample = next(iter(data))      # rgb (3, 256, 256), keypoints_2d (44, 3) crop-normalised...

Each sample also carries ``detected_keypoints_2d``: the ground-truth full-image 2D keypoints in a
detector layout (the first 25 body joints as ``openpose_body25``, the hand's 21 as
``openpose_hand21``), so the skeleton modality can be drawn from them.

Left hands (HaMeR's convention): the model only sees right hands, so a hand with ``right == 0``
is always mirrored (the flip is forced on whatever the augmentation drew; a drawn flip does not
mirror it back). ``augment`` mirrors the image, the 2D / 3D keypoints (x negated) and the MANO
pose (y, z negated) together, and the sample's ``is_right`` is the side the crop shows: 1.0. A
missing ``right`` is a right hand. (A right hand that the augmentation flips shows a left hand
and gets ``is_right`` 0.0, as in ``extpose_sdk.datasets.synthetic``.)

Security boundary: ``.data.pyd`` comes from downloaded files and is untrusted. It is read with
the SDK's restricted unpickler (``extpose_sdk.safe_pickle``, policy ``SAMPLE``), which rebuilds
only numpy arrays, dtypes and scalars, dicts, lists, tuples, sets and builtin scalars; any other global (``os.system``, ``builtins.eval``, ``subprocess``...)
is refused before anything is called, with an ``UnsafeSampleError`` naming the shard and the
key. Pickles over ``MAX_PICKLE_BYTES`` are refused unread. Images are decoded by OpenCV only.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from extpose_sdk import safe_pickle
from extpose_sdk.data.augment import AugmentConfig, AugmentParams, augment, sample_params
from extpose_sdk.data.sample import CROP_SIZE
from extpose_sdk.datasets.files import DatasetFileError
from extpose_sdk.subjects import SUBJECTS

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")
#: Largest ``.data.pyd`` read (bytes); larger ones are refused without unpickling.
MAX_PICKLE_BYTES = safe_pickle.MAX_SAMPLE_BYTES


class TarShardError(ValueError):
    """A tar sample that cannot be read; the message names the shard and the key."""


class UnsafeSampleError(TarShardError):
    """A ``.data.pyd`` that names a global the restricted unpickler does not allow."""


# -- the people of one sample ------------------------------------------------------------------

def load_people(data: bytes, shard: str, key: str) -> list[dict[str, Any]]:
    """The per-person dicts of one ``.data.pyd``, read with the restricted unpickler.

    Raises ``UnsafeSampleError`` for a disallowed global and ``TarShardError`` for an oversized,
    malformed or wrongly shaped pickle (a list of dicts; a single dict is one person).
    """
    where = f"{shard}: sample {key!r}: {key}.data.pyd"
    try:
        people = safe_pickle.load(data, safe_pickle.SAMPLE, max_bytes=MAX_PICKLE_BYTES)
    except safe_pickle.UnsafePickleError as error:
        if error.qualified == safe_pickle.SAMPLE.name:  # over the size limit
            raise TarShardError(f"{where} is {error.why}") from None
        raise UnsafeSampleError(
            f"{where} holds a pickled {error.qualified}, which is not allowed (only numpy "
            "arrays, numbers, strings, lists, tuples and dicts); it was not loaded") from None
    except Exception as error:  # a truncated or malformed pickle
        raise TarShardError(f"{where} is not a readable pickle: {type(error).__name__}: "
                            f"{error}") from error
    if isinstance(people, dict):
        people = [people]
    if not isinstance(people, (list, tuple)) or not all(isinstance(p, dict) for p in people):
        held = type(people).__name__
        if isinstance(people, (list, tuple)):
            held += " of " + ", ".join(sorted({type(p).__name__ for p in people}))
        raise TarShardError(f"{where} holds a {held}, expected a list of per-person dicts")
    return list(people)


# -- shard lists -------------------------------------------------------------------------------

def expand_urls(urls: str | Sequence[str]) -> list[str]:
    """Shard paths of a brace pattern (``NAME/{000000..000009}.tar``) or a list of them."""
    import braceexpand

    patterns = [urls] if isinstance(urls, (str, Path)) else list(urls)
    return [u for pattern in patterns for u in braceexpand.braceexpand(str(pattern))]


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def split_by_rank(src, rank: int, world_size: int):
    """The shards of ``rank`` out of ``world_size`` (every ``world_size``-th from ``rank``)."""
    yield from islice(src, rank, None, world_size)


def _seed(*parts: Any) -> int:
    return zlib.crc32(repr(parts).encode())


def _flag(value: Any) -> bool:
    return bool(np.asarray(value, dtype=np.float64).reshape(-1)[0] > 0)


class TarShards(torch.utils.data.IterableDataset):
    """People of the official HMR2.0 / HaMeR tar shards as samples of the SDK layout.

    Args:
        root: a folder holding the ``*.tar`` shards (or ``root/<split>/*.tar``).
        split: ``train`` augments by default; names a subfolder of ``root`` when there is one.
        urls: instead of ``root``: a brace pattern or a list of shard paths (or URLs).
        kind: the subject (``extpose_sdk.subjects``): ``body`` (44 joints, SMPL ``body_pose``)
            or ``hand`` (21 joints, MANO); its spec gives the joint set, the pose entry, the
            layout of ``detected_keypoints_2d`` (the joint set's first joints) and whether left
            hands are mirrored.
        crop_size: side of the crop (256 for HMR2.0 / HaMeR).
        augment: an ``AugmentConfig``, True (the official strengths), a dict of changes to them,
            or False; None: on for ``train``.
        shuffle: buffer of tar samples (images) shuffled before splitting into people; 0: off
            (also turns the shard shuffle off).
        seed: seeds the shuffles and every augmentation draw.
        resampled: draw shards with replacement, endlessly (official training; the order then
            is not reproducible, the augmentation of a given visit of an image still is).
        min_keypoints: people with fewer 2D keypoints of confidence ``> conf_threshold`` are
            dropped (the official ``FILTER_NUM_KP`` keeps ``> 4``; here ``>= min_keypoints``).
        conf_threshold: see ``min_keypoints`` (confidences are kept as they are).
        rank, world_size: this process's share of the shards; None: from ``torch.distributed``
            or ``RANK`` / ``WORLD_SIZE`` (``webdataset.split_by_node``). Give both or neither.

    The augmentation of person ``p`` of image ``key`` is drawn from a generator seeded by
    ``(seed, epoch, visit, key, p)``: ``epoch`` advances on each iteration (call ``set_epoch``
    each epoch when DataLoader workers are not persistent), ``visit`` counts re-reads of a
    shard within one iteration (resampling).
    """

    def __init__(self, root: str | Path | None = None, split: str = "train", *,
                 urls: str | Sequence[str] | None = None, kind: str = "body",
                 crop_size: int = CROP_SIZE, augment: AugmentConfig | bool | dict | None = None,
                 shuffle: int = 100, seed: int = 0, resampled: bool = False,
                 min_keypoints: int = 4, conf_threshold: float = 0.0, rank: int | None = None,
                 world_size: int | None = None) -> None:
        super().__init__()
        if kind not in SUBJECTS:
            raise ValueError(f"TarShards: kind must be one of {tuple(SUBJECTS)}, got {kind!r}")
        if (root is None) == (urls is None):
            raise ValueError("TarShards: give either root (a folder of *.tar shards) or urls "
                             "(a brace pattern or a list of shards)")
        if (rank is None) != (world_size is None):
            raise ValueError("TarShards: give both rank and world_size, or neither")
        if world_size is not None and not 0 <= int(rank) < int(world_size):
            raise ValueError(f"TarShards: rank {rank} outside 0..{int(world_size) - 1}")
        self.urls = self._find_shards(Path(root), split) if root is not None else expand_urls(urls)
        if not self.urls:
            raise DatasetFileError(f"TarShards: the pattern {urls!r} names no shards")
        missing = [u for u in self.urls if _is_local(u) and not Path(u).is_file()]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise DatasetFileError(f"missing tar shard: {missing[0]}{more}")
        if augment is None:
            augment = split == "train"
        if augment is True:
            augment = AugmentConfig()
        if isinstance(augment, dict):
            augment = AugmentConfig(**augment)
        self.augment_config: AugmentConfig | None = augment or None
        self.kind, self.split = kind, split
        self.subject = SUBJECTS[kind]
        self.name = "tar-shards"
        self.crop_size, self.shuffle, self.seed = int(crop_size), int(shuffle), int(seed)
        self.resampled = bool(resampled)
        self.min_keypoints, self.conf_threshold = int(min_keypoints), float(conf_threshold)
        self.rank = None if rank is None else int(rank)
        self.world_size = None if world_size is None else int(world_size)
        self.epoch = 0
        from extpose_sdk.keypoints.layouts import get_layout

        self.detected_flip = get_layout(self.subject.label_layout).flip_indices

    @staticmethod
    def _find_shards(root: Path, split: str) -> list[str]:
        if not root.is_dir():
            raise DatasetFileError(f"TarShards: root {root} is not a folder (it should hold the "
                                   "*.tar shards of one data set)")
        for folder in (root, root / split):
            shards = sorted(folder.glob("*.tar")) if folder.is_dir() else []
            if shards:
                return [str(s) for s in shards]
        raise DatasetFileError(f"TarShards: no *.tar shards in {root} (nor in {root / split})")

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next iteration's shuffles and augmentation."""
        self.epoch = int(epoch)

    # ---- the pipeline
    def _node_splitter(self):
        import webdataset

        if self.world_size is None:
            return webdataset.split_by_node
        return functools.partial(split_by_rank, rank=self.rank, world_size=self.world_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import webdataset

        epoch = self.epoch
        self.epoch += 1
        rank, _, worker, _ = webdataset.utils.pytorch_worker_info()
        rank = rank if self.rank is None else self.rank
        shuffle_seed = _seed(self.seed, epoch, rank, worker)
        shard_shuffle = 100 if self.shuffle > 0 and not self.resampled else False
        pipeline = webdataset.WebDataset(
            self.urls, nodesplitter=self._node_splitter(),
            workersplitter=webdataset.split_by_worker, shardshuffle=shard_shuffle,
            resampled=self.resampled, empty_check=False, seed=shuffle_seed)
        pipeline = pipeline.compose(_count_visits)
        if self.shuffle > 0:
            pipeline = pipeline.shuffle(self.shuffle, seed=shuffle_seed)
        for item in pipeline:
            yield from self.people(item, epoch=epoch)

    # ---- one tar sample -> its people
    def people(self, item: dict[str, Any], *, epoch: int = 0) -> Iterator[dict[str, Any]]:
        """The samples of one tar sample (``__key__``, ``__url__``, image and ``data.pyd``
        bytes), one per kept person."""
        key, shard = str(item.get("__key__")), str(item.get("__url__", "?"))
        if "data.pyd" not in item:
            raise TarShardError(f"{shard}: sample {key!r} has no {key}.data.pyd "
                                f"(found {sorted(k for k in item if not k.startswith('__'))})")
        people = load_people(item["data.pyd"], shard, key)
        kept = [(i, p) for i, p in enumerate(people) if self._keep(p, shard, key, i)]
        if not kept:
            return
        image = self._decode(item, shard, key)
        for index, person in kept:
            rng = None
            if self.augment_config is not None:
                rng = np.random.default_rng(
                    _seed(self.seed, epoch, item.get("__visit__", 0), key, index))
            yield self.sample(image, person, shard=shard, key=key, index=index, rng=rng)

    def _array(self, person: dict, name: str, shape: tuple[int, ...], shard: str, key: str,
               index: int) -> np.ndarray:
        if name not in person:
            raise TarShardError(f"{shard}: sample {key!r}, person {index}: no {name!r} "
                                f"(has {sorted(person)})")
        try:
            value = np.asarray(person[name], dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise TarShardError(f"{shard}: sample {key!r}, person {index}: {name} is not "
                                f"numeric: {error}") from error
        if value.shape != shape:
            raise TarShardError(f"{shard}: sample {key!r}, person {index}: {name} has shape "
                                f"{value.shape}, expected {shape} ({self.kind} data)")
        return value

    def _keep(self, person: dict, shard: str, key: str, index: int) -> bool:
        points = self._array(person, "keypoints_2d", (self.subject.num_joints, 3), shard, key,
                             index)
        return int((points[:, 2] > self.conf_threshold).sum()) >= self.min_keypoints

    def _decode(self, item: dict[str, Any], shard: str, key: str) -> np.ndarray:
        import cv2

        ext = next((e for e in IMAGE_EXTENSIONS if e in item), None)
        if ext is None:
            raise TarShardError(f"{shard}: sample {key!r} has no image "
                                f"({key}.{{{','.join(IMAGE_EXTENSIONS)}}})")
        image = cv2.imdecode(np.frombuffer(item[ext], np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise TarShardError(f"{shard}: sample {key!r}: {key}.{ext} cannot be decoded")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def sample(self, image: np.ndarray, person: dict[str, Any], *, shard: str, key: str,
               index: int = 0, rng: np.random.Generator | None = None) -> dict[str, Any]:
        """The sample of one ``person`` (a ``.data.pyd`` dict) in ``image`` (H, W, 3 RGB);
        ``rng`` draws the augmentation (None: none)."""
        subject = self.subject
        n = subject.num_joints

        def array(name, shape):
            return self._array(person, name, shape, shard, key, index)

        def optional(name, shape):
            return array(name, shape) if name in person else None

        keypoints_2d = array("keypoints_2d", (n, 3))
        keypoints_3d = optional("keypoints_3d", (n, 4))
        center = array("center", (2,))
        scale = np.asarray(person.get("scale", ()), dtype=np.float64).reshape(-1)
        if scale.shape == (1,):  # a square box given by one side
            scale = np.repeat(scale, 2)
        if scale.shape != (2,) or not np.all(np.isfinite(scale)) or (scale <= 0).any():
            raise TarShardError(f"{shard}: sample {key!r}, person {index}: scale must be 2 "
                                f"positive numbers (box size / 200), got {person.get('scale')!r}")
        pose_key = subject.pose_key
        pose = optional(pose_key, (subject.pose_size,))
        betas = optional("betas", (10,))
        has_pose = _flag(person.get(f"has_{pose_key}", pose is not None)) and pose is not None
        has_betas = _flag(person.get("has_betas", betas is not None)) and betas is not None
        pose = np.zeros(subject.pose_size) if pose is None else pose
        is_right = None
        params = AugmentParams()
        if rng is not None:
            params = sample_params(self.augment_config, rng)
        if subject.mirror_left:
            is_right = 1.0 if _flag(person.get("right", 1.0)) else 0.0
            if not is_right and not params.flip:  # HaMeR: a left hand is seen as a right hand
                params = attrs.evolve(params, flip=True)
        half = scale * 200.0 / 2.0
        box = np.concatenate([center - half, center + half])
        entries = augment(
            image, box, params, keypoints_2d=keypoints_2d,
            keypoints_3d=np.zeros((n, 4)) if keypoints_3d is None else keypoints_3d,
            global_orient=pose[:3], is_right=is_right,
            detected_keypoints_2d=keypoints_2d[:subject.label_joints],
            joint_set=subject.joint_set, detected_flip=self.detected_flip, size=self.crop_size,
            rng=rng, **{pose_key: pose[3:]})
        out: dict[str, Any] = {k: torch.as_tensor(np.asarray(v, np.float32))
                               for k, v in entries.items()}
        out.update({
            "box": torch.as_tensor(box, dtype=torch.float32),
            "image_hw": torch.tensor(image.shape[:2], dtype=torch.float32),
            "betas": torch.as_tensor(np.zeros(10) if betas is None else betas,
                                     dtype=torch.float32),
            "frame": torch.tensor(0, dtype=torch.int64),
            "dataset": Path(shard).parent.name or self.name,
            "sequence": Path(shard).name.removesuffix(".tar"),
            "image_path": key,
            "joint_set": subject.joint_set,
            "detected_layout": subject.label_layout,
            "has_global_orient": torch.tensor(has_pose),
            f"has_{pose_key}": torch.tensor(has_pose),
            "has_betas": torch.tensor(has_betas),
            "has_detected_keypoints_2d": torch.tensor(True),
        })
        return out


def _count_visits(samples):
    """Tag each tar sample with ``__visit__``: how many times its shard was read before in this
    iteration (a new visit starts when the shard changes or a key repeats)."""
    visits: dict[str, int] = {}
    current, keys = None, set()
    for item in samples:
        url, key = item.get("__url__"), item.get("__key__")
        if url != current or key in keys:
            visits[url] = visits.get(url, -1) + 1
            current, keys = url, set()
        keys.add(key)
        item["__visit__"] = visits[url]
        yield item


__all__ = ["MAX_PICKLE_BYTES", "TarShardError", "TarShards", "UnsafeSampleError", "expand_urls",
           "load_people", "split_by_rank"]
