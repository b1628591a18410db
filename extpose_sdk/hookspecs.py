"""The whole extension surface of ExtPose: one pluggy hook specification per kind of component.

A plugin is a module or object with functions decorated by ``extpose_sdk.hookimpl`` whose names
match the specifications below. Installed packages announce plugins through the entry-point group
``extpose``::

    [project.entry-points.extpose]
    myplugin = "my_package.extpose_plugin"

Every hook receives one argument, ``register``, a callback with the signature::

    register(name, factory, description="", **metadata)

``factory`` is a callable that *builds* the component when asked; importing a plugin or calling
its hook must never allocate a model or read a file. ``description`` is one line shown by
``extpose plugins``. ``metadata`` is data about the component: ``example="..."`` (shown by
``extpose plugins``) and, for backbones, heads and model recipes, ``subject="body"`` /
``"hand"`` (``extpose_sdk.subjects``): what it reconstructs, checked by ``Pipeline.from_plugins``
before anything is built; for data sets, ``data_version=N``: raise it when what a name and its
options produce changes, so that caches written from the old data are refused. A ``name`` ending
in ``"*"`` (``"timm:*"``) declares a *family*: any name with that prefix resolves to it, and the
factory receives the rest of the name as its first positional argument
(``factory("vit_small_patch16_224", **kwargs)``).

Hooks are called once per plugin when the registries are built (at the first
``extpose_sdk.get_registries()`` after plugins change); built-in components come in through these
same hooks, registered before any third-party plugin. Two plugins registering one name is an
error that names both.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "extpose"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def extpose_register_backbones(register):
    """Register ViT backbones.

    The factory takes keyword options (sizes, ``weights=PATH``...) and returns an
    ``extpose_sdk.vit.BaseViT``: a module exposing patch + position embedding (``embed``), the
    transformer ``blocks`` (each called as ``block(tokens, attn_mask=...)``), the final ``norm``,
    and the geometry attributes (``img_size``, ``patch_size``, ``grid_size``, ``embed_dim``,
    ``num_prefix_tokens``). Any backbone honouring that interface can be extended by ExtPose
    with no change.
    """


@hookspec
def extpose_register_modalities(register):
    """Register input modalities (``rgb``, ``skeleton``, a plugin's ``depth``...).

    The factory takes keyword options and returns an ``extpose_sdk.modalities.Modality``: it
    knows its name and how to turn one crop's raw evidence (an image crop, 2D keypoints with the
    crop transform, ...) into a normalised ``(C, H, W)`` float tensor, of any channel count C.
    Its ``encoder(vit)`` says how that image becomes tokens: ``None`` shares the ViT's own patch
    and position embedding (zero new parameters; C must be the ViT's), or a module of its own
    (``extpose_sdk.modalities.encoders.PatchEncoder``) whose parameters are reported as added.
    A modality whose evidence is not an RGB crop with 2D keypoints (a depth map in
    ``CropEvidence.extras``) also gives ``example_evidence(size)``: a ``CropEvidence`` of that
    (H, W) it is available from, which the SDK's meta-test forwards.
    """


@hookspec
def extpose_register_heads(register):
    """Register prediction heads (``smpl``, ``mano``...).

    The factory is called as ``factory(context_dim=D, token_grid=(h, w), **options)`` and returns
    a ``torch.nn.Module`` mapping one frame's context tokens ``(B, N, D)`` (all present
    modalities of that frame, concatenated) to an attrs result of parameters (rotation
    matrices, shape, crop camera). The module declares what it predicts as its ``subject``
    attribute (an ``extpose_sdk.subjects.Subject``: ``BODY``, ``HAND`` or the plugin's own);
    everything downstream (pipeline, engine, evaluation) reads it from there.
    """


@hookspec
def extpose_register_keypoint_sources(register):
    """Register sources of 2D keypoints (file formats, detectors).

    The factory takes keyword options (a path, a model choice) and returns an object whose
    ``__call__`` yields ``extpose_sdk.keypoints.Keypoints`` per frame: an array ``(N, K, 3)`` of
    full-image pixel coordinates with confidence, the name of its keypoint layout, and boxes.
    A detector also has ``detect(image, frame=None) -> Keypoints`` for one RGB uint8 image,
    takes ``layout=`` (the layout wanted: ``coco17`` for bodies, ``openpose_hand21`` for hands),
    and may have ``load()``, which raises ImportError naming what to install. ``Pipeline`` runs
    the one its ``detector`` names (``mediapipe`` by default) on each frame given neither
    keypoints nor boxes.
    """


@hookspec
def extpose_register_datasets(register):
    """Register data sets (3DPW, FreiHAND, HO3D, synthetic, a user's own layout).

    The factory is called as ``factory(root=PATH, split=..., **options)`` and returns a
    ``torch.utils.data.Dataset`` of samples (or clips of T frames) in the SDK's sample layout.
    It must fail with a message naming the missing file when ``root`` is not the expected layout.
    """


@hookspec
def extpose_register_weights(register):
    """Register trained weights that ship with a package (``extpose-hamer-synthetic``...).

    The factory is called with no arguments and returns the path of a ``.safetensors`` file
    with its ``.json`` beside it (as ``extpose train`` writes them); it must not read the file.
    Register with ``model="extpose-hamer"`` (the recipe the weights are for) and ``subject=``.
    The name then goes wherever a checkpoint path goes:
    ``Pipeline.from_plugins(checkpoint="extpose-hamer-synthetic")``,
    ``extpose predict --checkpoint extpose-hamer-synthetic``; it is loaded through the same
    safe reader as any checkpoint, and results name it.
    """


@hookspec
def extpose_register_models(register):
    """Register model recipes: complete, named models (``hmr2``, ``extpose-hamer``...).

    The factory is called by ``extpose_sdk.load_model(name, checkpoint=..., **options)`` as
    ``factory(checkpoint=PATH_or_None, **options)`` and returns a ready ``torch.nn.Module``.
    A recipe typically combines a registered backbone, modalities and head, and knows how to
    read its checkpoints. Register it with ``subject="body"`` / ``"hand"`` so that what it
    reconstructs is known before it is built; the built model's ``subject`` (its head's) must
    agree. ``checkpoint_extras=("discriminator.", ...)`` names the state-dict prefixes its
    official checkpoints hold beyond the model (skipped on loading and by
    ``extpose convert checkpoint``).
    """
