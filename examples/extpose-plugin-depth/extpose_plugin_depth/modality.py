"""The ``depth`` modality: the subject's depth map, cut out like the RGB crop and made relative.

Evidence: ``CropEvidence.extras["depth"]``, an ``(H, W)`` float map of the *full image* in metres
(0 where nothing was measured), in the same pixels as the image the crop was cut from. It is
warped into the crop with ``evidence.transform`` (nearest neighbour: depth is never blended
with the background), exactly as the skeleton modality draws full-image keypoints through it.

The image: relative depth in the crop, one channel, in ``[0, 1]`` after normalisation::

    value = FLOOR + (1 - FLOOR) * clip((z - z_near) / range_m, 0, 1)    where z > 0
    value = 0                                                            elsewhere

``z_near`` is the nearest measured point in the crop, so the nearest point of the subject is
``FLOOR`` (0.1), farther points are larger up to 1 at ``range_m`` behind it, and the background
is exactly 0 (never confused with the nearest point). Relative depth removes the subject's
distance from the camera, which the crop's scale already says.

The modality brings its own encoder (``PatchEncoder(1, vit)``: a 1-channel patch embedding, then
the ViT's own position embedding), so its tokens sit on the RGB grid and enter the same token
stream as ``rgb`` and ``skeleton``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from extpose_sdk.modalities import CropEvidence, Modality

#: The value of the nearest point of the subject (the background is 0).
FLOOR = 0.1
#: Depth range (metres) behind the nearest point mapped onto ``FLOOR..1``: a hand is about 0.2 m
#: deep whatever its pose; pass ``range_m=1.0`` for bodies.
HAND_RANGE_M = 0.25


def crop_depth(depth: np.ndarray, transform: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` float32 metres: the full-image ``depth`` map seen through the crop's affine
    ``transform`` (full-image px -> crop px, ``cv2.warpAffine`` convention), nearest neighbour,
    0 outside the image."""
    import cv2

    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected a full-image map of shape (H, W), got {depth.shape}")
    h, w = size
    return cv2.warpAffine(depth, np.asarray(transform, dtype=np.float64), (w, h),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def relative_depth(depth: np.ndarray, range_m: float = HAND_RANGE_M) -> np.ndarray:
    """``(H, W)`` float32 in ``[0, 1]`` from a crop's metric depth (0: nothing there): nearest
    point ``FLOOR``, ``range_m`` behind it 1, background 0."""
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    out = np.zeros(depth.shape, dtype=np.float32)
    if valid.any():
        near = float(depth[valid].min())
        behind = np.clip((depth[valid] - near) / float(range_m), 0.0, 1.0)
        out[valid] = FLOOR + (1.0 - FLOOR) * behind
    return out


class DepthModality(Modality):
    """``depth``: ``evidence.extras["depth"]`` (full-image metres) as relative depth in the crop.

    Args:
        range_m: metres behind the nearest point mapped onto ``FLOOR..1`` (hands: 0.25).
    """

    name = "depth"
    channels = 1
    mean = np.zeros(1, dtype=np.float32)  # render() gives 0..255; normalised to 0..1
    std = np.full(1, 255.0, dtype=np.float32)

    def __init__(self, range_m: float = HAND_RANGE_M) -> None:
        if not range_m > 0:
            raise ValueError(f"depth: range_m must be positive, got {range_m}")
        self.range_m = float(range_m)

    def encoder(self, vit: Any) -> Any:
        """A 1-channel patch embedding of its own (``D * p * p + D`` parameters)."""
        from extpose_sdk.modalities.encoders import PatchEncoder

        return PatchEncoder(self.channels, vit)

    def available(self, evidence: CropEvidence) -> bool:
        depth = evidence.extras.get("depth")
        return depth is not None and bool((np.asarray(depth) > 0).any())

    def render(self, evidence: CropEvidence) -> np.ndarray:
        depth = evidence.extras.get("depth")
        if depth is None:
            raise ValueError('the depth modality needs evidence.extras["depth"], a full-image '
                             "(H, W) depth map in metres (0: no measurement)")
        crop = crop_depth(depth, evidence.transform, evidence.size)
        return (relative_depth(crop, self.range_m) * 255.0)[..., None]

    def example_evidence(self, size: tuple[int, int] = (64, 48)) -> CropEvidence:
        """Evidence this modality can render (a tilted plane in front of a noise image), for
        tests that walk the registry with one crop per modality."""
        h, w = size
        rng = np.random.default_rng(0)
        xx = np.arange(w, dtype=np.float32)[None].repeat(h, 0)
        depth = 0.5 + 0.002 * xx
        depth[:, : w // 4] = 0.0  # background on the left
        return CropEvidence(size=size, transform=np.array([[1.0, 0, 0], [0, 1.0, 0]]),
                            crop_rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                            extras={"depth": depth})


def read_depth(path: str | Path, *, scale: float | None = None) -> np.ndarray:
    """A user's depth file as an ``(H, W)`` float32 map in metres (0: no measurement).

    ``.npy``: float metres (read without pickle); ``.png`` / ``.tif``: 16-bit millimetres, as
    RGB-D cameras (Kinect, RealSense) save them. ``scale`` overrides the unit (metres per
    stored value).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"depth file {path} not found")
    if path.suffix == ".npy":
        depth = np.load(path, allow_pickle=False).astype(np.float32)
        unit = 1.0
    elif path.suffix.lower() in (".png", ".tif", ".tiff"):
        import cv2

        depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if depth is None:
            raise ValueError(f"{path}: OpenCV cannot read it as an image")
        depth = depth.astype(np.float32)
        unit = 0.001
    else:
        raise ValueError(f"{path}: unknown depth format {path.suffix!r}; give .npy (metres) or a "
                         "16-bit .png / .tif (millimetres)")
    if depth.ndim != 2:
        raise ValueError(f"{path}: a depth map has one channel; got shape {depth.shape}")
    depth = depth * (unit if scale is None else float(scale))
    depth[~np.isfinite(depth)] = 0.0
    return depth
