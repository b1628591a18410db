"""Built-in keypoint sources: the common 2D keypoint file formats.

Each factory is called as ``factory(path=..., **options)`` and returns a source whose call yields
``extpose_sdk.keypoints.Keypoints`` per frame.
"""

from extpose_sdk.plugins import hookimpl, lazy


@hookimpl
def extpose_register_keypoint_sources(register):
    register(
        "coco-json",
        lazy("extpose_sdk.keypoints.coco:CocoKeypointSource"),
        "COCO keypoint JSON: detector results or annotations (COCO-17, COCO-WholeBody-133); per image",
    )
    register(
        "openpose-json",
        lazy("extpose_sdk.keypoints.openpose:OpenPoseJsonSource"),
        "OpenPose --write_json output, one file per frame; part=pose (BODY_25), hand_left, hand_right",
    )
    register(
        "numpy",
        lazy("extpose_sdk.keypoints.numpy_files:NumpyKeypointSource"),
        "keypoints in a .npy / .npz file, (T, N, K, 3) full-image pixels + confidence; per frame",
    )
