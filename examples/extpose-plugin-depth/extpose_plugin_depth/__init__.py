"""ExtPose plugin: a ``depth`` modality, and the synthetic hand set with depth to train it on.

Registered through the ``extpose`` entry point (``pyproject.toml``); importing this module
imports no torch and builds nothing (the factories are ``lazy``):

- modality ``depth`` (``extpose_plugin_depth.modality.DepthModality``): the subject's depth map
  in the crop, relative to its nearest point, background 0; its own 1-channel patch embedding;
- data set ``synthetic-hand-depth`` (``extpose_plugin_depth.synthetic``): the SDK's
  ``synthetic-hand`` with each sample's ``depth`` image, computed from the renderer's face buffer.

Use it by name wherever the SDK takes modalities and data sets, e.g. in a training recipe::

    [model]
    modalities = ["rgb", "skeleton", "depth"]
    [data]
    train = [{ name = "synthetic-hand-depth", options = { ... } }]
"""

from extpose_sdk import hookimpl, lazy


@hookimpl
def extpose_register_modalities(register):
    register("depth", lazy("extpose_plugin_depth.modality:DepthModality"),
             "the subject's depth map in the crop (relative, background 0); own 1-channel "
             "patch embedding")


@hookimpl
def extpose_register_datasets(register):
    register("synthetic-hand-depth", lazy("extpose_plugin_depth.synthetic:synthetic_hand_depth"),
             "synthetic-hand with the hand's rendered depth map per sample (key 'depth')")
