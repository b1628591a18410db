"""Built-in models."""

from extpose_sdk.plugins import hookimpl


@hookimpl
def extpose_register_models(register):
    pass
