"""Depth for the SDK's synthetic hand set, computed outside the SDK from what its renderer keeps.

``SyntheticDataset.render`` keeps, per frame, the face buffer of the subject (which mesh face
each pixel shows, -1 for the background) and the camera-frame vertices; the mesh faces come
from its body model. A pixel's depth is then where its viewing ray meets the plane of the face
it shows (``depth_from_faces``): exact for a triangle mesh, no second rasterisation. Occluders
are drawn over the RGB image only, so the depth map is the subject's (as a segmented RGB-D
sensor's would be).

``SyntheticDepthDataset`` is the SDK's data set with one more key per sample (frames and clips):

- ``depth``: ``(1, S, S)`` float32, the ``DepthModality`` image of the crop (relative depth,
  background 0), cut with the sample's own ``crop_transform`` (augmentation included);
- ``has_depth``: ``()`` bool.

Everything else in a sample is the SDK's, unchanged (same seed: the same images and labels as
``synthetic-hand``). Registered as the data set ``synthetic-hand-depth``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from extpose_plugin_depth.modality import HAND_RANGE_M, DepthModality
from extpose_sdk.datasets.synthetic import SyntheticDataset
from extpose_sdk.modalities import CropEvidence


def depth_from_faces(buffer: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                     focal: tuple[float, float], principal: tuple[float, float]) -> np.ndarray:
    """``(H, W)`` float32 camera-frame depth ``z`` (metres) of every pixel of a face buffer.

    Args:
        buffer: ``(H, W)`` int face index per pixel, -1 for the background (``render.rasterize``).
        vertices: ``(V, 3)`` camera frame (x right, y down, z forward), metres.
        faces: ``(F, 3)`` vertex indices.
        focal, principal: ``(fx, fy)``, ``(cx, cy)`` px; integer pixel coordinates are centres.

    The ray of pixel ``(u, v)`` is ``r = ((u - cx) / fx, (v - cy) / fy, 1)``; it meets the plane
    ``n . X = n . v0`` of its face at ``z = (n . v0) / (n . r)``, clipped to the face's own depth
    range (a face seen edge-on has no stable intersection). Background pixels are 0.
    """
    buffer = np.asarray(buffer)
    out = np.zeros(buffer.shape, dtype=np.float32)
    ys, xs = np.nonzero(buffer >= 0)
    if len(ys) == 0:
        return out
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)[buffer[ys, xs]]]  # (N, 3, 3)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    ray = np.stack([(xs - principal[0]) / focal[0], (ys - principal[1]) / focal[1],
                    np.ones(len(xs))], axis=1)
    along = np.einsum("ni,ni->n", normal, ray)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.einsum("ni,ni->n", normal, tri[:, 0]) / along
    low, high = tri[..., 2].min(axis=1), tri[..., 2].max(axis=1)
    z = np.where(np.isfinite(z), np.clip(z, low, high), tri[..., 2].mean(axis=1))
    out[ys, xs] = z
    return out


class SyntheticDepthDataset(SyntheticDataset):
    """The SDK's ``SyntheticDataset`` with the subject's depth map as the ``depth`` modality.

    Args:
        depth_range: ``DepthModality(range_m=...)`` (metres behind the nearest point).
        **options: ``SyntheticDataset``'s (``kind``, ``num_sequences``, ``crop_size``...).
    """

    def __init__(self, *args: Any, depth_range: float = HAND_RANGE_M, **options: Any) -> None:
        super().__init__(*args, **options)
        self.name = f"{self.name}-depth"
        self.depth_modality = DepthModality(range_m=depth_range)
        self._mesh_faces: np.ndarray | None = None
        self._depth: dict[tuple[int, int], np.ndarray] = {}

    def pose_frames(self, sequence: int, frames: list[int]) -> dict[str, np.ndarray]:
        posed = super().pose_frames(sequence, frames)
        self._mesh_faces = posed["faces"]  # the faces render() rasterises
        return posed

    def render(self, sequence: int, frames: list[int]):
        """The SDK's frames; the full-image depth of each is kept for ``sample``."""
        rendered = super().render(sequence, frames)
        focal = (self.focal, self.focal)
        principal = (self.image_size[1] / 2.0, self.image_size[0] / 2.0)  # Camera.of's default
        self._depth = {
            (sequence, frame): depth_from_faces(r.faces, r.labels["vertices"], self._mesh_faces,
                                                focal, principal)
            for frame, r in zip(frames, rendered, strict=True)
        }
        return rendered

    def full_depth(self, sequence: int, frame: int) -> np.ndarray:
        """``(H, W)`` float32 full-image depth (metres, 0: background) of one frame."""
        self.render(sequence, [frame])
        return self._depth.pop((sequence, frame))

    def sample(self, sequence: int, frames: list[int], params) -> list[dict]:
        import torch

        samples = super().sample(sequence, frames, params)  # calls render()
        for frame, sample in zip(frames, samples, strict=True):
            depth = self._depth.pop((sequence, frame))
            evidence = CropEvidence(size=(self.crop_size, self.crop_size),
                                    transform=sample["crop_transform"].numpy().astype(np.float64),
                                    extras={"depth": depth})
            sample["depth"] = self.depth_modality(evidence)
            sample["has_depth"] = torch.tensor(bool(self.depth_modality.available(evidence)))
        return samples


def synthetic_hand_depth(root=None, split: str = "train", **options) -> SyntheticDepthDataset:
    """The ``synthetic-hand-depth`` data set: ``synthetic-hand`` with ``depth`` per sample."""
    return SyntheticDepthDataset(root, split, kind="hand", **options)
