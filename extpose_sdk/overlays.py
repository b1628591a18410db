"""Prediction overlays: the projected mesh (shaded or wireframe) and skeletons over each frame.

    writer = OverlayWriter("out/overlay.mp4", fps=25)       # or a directory: one PNG per frame
    pipeline.video("clip.mp4", on_frame=lambda image, result: writer.write(
        draw_frame(image, result, faces=body_model.faces)))
    writer.close()

Drawn per person: the mesh (when the result has vertices and a camera translation) with the
OpenCV renderer of ``extpose_sdk.render``; the 2D keypoints that were used (white skeleton); the
model's projected joints (green dots); the box and the track id. For whole-body results
(``hand_faces=``, the MANO faces), each hand found the same way over the body (its mesh where the
hand was placed, its keypoints, its projected joints, its box), and the reason of a missing hand
written at the person's box (``L: occluded``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from extpose_sdk.results import FrameResult

#: Per-track mesh colours (RGB), cycled by track id.
TRACK_COLOURS = ((200, 160, 120), (120, 170, 220), (150, 210, 140), (220, 140, 180))


def draw_frame(
    image: np.ndarray,
    result: FrameResult,
    *,
    faces: np.ndarray | None = None,
    wireframe: bool = False,
    alpha: float = 0.8,
    camera: Any = None,
    hand_faces: np.ndarray | None = None,
) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB copy of ``image`` with ``result``'s people drawn over it, seen
    by ``camera`` (the pipeline's: ``cameras.camera_for``; default the official assumption);
    whole-body results' hands with ``hand_faces``. ``faces`` / ``hand_faces`` are the right
    hand's for MANO: a left hand's mesh (``is_right`` False) is its mirror image, so its faces
    are turned to face outwards."""
    import cv2

    from extpose_sdk.cameras import camera_for

    out = np.ascontiguousarray(np.asarray(image, dtype=np.uint8).copy())
    cam = camera_for(camera, out.shape[:2])
    for person in result.people:
        colour = TRACK_COLOURS[max(person.track_id, 0) % len(TRACK_COLOURS)]
        out = _draw_person(out, person, _outwards(faces, person), cam, colour, alpha, wireframe)
        x1, y1 = (int(round(v)) for v in person.box[:2])
        if person.track_id >= 0:
            cv2.putText(out, str(person.track_id), (x1 + 2, y1 + 12), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, colour, 1, cv2.LINE_AA)  # fmt: skip
        for line, side in enumerate(("left", "right")):
            hand = getattr(person, f"{side}_hand", None)
            if hand is not None:
                out = _draw_person(out, hand, _outwards(hand_faces, hand), cam,
                                   HAND_COLOURS[side], alpha, wireframe)
            elif person.hands_missing and side in person.hands_missing:
                cv2.putText(out, f"{side[0].upper()}: {person.hands_missing[side]}",
                            (x1 + 2, y1 + 24 + 12 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                            HAND_COLOURS[side], 1, cv2.LINE_AA)  # fmt: skip
    return out


def _outwards(faces: np.ndarray | None, person: Any) -> np.ndarray | None:
    """``faces`` for ``person``'s mesh: turned for a left hand, whose vertices are the right
    hand's mirrored (the winding flips, and the renderer culls faces turned away)."""
    if faces is None or getattr(person, "is_right", None) is not False:
        return faces
    return np.asarray(faces)[:, [0, 2, 1]]


#: Mesh colours (RGB) of a whole-body result's hands.
HAND_COLOURS = {"left": (230, 120, 90), "right": (90, 130, 230)}


def _draw_person(out: np.ndarray, person: Any, faces: np.ndarray | None, cam: Any,
                 colour: tuple[int, int, int], alpha: float, wireframe: bool) -> np.ndarray:
    """One person's (or hand's) mesh, keypoints used, projected joints and box over ``out``."""
    import cv2

    from extpose_sdk.render import draw_skeleton, render_mesh

    if faces is not None and person.vertices is not None and person.cam_t is not None:
        out = render_mesh(
            out, person.vertices + person.cam_t, faces, focal=(cam.fx, cam.fy),
            principal=(cam.cx, cam.cy), color=colour,
            alpha=alpha, wireframe=wireframe,
        )  # fmt: skip
    if person.keypoints is not None:
        out = draw_skeleton(out, person.keypoints, _limbs_for(len(person.keypoints)), radius=2)
    if person.keypoints_2d is not None:
        for x, y in np.asarray(person.keypoints_2d, dtype=np.float64):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(out, (int(round(x)), int(round(y))), 2, (0, 255, 0), -1)
    x1, y1, x2, y2 = (int(round(v)) for v in person.box)
    cv2.rectangle(out, (x1, y1), (x2, y2), colour, 1)
    return out


def _limbs_for(num_keypoints: int) -> list[tuple[int, int]]:
    from extpose_sdk.keypoints.layouts import get_layout, layout_for_count

    try:
        layout = get_layout(layout_for_count(num_keypoints))
    except (KeyError, ValueError):
        return []
    return [(int(limb[0]), int(limb[1])) for limb in getattr(layout, "limbs", [])]


class OverlayWriter:
    """Frames written as an MP4 (``.mp4`` / ``.avi`` path) or as PNGs into a directory."""

    def __init__(self, path: str | Path, fps: float = 25.0) -> None:
        self.path = Path(path)
        self.fps = fps if fps and fps > 0 else 25.0
        self.count = 0
        self._writer: Any = None
        if self.path.suffix.lower() in (".mp4", ".avi"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        else:
            self.path.mkdir(parents=True, exist_ok=True)

    def write(self, image: np.ndarray) -> None:
        import cv2

        bgr = cv2.cvtColor(np.asarray(image, dtype=np.uint8), cv2.COLOR_RGB2BGR)
        if self.path.suffix.lower() in (".mp4", ".avi"):
            if self._writer is None:
                fourcc = "mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"
                h, w = bgr.shape[:2]
                self._writer = cv2.VideoWriter(
                    str(self.path), cv2.VideoWriter_fourcc(*fourcc), self.fps, (w, h)
                )
                if not self._writer.isOpened():
                    raise RuntimeError(f"{self.path}: OpenCV cannot write this video")
            self._writer.write(bgr)
        else:
            target = self.path / f"{self.count:06d}.png"
            if not cv2.imwrite(str(target), bgr):
                raise RuntimeError(f"{target}: OpenCV cannot write this image")
        self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
