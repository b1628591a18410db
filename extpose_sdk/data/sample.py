"""The sample layout: what every ExtPose data set returns for one frame or one clip of T frames.

A sample is a ``dict[str, Tensor | str]``. A frame sample has the shapes below; a *clip* sample
has the same keys with a leading ``T`` on every tensor (``rgb`` is ``(T, 3, 256, 256)``) plus
``valid (T,)``, and ``collate`` adds the batch dimension in front of both (``(B, T, ...)``).

Frames of reference and units:

- *full image*: pixels of the original image, x right, y down, integer values at pixel centres
  (OpenCV / COCO convention).
- *crop*: the ``crop_size`` (256) square the model sees; ``crop_transform`` maps full-image
  pixels to crop pixels (``cv2.warpAffine`` convention). *Crop-normalised* coordinates are
  ``crop_px / crop_size - 0.5`` (in ``[-0.5, 0.5]`` inside the crop), as HMR2.0 / HaMeR use them.
- *camera*: metres, the camera's frame (x right, y down, z forward, OpenCV), the frame in which
  the official data sets give 3D joints and the model's ``pred_cam_t`` lives.
- rotations: axis-angle, flattened (SMPL / MANO parameter order), in the camera frame for
  ``global_orient``.

Keys (``K``: joints of the label's joint set, ``J``: joints of the detector's layout, ``V``:
mesh vertices). Every label ``X`` that a data set may lack comes with a bool ``has_X`` of shape
``()``; keypoint arrays carry a per-joint confidence / validity in their last column instead
(0 = unlabelled). ``SAMPLE_KEYS`` holds the same table as data, and ``check_sample`` checks a
sample against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

#: Side of the square crop the models see (HMR2.0 / HaMeR: 256).
CROP_SIZE = 256


@attrs.frozen
class Key:
    """One documented key of the sample layout: per-frame ``shape`` (names or ints), meaning."""

    shape: tuple[int | str, ...]
    dtype: str
    doc: str
    label: bool = False  # a label a data set may lack: comes with ``has_<name>``


#: The sample layout. Shapes are per frame; clips add a leading ``T``.
SAMPLE_KEYS: dict[str, Key] = {
    # Model inputs, keyed by modality name (a plugin modality adds its own key of shape (C, H, W)).
    "rgb": Key((3, CROP_SIZE, CROP_SIZE), "float32",
               "RGB crop, ImageNet-normalised (official preprocessing); absent without an image"),
    "skeleton": Key((3, CROP_SIZE, CROP_SIZE), "float32",
                    "skeleton image of `detected_keypoints_2d`, normalised like `rgb`; optional, "
                    "else rendered from `detected_keypoints_2d` and `crop_transform`"),
    # Where the crop is.
    "box": Key((4,), "float32", "person / hand box x1, y1, x2, y2 in full-image px"),
    "center": Key((2,), "float32", "crop centre x, y in full-image px"),
    "scale": Key((2,), "float32", "crop width, height / 200 (official convention)"),
    "crop_transform": Key((2, 3), "float32", "affine full-image px -> crop px"),
    "image_hw": Key((2,), "float32", "full image height, width in px"),
    "focal_length": Key((2,), "float32", "camera focal length fx, fy in full-image px"),
    # 2D evidence and labels.
    "detected_keypoints_2d": Key(("J", 3), "float32",
                                 "a 2D detector's keypoints (or noisy stand-ins): full-image px "
                                 "x, y, confidence, in the layout named by `detected_layout`",
                                 label=True),
    "keypoints_2d": Key(("K", 3), "float32",
                        "ground-truth 2D joints, crop-normalised x, y, confidence (0: unlabelled)"),
    # 3D labels.
    "keypoints_3d": Key(("K", 4), "float32",
                        "ground-truth 3D joints, camera frame, metres, + validity (0: unlabelled)"),
    "vertices": Key(("V", 3), "float32", "ground-truth mesh vertices, camera frame, metres",
                    label=True),
    "global_orient": Key((3,), "float32", "root rotation, axis-angle, camera frame", label=True),
    "body_pose": Key((69,), "float32", "SMPL body pose, 23 joints axis-angle", label=True),
    "hand_pose": Key((45,), "float32", "MANO hand pose, 15 joints axis-angle (full, no PCA)",
                     label=True),
    "betas": Key((10,), "float32", "SMPL / MANO shape coefficients", label=True),
    "transl": Key((3,), "float32", "body-model translation, camera frame, metres", label=True),
    "is_right": Key((), "float32", "1 for a right hand, 0 for a left hand (hands only)"),
    # Clips.
    "valid": Key((), "bool", "clips only, shape (T,): False on frames padded at a sequence end"),
    # Metadata (not stacked into tensors by `collate`: strings become lists).
    "frame": Key((), "int64", "frame index in its sequence (or sample index)"),
    "dataset": Key((), "str", "data-set name (per sample, also per clip)"),
    "sequence": Key((), "str", "sequence name (per sample, also per clip)"),
    "image_path": Key((), "str", "path of the full image (per frame; clips: the first frame's)"),
    "detected_layout": Key((), "str", "keypoint layout of `detected_keypoints_2d` (`coco17`...)"),
    "joint_set": Key((), "str", "joint set of `keypoints_2d` / `keypoints_3d` (`smpl44`, `mano21`...)"),
    "gender": Key((), "str", "body-model gender of the labels: neutral, male, female"),
}

#: Keys holding strings; per clip they hold one value for the whole clip.
STRING_KEYS = frozenset(k for k, v in SAMPLE_KEYS.items() if v.dtype == "str")


def has_key(name: str) -> str:
    """The name of the validity flag of label ``name`` (``"betas"`` -> ``"has_betas"``)."""
    return f"has_{name}"


def check_sample(sample: Mapping[str, Any], *, clip: bool = False,
                 sizes: Mapping[str, int] | None = None) -> None:
    """Raise ``ValueError`` naming the key, the expected and the actual shape of a bad entry.

    ``clip=True`` expects the leading ``T`` (taken from ``valid``). ``sizes`` fixes the named
    dimensions (``{"K": 44}``); unnamed ones are only checked to agree within the sample.
    Unknown keys (a plugin modality, ``has_*`` flags) are allowed.
    """
    import torch

    seen: dict[str, int] = dict(sizes or {})
    lead: tuple[int, ...] = ()
    if clip:
        if "valid" not in sample:
            raise ValueError("clip sample: missing 'valid' (T,) bool")
        lead = tuple(sample["valid"].shape)
        if len(lead) != 1:
            raise ValueError(f"clip sample: 'valid' must have shape (T,), got {tuple(lead)}")
    for name, value in sample.items():
        key = SAMPLE_KEYS.get(name)
        if key is None or name == "valid" or name in STRING_KEYS:
            continue
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"sample[{name!r}]: expected a tensor, got {type(value).__name__}")
        if name == "frame" and clip:
            expected_shape: tuple[int | str, ...] = lead
        else:
            expected_shape = lead + key.shape
        actual = tuple(value.shape)
        ok = len(actual) == len(expected_shape)
        for want, got in zip(expected_shape, actual, strict=False):
            if isinstance(want, str):
                ok = ok and seen.setdefault(want, got) == got
            else:
                ok = ok and want == got
        if not ok:
            raise ValueError(f"sample[{name!r}]: expected shape {expected_shape} "
                             f"({key.doc}), got {actual}")


def stack(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack samples along a new first dimension: frames into a clip, or samples into a batch.

    Tensors are stacked; strings become lists; a label missing from some samples (a data set
    without ``betas`` mixed with one that has them) is filled with zeros and ``has_X`` False.
    Any other key missing from some samples is an error naming it.
    """
    import torch

    if not samples:
        raise ValueError("stack: no samples")
    names = dict.fromkeys(k for s in samples for k in s)
    out: dict[str, Any] = {}
    filled: set[str] = set()
    for name in names:
        values = [s.get(name) for s in samples]
        present = [v for v in values if v is not None]
        if isinstance(present[0], str):
            out[name] = values
            continue
        if len(present) < len(values):
            key = SAMPLE_KEYS.get(name)
            if key is None or not key.label:
                raise ValueError(f"stack: key {name!r} is missing from some samples")
            values = [torch.zeros_like(present[0]) if v is None else v for v in values]
            filled.add(name)
        try:
            out[name] = torch.stack([torch.as_tensor(v) for v in values])
        except RuntimeError as error:
            shapes = sorted({tuple(torch.as_tensor(v).shape) for v in values})
            raise ValueError(f"stack: key {name!r} has different shapes {shapes}") from error
    for name, key in SAMPLE_KEYS.items():
        flag = has_key(name)
        if key.label and name in out and (flag in names or name in filled):
            out[flag] = torch.stack([torch.as_tensor(s.get(flag, name in s), dtype=torch.bool)
                                     for s in samples])
    return out


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``DataLoader`` collate function for frames or clips: ``stack`` over the batch."""
    return stack(samples)


def stack_clip(frames: Sequence[Mapping[str, Any]], valid: Sequence[bool]) -> dict[str, Any]:
    """One clip from its frame samples: tensors ``(T, ...)``, ``valid (T,)``, one string each."""
    import torch

    clip = stack(frames)
    for name in STRING_KEYS & clip.keys():
        clip[name] = clip[name][0]
    clip["valid"] = torch.as_tensor(list(valid), dtype=torch.bool)
    return clip


@attrs.frozen
class Clip:
    """``frames`` (indices into ``sequence``) of one clip; ``valid`` is False on padded frames."""

    sequence: str
    frames: tuple[int, ...]
    valid: tuple[bool, ...]


def make_clips(lengths: Mapping[str, int], length: int, stride: int | None = None, *,
               pad: bool = True) -> list[Clip]:
    """Cut sequences (``{name: number of frames}``) into clips of ``length`` frames.

    Windows start every ``stride`` frames (default ``length``: no overlap). With ``pad=True``
    the frames after a sequence's last full window form one more clip, padded by repeating the
    last frame (``valid`` False there), so every frame is in some clip (evaluation); with
    ``pad=False`` they are dropped (training). A sequence shorter than ``length`` gives one
    padded clip, or none without padding.
    """
    stride = length if stride is None else stride
    if length < 1 or stride < 1:
        raise ValueError(f"make_clips: length and stride must be >= 1, got {length}, {stride}")
    clips = []
    for name, n in lengths.items():
        start = 0
        while start + length <= n:
            clips.append(Clip(name, tuple(range(start, start + length)), (True,) * length))
            start += stride
        covered = start - stride + length if start > 0 else 0
        if pad and covered < n:
            real = list(range(covered, n))
            frames = real + [n - 1] * (length - len(real))
            valid = [i < len(real) for i in range(length)]
            clips.append(Clip(name, tuple(frames), tuple(valid)))
    return clips


def window_clips(lengths: Mapping[str, int], length: int, overlap: int) -> list[Clip]:
    """Cut sequences into the windows ``Pipeline`` runs a video in: ``length`` frames starting
    every ``length - overlap`` frames, the last moved back to end the sequence
    (``extpose_sdk.windows.plan_windows``). A frame is ``valid`` only in the window whose output
    the pipeline keeps for it (where it is most central), so scoring the valid frames scores
    each frame once, as ``extpose predict`` outputs it. A sequence shorter than ``length`` gives
    one clip padded by repeating its last frame (``valid`` False there)."""
    from extpose_sdk.windows import plan_windows

    clips = []
    for name, n in lengths.items():
        for window in plan_windows(n, length, overlap):
            frames = list(range(window.start, window.stop))
            frames += [n - 1] * (length - len(frames))
            valid = [window.keep_start <= f < window.keep_stop and i < n - window.start
                     for i, f in enumerate(frames)]
            clips.append(Clip(name, tuple(frames), tuple(valid)))
    return clips
