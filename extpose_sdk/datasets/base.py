r"""The one base of the indexable data sets: sequences of frames -> samples, or clips of T frames.

``SequenceDataset`` is what every indexable set shares: it names its sequences and their lengths
(``sequence_lengths``) and makes the samples of some frames of one sequence (``samples``); the
base indexes single frames, or clips of ``clip_length`` frames (``make_clips``), in the sample
layout of ``extpose_sdk.data.sample``. The synthetic sets render their frames
(``extpose_sdk.datasets.synthetic``); the readers of official layouts (3DPW, FreiHAND, HO3D) are
``SequenceReader``\ s: they list *frame records* (``FrameRecord``: full-image labels of one person
or hand in one image) and crop each frame by the official preprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from extpose_sdk.data.sample import CROP_SIZE, Clip, make_clips, stack_clip, window_clips
from extpose_sdk.keypoints.container import boxes_from_keypoints
from extpose_sdk.subjects import BODY, Subject


@attrs.define
class FrameRecord:
    """Full-image labels of one subject in one frame; ``labels`` are ready sample entries
    (numpy arrays in the sample layout's units), ``points_2d`` the (K, 3) full-image px ground
    truth 2D joints that become the crop-normalised ``keypoints_2d``."""

    image_path: Path
    frame: int
    points_2d: np.ndarray
    labels: dict[str, Any]
    box: np.ndarray | None = None
    detected: np.ndarray | None = None  # (J, 3) full-image px of a detector
    detected_layout: str | None = None


def project(points: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Pixels ``(K, 2)`` of camera-frame points ``(K, 3)`` seen by a data set's intrinsics
    ``(3, 3)`` (``extpose_sdk.cameras.project``)."""
    from extpose_sdk.cameras import project as pinhole

    k = np.asarray(intrinsics, dtype=np.float64)
    return pinhole(np.asarray(points, dtype=np.float64), k[[0, 1], [0, 1]], k[:2, 2], skew=k[0, 1])


class SequenceDataset(torch.utils.data.Dataset):
    """Base of the indexable data sets: frames of named sequences, or clips of T frames.

    A subclass sets ``name`` and ``subject`` and implements ``sequence_lengths`` and
    ``samples``, then calls ``__init__``.

    Args:
        clip_length: None for frame samples; T for clips of T frames (see ``make_clips``).
        stride: frames between clip starts (default: ``clip_length``, no overlap).
        pad: pad the last clip of each sequence (evaluation) or drop it (training).
        clips: the clips to index, cut already (``window_clips``), instead of ``make_clips``'.
    """

    name = ""
    #: What the data set labels (``extpose_sdk.subjects``).
    subject: Subject = BODY

    def __init__(self, *, clip_length: int | None = None, stride: int | None = None,
                 pad: bool = True, clips: list[Clip] | None = None) -> None:
        self.clip_length = clip_length
        lengths = self.sequence_lengths()
        if not any(lengths.values()):
            raise ValueError(f"{self.name}: no frames found under {getattr(self, 'root', '?')}")
        self.index = None if clip_length is not None else [
            (name, i) for name, n in lengths.items() for i in range(n)]
        if clip_length is None:
            self.clips = None
        else:
            self.clips = clips if clips is not None else make_clips(lengths, clip_length, stride,
                                                                    pad=pad)

    def sequence_lengths(self) -> dict[str, int]:
        """``{sequence name: number of frames}``, in index order."""
        raise NotImplementedError

    def samples(self, sequence: str, frames: list[int]) -> list[dict[str, Any]]:
        """The samples of ``frames`` of ``sequence`` (one clip's, or one frame), in order."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.index) if self.clip_length is None else len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} items")
        if self.clip_length is None:
            name, i = self.index[index]
            return self.samples(name, [i])[0]
        clip = self.clips[index]
        return stack_clip(self.samples(clip.sequence, list(clip.frames)), clip.valid)


class SequenceView(SequenceDataset):
    """Another data set's sequences, indexed anew: as frames (no ``clip_length``), or as the
    ``clips`` given. Frames come from the wrapped data set's ``samples``; its other attributes
    (``kind``, ``crop_size``...) show through."""

    def __init__(self, dataset: SequenceDataset, *, clip_length: int | None = None,
                 clips: list[Clip] | None = None) -> None:
        self.dataset = dataset
        self.name = dataset.name
        self.subject = dataset.subject
        super().__init__(clip_length=clip_length, clips=clips)

    def __getattr__(self, name: str) -> Any:  # only for what this class does not define
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def sequence_lengths(self) -> dict[str, int]:
        return self.dataset.sequence_lengths()

    def samples(self, sequence: str, frames: list[int]) -> list[dict[str, Any]]:
        return self.dataset.samples(sequence, frames)


class SequenceFrames(SequenceView):
    """A ``SequenceDataset``'s frames one by one, whether it was built for frames or clips: a
    single-frame model and a clip model scored on the same sequences."""

    def __init__(self, dataset: SequenceDataset) -> None:
        super().__init__(dataset)


class PipelineWindows(SequenceView):
    """A ``SequenceDataset``'s sequences as ``Pipeline`` runs a video: clips of ``length``
    frames overlapping by ``overlap`` (``window_clips``), each frame ``valid`` only in the window
    its output is kept from. Scoring them (``Evaluator``) scores a video model as users run it:
    each frame once, with the context the pipeline gives it, and no jump at every T-th frame
    from windows that do not overlap."""

    def __init__(self, dataset: SequenceDataset, length: int, overlap: int) -> None:
        super().__init__(dataset, clip_length=length,
                         clips=window_clips(dataset.sequence_lengths(), length, overlap))


class RenderedOnce(SequenceView):
    """A ``SequenceDataset`` whose frames are made once and kept in memory, whichever clip,
    window or single frame asks for them: scoring one set of sequences many times (each input,
    each baseline) renders or reads each frame once. Only for data sets whose frames do not
    depend on the clip they are read in (evaluation splits: no per-clip augmentation)."""

    def __init__(self, dataset: SequenceDataset) -> None:
        self._frames: dict[tuple[str, int], dict[str, Any]] = {}
        super().__init__(dataset, clip_length=dataset.clip_length, clips=dataset.clips)

    def samples(self, sequence: str, frames: list[int]) -> list[dict[str, Any]]:
        missing = list(dict.fromkeys(f for f in frames if (sequence, f) not in self._frames))
        if missing:
            made = self.dataset.samples(sequence, missing)
            self._frames.update({(sequence, f): s for f, s in zip(missing, made, strict=True)})
        return [dict(self._frames[sequence, f]) for f in frames]


class SequenceReader(SequenceDataset):
    """Base of the readers of official layouts: ``read_sequences`` maps a name to its frame
    records; each frame is cropped by the official preprocessing.

    Args:
        images: read the image and crop ``rgb`` (needs ``extpose_sdk.data.crops``); False gives
            labels only, which is fast.
        clip_length, stride, pad: see ``SequenceDataset``.
    """

    #: The crop covers the box (tight around the 2D joints when the data set gives none)
    #: enlarged by the subject's ``crop_rescale`` (bodies 1.2, hands 2.0).
    subject: Subject = BODY

    def __init__(self, *, clip_length: int | None = None, stride: int | None = None,
                 pad: bool = True, images: bool = True) -> None:
        self.images = images
        self.sequences: dict[str, list[FrameRecord]] = self.read_sequences()
        super().__init__(clip_length=clip_length, stride=stride, pad=pad)

    def read_sequences(self) -> dict[str, list[FrameRecord]]:
        raise NotImplementedError

    def sequence_lengths(self) -> dict[str, int]:
        return {name: len(frames) for name, frames in self.sequences.items()}

    def samples(self, sequence: str, frames: list[int]) -> list[dict[str, Any]]:
        return [self.frame_sample(sequence, i) for i in frames]

    def frame_sample(self, sequence: str, i: int) -> dict[str, Any]:
        """The sample of frame ``i`` of ``sequence`` in the SDK layout."""
        record = self.sequences[sequence][i]
        points = np.asarray(record.points_2d, dtype=np.float32)
        box = record.box
        if box is None:
            box = boxes_from_keypoints(points[None])[0]
        sample: dict[str, Any] = {
            "dataset": self.name,
            "sequence": sequence,
            "frame": torch.tensor(record.frame),
            "image_path": str(record.image_path),
            "box": torch.as_tensor(np.asarray(box, dtype=np.float32)),
        }
        for key, value in record.labels.items():
            sample[key] = value if isinstance(value, str) else torch.as_tensor(
                np.asarray(value, dtype=np.bool_ if key.startswith("has_") else np.float32))
        if record.detected is not None:
            sample["detected_keypoints_2d"] = torch.as_tensor(record.detected, dtype=torch.float32)
            sample["detected_layout"] = record.detected_layout
        sample.update(self.crop(record, np.asarray(box, dtype=np.float32), points))
        return sample

    def crop(self, record: FrameRecord, box: np.ndarray, points: np.ndarray) -> dict[str, Any]:
        """Crop geometry, crop-normalised ``keypoints_2d`` and (with ``images``) the ``rgb`` crop,
        by the official preprocessing (``extpose_sdk.data.crops``)."""
        from extpose_sdk.data import crops
        from extpose_sdk.data.video import read_image

        image = read_image(record.image_path) if self.images else None
        entries = crops.crop_entries(image, box, points, size=CROP_SIZE, bgr=False,
                                     rescale=self.subject.crop_rescale)
        if image is not None:
            entries["image_hw"] = torch.tensor(image.shape[:2], dtype=torch.float32)
        return entries

def split_names(split: str, allowed: Sequence[str], dataset: str) -> str:
    """``split`` if it is one of ``allowed``, else a ValueError naming them."""
    if split not in allowed:
        raise ValueError(f"{dataset}: unknown split {split!r}; available: {', '.join(allowed)}")
    return split
