"""Built-in modalities."""

from extpose_sdk.plugins import hookimpl, lazy


@hookimpl
def extpose_register_modalities(register):
    register(
        "rgb",
        lazy("extpose_sdk.modalities.rgb:RGBModality"),
        "the RGB crop, ImageNet-normalised as the official HMR2.0 / HaMeR preprocessing does",
    )
    register(
        "skeleton",
        lazy("extpose_sdk.modalities.skeleton:SkeletonModality"),
        "2D keypoints drawn as a coloured skeleton image aligned with the RGB crop (ExtPose's second input)",
    )
