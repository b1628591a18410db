"""ExtPose plugin: the ``mediapipe`` keypoint source (MediaPipe's offline body and hand models).

    import extpose_sdk
    source = extpose_sdk.get_registries().keypoint_source.build("mediapipe", part="body")
    (people,) = source([image_rgb])            # Keypoints: (1, 17, 3) coco17, full-image px

Importing this plugin imports neither mediapipe nor cv2; the source does on first use.
"""

from extpose_sdk.plugins import hookimpl, lazy


@hookimpl
def extpose_register_keypoint_sources(register):
    register(
        "mediapipe",
        lazy("extpose_plugin_mediapipe.source:MediaPipeKeypointSource"),
        "MediaPipe offline detector: part=body (33 landmarks -> coco17) or part=hands (-> openpose_hand21)",
    )
