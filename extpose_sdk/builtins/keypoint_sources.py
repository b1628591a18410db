"""Built-in keypoint sources."""

from extpose_sdk.plugins import hookimpl


@hookimpl
def extpose_register_keypoint_sources(register):
    pass
