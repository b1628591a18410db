"""Readers of the official 3DPW, FreiHAND and HO3D layouts, returning the SDK's sample layout.

Build them through the registry (``extpose_sdk.get_registries().dataset.build("3dpw",
root=..., split="test")``) or import the classes from their modules (``threedpw``, ``freihand``,
``ho3d``). ``extpose_sdk.datasets.fixtures`` writes tiny copies of each layout for tests and
examples. See docs/datasets.md for the layouts and where to obtain them.
"""
