"""Sub-commands of the ``extpose`` command, one module each (see ``extpose_sdk.cli``)."""
