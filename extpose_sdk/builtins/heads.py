"""Built-in heads."""

from extpose_sdk.plugins import hookimpl


@hookimpl
def extpose_register_heads(register):
    pass
