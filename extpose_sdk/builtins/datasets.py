"""Built-in datasets."""

from extpose_sdk.plugins import hookimpl


@hookimpl
def extpose_register_datasets(register):
    pass
