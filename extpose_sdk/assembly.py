"""Assembling a ``Pipeline`` from registered components: ``Pipeline.from_plugins(...)``.

    pipeline = Pipeline.from_plugins(model="extpose-hamer", checkpoint="hamer.ckpt",
                                     body_model="MANO_RIGHT.pkl", frames=16)
    pipeline = Pipeline.from_plugins(backbone="timm:vit_small_patch16_224", head="smpl")

A recipe by name, or a backbone and a head joined by ``MeshRecoveryModel``; the modalities, the
body model and the keypoint source are built from the registries too. What the model
reconstructs is its subject (``extpose_sdk.subjects``), read from what the recipe, backbone and
head declare, never from their names; parts that declare different subjects raise
``FitError`` before anything is built.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from extpose_sdk.subjects import Subject, get_subject, subject_of

#: The recipe ``Pipeline.from_plugins()`` builds when given neither a recipe nor components.
DEFAULT_MODEL = "extpose-hamer"
#: ``Pipeline.from_plugins(model=WHOLE_BODY, ...)``: a body and a hand model run as one
#: (``extpose_sdk.whole_body.WholeBodyPipeline``), not a registered recipe.
WHOLE_BODY = "whole-body"


class FitError(ValueError):
    """Components that do not fit together (a hand head on a body recipe, say)."""


def assemble(
    pipeline_class: type,
    model: str | None = None,
    *,
    checkpoint: str | Path | None = None,
    body_model: str | Path | Any | None = None,
    keypoints: Any = None,
    camera: Any = None,
    frames: int | None = None,
    overlap: int | None = None,
    mask: Any = None,
    device: Any = "cpu",
    dtype: Any = None,
    backbone: str | None = None,
    head: str | None = None,
    modalities: Iterable[str] | None = None,
    backbone_options: dict[str, Any] | None = None,
    head_options: dict[str, Any] | None = None,
    seed: int = 0,
    **model_options: Any,
) -> Any:
    """A ``pipeline_class`` (``Pipeline``) from registered components.

    Either a recipe by name (``model="extpose-hamer"``, weights from ``checkpoint``: a file or
    registered weights such as ``"extpose-hamer-synthetic"``, which also choose the recipe; other
    keyword options go to the recipe), or components one by one (``backbone=``, ``head=``,
    ``modalities=``, default RGB + skeleton) joined by ``MeshRecoveryModel``. Components that do
    not fit raise ``FitError``: a hand head with a body recipe, a SMPL file for a hand model.
    With neither a recipe nor components, the recipe is ``extpose-hamer`` (a missing plugin
    names its package). ``frames`` (the window length) defaults to the frames the checkpoint was
    trained with (``extpose train`` records them), else 1. Without a checkpoint the random
    weights come from ``seed``, so two runs give the same results (the global random state is
    left as it was). ``body_model``: a path
    (loaded as the subject's body model) or a module; ``keypoints``: a path or a source;
    ``camera``: the frames' camera (``extpose_sdk.cameras.Camera``, ``Camera.read(path)``, or a
    focal length in pixels), else HMR2.0 / HaMeR's default assumption.

    ``model="whole-body"`` (``WHOLE_BODY``) gives a ``WholeBodyPipeline`` instead: a body and
    a hand model as one (``body=`` / ``hand=`` recipes, ``body_checkpoint=`` /
    ``hand_checkpoint=``, ``smpl=`` / ``mano=`` files; see ``extpose_sdk.whole_body``).
    """
    if model == WHOLE_BODY:
        return _whole_body(checkpoint=checkpoint, body_model=body_model, keypoints=keypoints,
                           camera=camera, frames=frames, overlap=overlap, mask=mask,
                           device=device, dtype=dtype, backbone=backbone, head=head,
                           modalities=modalities, backbone_options=backbone_options,
                           head_options=head_options, seed=seed, **model_options)
    import torch

    from extpose_sdk.checkpoints import checkpoint_config, resolve_weights
    from extpose_sdk.plugins import get_registries

    registries = get_registries()
    weights = resolve_weights(checkpoint, model)
    checkpoint, model = weights.path, weights.model
    if model is None and backbone is None and head is None:
        model = DEFAULT_MODEL
    modality_names = tuple(modalities) if modalities is not None else ("rgb", "skeleton")
    declared = _declared_subjects(registries, model=model, backbone=backbone, head=head)
    if weights.subject is not None:
        declared[f"weights {weights.label!r}"] = get_subject(weights.subject)
        _check_fit(declared)
    if mask is not None:
        model_options["mask"] = mask
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if backbone is not None or head is not None:
            if backbone is None or head is None:
                raise FitError("components one by one need both backbone= and head=")
            if checkpoint is not None:
                raise FitError("checkpoint= loads a named recipe; give model= instead of "
                               "components")
            network = _from_components(registries, backbone, head, modality_names,
                                       backbone_options, head_options, model_options)
            name = f"{backbone}+{head}"
        else:
            network = registries.model.build(model, checkpoint=checkpoint, **model_options)
            name = model
            modality_names = tuple(getattr(network, "modalities", modality_names))
    try:
        subject = subject_of(network, default=next(iter(declared.values()), None))
    except ValueError as error:
        raise FitError(f"{name!r}: {error}") from None
    _check_fit({**declared, name: subject})
    if isinstance(body_model, (str, Path)):
        from extpose_sdk.body_models import load_body_model

        body_model = load_body_model(subject.body_model, body_model)
    if isinstance(keypoints, (str, Path)):
        keypoints = keypoint_source_for(keypoints)
    # what ``extpose train`` recorded beside the weights: the window length and the crop framing
    trained = checkpoint_config(checkpoint)
    pipeline = pipeline_class(
        model=network,
        modalities={m: registries.modality.build(m) for m in modality_names},
        subject=subject,
        body_model=body_model,
        keypoints=keypoints,
        frames=frames if frames is not None else int(trained.get("frames") or 1),
        overlap=overlap,
        name=name,
        random_weights=checkpoint is None,
        weights=weights.label,
        camera=camera,
        dtype=dtype,
        crop_size=_crop_size(network),
        rescale=float(trained["crop_rescale"]) if trained.get("crop_rescale") else None,
    )
    return pipeline.to(device)


def _whole_body(*, checkpoint, body_model, backbone, head, modalities, backbone_options,
                head_options, mask, **options: Any) -> Any:
    """``model="whole-body"``: ``WholeBodyPipeline.from_plugins`` with the options that apply."""
    from extpose_sdk.whole_body import WholeBodyPipeline

    given = [name for name, value in (("checkpoint", checkpoint), ("body_model", body_model),
                                      ("backbone", backbone), ("head", head),
                                      ("modalities", modalities),
                                      ("backbone_options", backbone_options),
                                      ("head_options", head_options)) if value is not None]
    if given:
        raise FitError(f"model={WHOLE_BODY!r} runs two models: give body_checkpoint= / "
                       "hand_checkpoint=, smpl= / mano= and body= / hand= (recipes), not "
                       + ", ".join(f"{name}=" for name in given))
    if mask is not None:
        options["mask"] = mask
    return WholeBodyPipeline.from_plugins(**options)


def _from_components(registries, backbone: str, head: str, modality_names, backbone_options,
                     head_options, model_options):
    from extpose_sdk.model import MeshRecoveryModel, modality_encoders

    vit = registries.backbone.build(backbone, **(backbone_options or {}))
    head_module = registries.head.build(head, context_dim=vit.embed_dim,
                                        token_grid=tuple(vit.grid_size), **(head_options or {}))
    return MeshRecoveryModel(vit, head_module, modalities=modality_names,
                             encoders=modality_encoders(modality_names, vit), **model_options)


def keypoint_source_for(path: str | Path, **options: Any) -> Any:
    """The registered keypoint source that reads ``path``: COCO JSON, OpenPose JSON folder, numpy."""
    from extpose_sdk.plugins import get_registries

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such keypoint file or directory: {path}")
    name = (
        "openpose-json"
        if path.is_dir()
        else ("numpy" if path.suffix in (".npy", ".npz") else "coco-json")
    )
    return get_registries().keypoint_source.build(name, path=path, **options)


def _declared_subjects(registries, **names: str | None) -> dict[str, Subject]:
    """The subjects that the named recipe, backbone and head declared when they registered
    (``register(..., subject="hand")``), keyed by how messages name them."""
    declared = {}
    for kind, name in names.items():
        if name is None:
            continue
        subject = registries[kind].get(name).metadata.get("subject")
        if subject is not None:
            declared[f"{kind} {name!r}" if kind == "head" else repr(name)] = get_subject(subject)
    _check_fit(declared)
    return declared


def _check_fit(subjects: dict[str, Subject]) -> None:
    """A ``FitError`` when the parts of one model (``{what: subject}``) declare different
    subjects; the message starts from the head when there is one."""
    pivot = next((w for w in subjects if w.startswith("head ")), next(iter(subjects), None))
    for what, subject in subjects.items():
        if subject != subjects[pivot]:
            raise FitError(f"{pivot} predicts {subjects[pivot]} but {what} is a {subject} "
                           "model; give components of one subject")


def _crop_size(network) -> int:
    """The side of the square crops ``network`` takes: its backbone's image height (256 for
    ViTPose's 256 x 192, whose central columns it embeds; 128 for a model trained on 128 x 128
    crops with ``extpose train``)."""
    size = getattr(getattr(network, "backbone", None), "img_size", None)
    return int(size[0]) if size is not None else 256
