"""2D keypoints: layouts as data, the ``Keypoints`` container, and file sources.

    from extpose_sdk.keypoints import Keypoints, get_layout
    kp = Keypoints(points, "coco17")          # (N, 17, 3) full-image px + confidence
    kp.boxes                                  # (N, 4) from the keypoints

File sources (``extpose_sdk.keypoints.coco``, ``.openpose``, ``.numpy_files``) are registered as
keypoint sources ``coco-json``, ``openpose-json`` and ``numpy``. Importing this package needs only
numpy and attrs.
"""

from extpose_sdk.keypoints.container import Keypoints, boxes_from_keypoints, validate_keypoints
from extpose_sdk.keypoints.layouts import (
    LAYOUTS,
    KeypointLayout,
    convert,
    get_layout,
    layout_for_count,
)

__all__ = [
    "LAYOUTS",
    "KeypointLayout",
    "Keypoints",
    "boxes_from_keypoints",
    "convert",
    "get_layout",
    "layout_for_count",
    "validate_keypoints",
]
