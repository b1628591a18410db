"""Mesh and skeleton drawing with OpenCV only (no OpenGL): for synthetic data and overlays.

The mesh renderer is a painter's algorithm: vertices in the camera frame (metres, OpenCV axes:
x right, y down, z forward) are projected with a pinhole camera, back faces are culled,
triangles are sorted far to near and filled in that order into a face-index buffer, and the
buffer is shaded in one look-up (Lambert shading by face normal plus ambient light)::

    from extpose_sdk.render import render_mesh
    overlay = render_mesh(image_rgb, vertices, faces, focal=5000.0, color=(200, 160, 120),
                          alpha=0.8)

``rasterize`` returns the face-index buffer itself (-1 where no face), from which a caller gets a
silhouette mask or visibility of points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from extpose_sdk.cameras import Camera  # the pinhole camera the renderer projects with

#: Fixed-point bits for sub-pixel polygon vertices (``cv2.fillConvexPoly(shift=...)``).
_SHIFT = 4
_ONE = 1 << _SHIFT
#: Default light: travelling from the camera into the scene, slightly from above-left.
DEFAULT_LIGHT = (0.3, 0.4, 1.0)


def _check_mesh(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices: expected shape (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces: expected shape (F, 3), got {faces.shape}")
    return vertices, faces


def face_normals(vertices, faces) -> np.ndarray:
    """(F, 3) unit normals ``cross(v1 - v0, v2 - v0)`` of the triangles."""
    vertices, faces = _check_mesh(vertices, faces)
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def rasterize(vertices, faces, camera: Camera, image_size: tuple[int, int], *,
              cull_backfaces: bool = True, near: float = 1e-3,
              normals: np.ndarray | None = None) -> np.ndarray:
    """(H, W) int32 buffer of the nearest face index per pixel (-1: background).

    Faces are drawn far to near (painter's algorithm, sorted by mean depth); with
    ``cull_backfaces`` faces turned away from the camera (normal along the view ray) are skipped,
    which needs consistently wound faces (outward normals ``cross(v1 - v0, v2 - v0)``).
    ``normals`` (F, 3) may be passed when already computed (any positive length).
    """
    import cv2

    vertices, faces = _check_mesh(vertices, faces)
    h, w = image_size
    buffer = np.full((h, w), -1, dtype=np.int32)
    tri = vertices[faces]
    keep = (tri[..., 2] > near).all(axis=1)
    if cull_backfaces:
        if normals is None:
            normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        keep &= np.einsum("fi,fi->f", normals, tri[:, 0]) < 0
    uv = camera.project(vertices)[faces]  # (F, 3, 2)
    lo, hi = uv.min(axis=1), uv.max(axis=1)
    keep &= (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < w) & (lo[:, 1] < h)
    index = np.flatnonzero(keep)
    order = index[np.argsort(-tri[index, :, 2].mean(axis=1), kind="stable")]
    fixed = np.round(np.clip(uv[order], -4 * max(h, w), 4 * max(h, w)) * _ONE).astype(np.int32)
    fill = cv2.fillConvexPoly
    for face, polygon in zip(order.tolist(), fixed, strict=True):
        fill(buffer, polygon, face, cv2.LINE_8, _SHIFT)
    return buffer


def shade_faces(normals: np.ndarray, color, *, light=DEFAULT_LIGHT, ambient: float = 0.35,
                two_sided: bool = True) -> np.ndarray:
    """(F, 3) RGB float colours: ``color * (ambient + (1 - ambient) * max(0, -n . light))``.

    ``color`` is one RGB triple or one per face; ``two_sided`` lights back faces as front ones.
    """
    light = np.asarray(light, dtype=np.float64)
    light = light / np.linalg.norm(light)
    lambert = -(normals @ light)
    lambert = np.abs(lambert) if two_sided else np.maximum(lambert, 0.0)
    color = np.broadcast_to(np.asarray(color, dtype=np.float64), (len(normals), 3))
    return color * (ambient + (1.0 - ambient) * lambert)[:, None]


def render_mesh(image, vertices, faces, *, focal=5000.0, principal=None,
                color=(190, 170, 220), light=DEFAULT_LIGHT, ambient: float = 0.35,
                alpha: float = 1.0, cull_backfaces: bool = True, wireframe: bool = False,
                wire_color=(20, 20, 20), image_size: tuple[int, int] | None = None,
                return_faces: bool = False):
    """Draw a mesh over ``image`` (H, W, 3) uint8 (or a black image of ``image_size``).

    Args:
        vertices: (V, 3) camera frame, metres. faces: (F, 3) vertex indices.
        focal, principal: pinhole camera in px (principal default: image centre).
        color: mesh colour, one triple (in the image's channel order) or (F, 3) per face.
        alpha: opacity of the mesh over the image.
        wireframe: also draw the edges of the visible faces.
        return_faces: also return the face-index buffer (-1: background).

    Returns:
        (H, W, 3) uint8 image (and the (H, W) int32 face buffer with ``return_faces``).
    """
    import cv2

    if image is None:
        if image_size is None:
            raise ValueError("render_mesh needs image or image_size")
        image = np.zeros((*image_size, 3), dtype=np.uint8)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected shape (H, W, 3), got {image.shape}")
    h, w = image.shape[:2]
    camera = Camera.of(focal, principal, (h, w))
    normals = face_normals(vertices, faces)
    buffer = rasterize(vertices, faces, camera, (h, w), cull_backfaces=cull_backfaces,
                       normals=normals)
    colors = shade_faces(normals, color, light=light, ambient=ambient)
    covered = buffer >= 0
    out = image.copy()
    if covered.any():
        mesh = colors[buffer[covered]]
        blended = alpha * mesh + (1.0 - alpha) * out[covered].astype(np.float64)
        out[covered] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    if wireframe:
        visible = np.unique(buffer[covered])
        uv = np.round(camera.project(np.asarray(vertices))[np.asarray(faces)[visible]] * _ONE)
        cv2.polylines(out, list(uv.astype(np.int32)), True, tuple(float(c) for c in wire_color),
                      1, cv2.LINE_AA, _SHIFT)
    return (out, buffer) if return_faces else out


def draw_skeleton(image, points, limbs: Sequence[tuple[int, int]], *, colors=None,
                  thickness: int = 2, radius: int = 3, min_confidence: float = 0.1) -> np.ndarray:
    """Draw 2D ``points`` (K, 2|3) (px; third column a confidence) joined by ``limbs`` on a copy
    of ``image`` (H, W, 3) uint8. ``colors``: one triple, or one per limb (default white)."""
    import cv2

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f"points: expected shape (K, 2) or (K, 3), got {points.shape}")
    confident = points[:, 2] >= min_confidence if points.shape[1] == 3 else np.ones(len(points), bool)
    limbs = [tuple(int(i) for i in limb) for limb in limbs]
    if colors is None:
        colors = [(255, 255, 255)] * len(limbs)
    elif np.ndim(colors) == 1:
        colors = [tuple(colors)] * len(limbs)
    out = np.ascontiguousarray(np.asarray(image, dtype=np.uint8).copy())
    fixed = np.round(points[:, :2] * _ONE).astype(np.int64)
    for (a, b), color in zip(limbs, colors, strict=True):
        if confident[a] and confident[b]:
            cv2.line(out, tuple(fixed[a].tolist()), tuple(fixed[b].tolist()),
                     tuple(float(c) for c in color), thickness, cv2.LINE_AA, _SHIFT)
    if radius > 0:
        for k in np.flatnonzero(confident):
            cv2.circle(out, tuple(fixed[k].tolist()), radius * _ONE, (255, 255, 255), -1,
                       cv2.LINE_AA, _SHIFT)
    return out
