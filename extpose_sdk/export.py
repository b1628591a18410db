"""Export a model to ONNX or TorchScript, with a JSON that says how to feed it.

    from extpose_sdk.export import export_model
    result = export_model(model, "hamer.onnx", format="onnx", frames=4)
    result.path, result.spec_path   # hamer.onnx, hamer.json

The exported graph is the network up to the head's parameters; the body model (SMPL / MANO)
stays outside it, since it needs the user's licensed file. Inputs, all float32 except
``present``, with a dynamic batch axis ``B``:

``<modality>`` ``(B, T, C, S, S)``  one normalised square crop per frame (``S``: the crop size,
            256 for the official models; the graph takes the backbone's central columns itself);
``present`` ``(B, T, M)`` bool      which modality images are there (a frame without 2D
            keypoints has no skeleton image: ``False``, and its pixels are ignored).

Outputs ``(B, T, ...)``: ``global_orient (1, 3, 3)`` and ``body_pose (23, 3, 3)`` /
``hand_pose (15, 3, 3)`` rotation matrices, ``betas (10,)``, ``pred_cam`` ``[s, tx, ty]`` and
``pred_cam_t`` (the crop camera as a translation, focal 5000 at crop 256).

The graph computes what ``MeshRecoveryModel.forward`` computes with ``present``, in one fixed
form that exporters can follow: every token runs through the blocks and the attention mask is
the model's mask with absent tokens removed as keys (``ExtendedViT`` instead packs the present
tokens, which gives the same numbers; its packing and the xformers backend depend on the data
and the device, so the graph uses PyTorch SDPA). ``export_model`` checks the exported file
against PyTorch on random crops and records the largest difference in the JSON.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

#: The formats ``export_model`` writes, and the file suffix each is usually given.
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: The ONNX opset the exporter is asked for.
OPSET = 18
#: The largest difference from PyTorch an exported model may show on the check (fp32).
TOLERANCE = 1e-4
BODY_MODEL_NOTE = (
    "The body model (SMPL / MANO) is not in the exported graph: it needs your licensed model "
    "file. Feed global_orient, the pose and betas (rotation matrices, as exported) to it, e.g. "
    "extpose_sdk.body_models.load_body_model(kind, path) or smplx, to get joints and vertices; "
    "move them by pred_cam_t and project with the crop camera (focal 5000 px at a 256 px crop)."
)


class ExportError(ValueError):
    """What was asked cannot be exported; the message says what, why and what to do."""


@attrs.frozen
class ExportResult:
    """What ``export_model`` wrote: the model file, the JSON beside it, and how long it took."""

    path: Path
    spec_path: Path
    spec: dict[str, Any]
    seconds: float


class ExportModule(nn.Module):
    """A ``MeshRecoveryModel`` as a function of plain tensors, for exporters.

    ``forward(*crops, present) -> (global_orient, pose, betas, pred_cam, pred_cam_t)``, each
    ``(B, T, ...)``; ``crops`` one ``(B, T, C, S, S)`` tensor per modality of ``modalities``,
    ``present`` ``(B, T, M)`` bool. ``T`` and the modalities are fixed; ``B`` is free.
    """

    def __init__(self, model: nn.Module, modalities: Sequence[str], frames: int) -> None:
        super().__init__()
        self.model = model
        self.modalities = tuple(modalities)
        self.frames = int(frames)
        self.extended = model._extended_vit()  # the model's own ExtendedViT (no parameters)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *crops, present = inputs
        T, M = self.frames, len(self.modalities)
        shown = present.to(torch.bool)
        tokens = torch.stack(
            [self.extended._embed(name, self.model._backbone_view(x))
             for name, x in zip(self.modalities, crops, strict=True)],
            dim=2,
        )  # (B, T, M, N, D)
        N, D = tokens.shape[-2:]
        T_unit = self.extended.mask.sequence_frames(T)  # frames per attention sequence
        L = T_unit * M * N
        allowed = self.extended.mask.allowed(T_unit, M, N).to(tokens.device)  # (L, L)
        key_shown = shown.reshape(-1, T_unit, M, 1).expand(-1, T_unit, M, N).reshape(-1, 1, 1, L)
        out = self.extended._run_blocks(tokens.reshape(-1, L, D), allowed & key_shown)
        out = out.reshape(-1, T, M, N, D) * shown[..., None, None].to(out.dtype)
        context = out.reshape(-1, M * N, D)
        valid = shown.reshape(-1, M, 1).expand(-1, M, N).reshape(-1, M * N)
        params = self.model.head(context, valid)
        from extpose_sdk.cameras import FOCAL_LENGTH, crop_cam_to_translation
        from extpose_sdk.data.sample import CROP_SIZE

        pose = getattr(params, self.model.subject.pose_key)
        cam_t = crop_cam_to_translation(params.pred_cam, focal_length=FOCAL_LENGTH,
                                        crop_size=CROP_SIZE)
        values = (params.global_orient, pose, params.betas, params.pred_cam, cam_t)
        return tuple(v.reshape(-1, T, *v.shape[1:]) for v in values)


def output_names(model: nn.Module) -> tuple[str, ...]:
    """The exported outputs, in order (the pose is ``body_pose`` or ``hand_pose``)."""
    return ("global_orient", model.subject.pose_key, "betas", "pred_cam", "pred_cam_t")


def export_model(
    model: nn.Module,
    out: str | Path,
    *,
    format: str = "onnx",
    frames: int = 1,
    modalities: Sequence[str] | None = None,
    overwrite: bool = False,
    checkpoint_config: dict[str, Any] | None = None,
    weights: str = "",
    model_name: str = "",
    check: bool = True,
) -> ExportResult:
    """Write ``model`` (a ``MeshRecoveryModel``) to ``out`` as ``format`` (``onnx`` or
    ``torchscript``) for clips of ``frames`` frames of ``modalities`` (default: the model's),
    any batch size, and the JSON beside it (``out`` with suffix ``.json``).

    ``checkpoint_config``: the JSON of the weights the model was built from (its ``crop_rescale``
    goes into the preprocessing). With ``check``, the exported file is run once (ONNX Runtime
    when installed, or TorchScript) and compared with PyTorch; a difference above ``TOLERANCE``
    is an ``ExportError``. Nothing is overwritten unless ``overwrite``.
    """
    fmt, out, spec_path = _check_request(format, out, overwrite)
    names = _check_model(model, modalities, frames)
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    module = ExportModule(model.cpu().float().eval(), names, frames).eval()
    example = example_inputs(model, names, frames, batch=2)
    started = time.perf_counter()
    with _sdpa_attention(model), torch.no_grad():
        if fmt == "onnx":
            files = _export_onnx(module, example, out, names, output_names(model))
        else:
            files = _export_torchscript(module, example, out)
    seconds = time.perf_counter() - started
    spec = export_spec(model, names, frames, fmt, checkpoint_config or {}, weights=weights,
                       model_name=model_name)
    spec["files"] = [p.name for p in files]
    if check:
        spec["check"] = _check_exported(module, out, fmt, model, names, frames)
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    return ExportResult(path=out, spec_path=spec_path, spec=spec, seconds=seconds)


def example_inputs(model: nn.Module, modalities: Sequence[str], frames: int, batch: int = 2,
                   seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random crops ``(batch, frames, C, S, S)`` per modality and ``present`` all True."""
    size = crop_size(model)
    generator = torch.Generator().manual_seed(seed)
    crops = tuple(
        torch.randn(batch, frames, model._channels(name) or 3, size, size, generator=generator)
        for name in modalities
    )
    return (*crops, torch.ones(batch, frames, len(modalities), dtype=torch.bool))


def crop_size(model: nn.Module) -> int:
    """The side of the square crops the model takes: its backbone's image height."""
    return int(model.backbone.img_size[0])


def export_spec(model: nn.Module, modalities: Sequence[str], frames: int, fmt: str,
                checkpoint_config: dict[str, Any], *, weights: str = "",
                model_name: str = "") -> dict[str, Any]:
    """The JSON written beside an exported file: inputs, outputs and preprocessing."""
    from extpose_sdk.plugins import get_registries

    size, subject = crop_size(model), model.subject
    registry = get_registries().modality
    inputs = [
        {"name": name, "shape": ["batch", frames, model._channels(name) or 3, size, size],
         "dtype": "float32",
         "description": f"normalised {name} crops, one per frame (channels first)"}
        for name in modalities
    ]
    inputs.append({"name": "present", "shape": ["batch", frames, len(modalities)],
                   "dtype": "bool",
                   "description": f"which images are there, per frame, in the order "
                   f"{list(modalities)}; an absent image's pixels are ignored (zeros will do)"})
    descriptions = {
        "global_orient": "root rotation matrix",
        subject.pose_key: f"joint rotation matrices ({subject.body_model.upper()} order, root "
                          "apart)",
        "betas": "shape coefficients",
        "pred_cam": "weak-perspective crop camera [s, tx, ty]",
        "pred_cam_t": "the crop camera as a translation [tx, ty, 2 * 5000 / (256 * s)] "
                      "(extpose_sdk.cameras.crop_cam_to_translation); for the full image use "
                      "extpose_sdk.cameras.cam_crop_to_full with the crop's box",
    }
    with torch.no_grad():  # the output shapes as the model makes them
        values = ExportModule(model, modalities, frames)(*example_inputs(model, modalities, frames, 1))
    outputs = [
        {"name": name, "shape": ["batch", *value.shape[1:]], "dtype": _dtype_name(value),
         "description": descriptions[name]}
        for name, value in zip(output_names(model), values, strict=True)
    ]
    rescale = checkpoint_config.get("crop_rescale")
    preprocessing = {
        "crop_size": size,
        "backbone_input": list(model.backbone.img_size),
        "backbone_columns": "the graph takes the central columns of each crop itself",
        "crop": "extpose_sdk.data.crops.make_crop (the official HMR2.0 / HaMeR square crop "
                "around the box, cv2.warpAffine, INTER_LINEAR, border 0)",
        "crop_rescale": float(rescale) if rescale else subject.crop_rescale,
        "crop_rescale_source": "checkpoint" if rescale else f"subject {subject.name} default",
        "mirror_left": subject.mirror_left,
        "frames": frames,
        "modalities": {name: _modality_spec(registry, name, subject) for name in modalities},
        "mask": str(getattr(model, "mask", "frame")),
        "layout": "inputs[name][b, t] is frame t of clip b; frames in time order",
    }
    return {
        "format": fmt,
        "model": model_name,
        "weights": weights or None,
        "subject": subject.name,
        "inputs": inputs,
        "outputs": outputs,
        "preprocessing": preprocessing,
        "body_model": {"included": False, "kind": subject.body_model,
                       "pose_key": subject.pose_key, "note": BODY_MODEL_NOTE},
        "attention": "PyTorch SDPA with the mask (xformers and token packing are not exported)",
        "exported_with": {"torch": torch.__version__,
                          **({"opset": OPSET} if fmt == "onnx" else {})},
    }


def _dtype_name(value: torch.Tensor) -> str:
    return str(value.dtype).removeprefix("torch.")


def _modality_spec(registry, name: str, subject) -> dict[str, Any]:
    """How to make the images of modality ``name``: normalisation and, for the skeleton image,
    its layout, colours and drawing options (read from the registered modality)."""
    from extpose_sdk.modalities import IMAGENET_MEAN, IMAGENET_STD

    modality = registry.build(name)
    channels = getattr(modality, "channels", 3)
    mean = IMAGENET_MEAN[:channels] if getattr(modality, "mean", None) is None else modality.mean
    std = IMAGENET_STD[:channels] if getattr(modality, "std", None) is None else modality.std
    spec: dict[str, Any] = {
        "channels": channels,
        "channel_order": "RGB" if channels == 3 else None,
        "normalise": "(pixel - mean) / std, pixels in 0..255, then channels first",
        "mean": [round(float(v), 4) for v in mean],
        "std": [round(float(v), 4) for v in std],
        "made_by": f"{type(modality).__module__}.{type(modality).__name__}",
    }
    renderer_options = getattr(modality, "renderer_options", None)
    if renderer_options is not None:  # the skeleton image
        import inspect

        from extpose_sdk.keypoints.layouts import get_layout
        from extpose_sdk.modalities.skeleton import SkeletonRenderer

        defaults = {p.name: p.default for p in inspect.signature(SkeletonRenderer).parameters.values()
                    if p.default is not inspect.Parameter.empty and p.name != "size"}
        layout = get_layout(getattr(modality, "layout", None) or subject.detector_layout)
        spec["skeleton"] = {
            "drawn_by": "extpose_sdk.modalities.skeleton.SkeletonRenderer",
            "layout": layout.name,
            "layout_source": "the layout of the keypoints you give (trained with "
                             f"{subject.detector_layout}, the {subject.name} detector's)",
            "keypoints": list(layout.names),
            "limbs": [list(limb) for limb in layout.limbs],
            "limb_colours": [list(c) for c in layout.limb_colours],
            "joint_colours": [list(c) for c in layout.joint_colours],
            "background": [0, 0, 0],
            **{k: v for k, v in {**defaults, **renderer_options}.items()},
            "scale": "limb_width and joint_radius are pixels at a 256 px crop, scaled with it",
        }
    return spec


# -- steps of export_model ------------------------------------------------------------------


def _check_request(format: str, out: str | Path, overwrite: bool) -> tuple[str, Path, Path]:
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; available: {', '.join(FORMATS)} "
                          "(e.g. --format onnx)")
    out = Path(out)
    if out.suffix == ".json":
        raise ExportError(f"--out {out} ends in .json, which is the name of the JSON written "
                          f"beside the model; give e.g. {out.with_suffix(FORMATS[format])}")
    spec_path = out.with_suffix(".json")
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give a file path, e.g. "
                          f"{out / ('model' + FORMATS[format])}")
    existing = [str(p) for p in (out, spec_path) if p.exists()]
    if existing and not overwrite:
        raise ExportError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                          "pass --overwrite to replace, or choose another --out")
    return format, out, spec_path


def _check_model(model: nn.Module, modalities: Sequence[str] | None, frames: int) -> tuple[str, ...]:
    from extpose_sdk.model import MeshRecoveryModel

    if not isinstance(model, MeshRecoveryModel):
        raise ExportError(f"export takes a MeshRecoveryModel (the SDK's registered recipes); got "
                          f"{type(model).__name__}, whose forward the exporter cannot follow")
    if not isinstance(frames, int) or frames < 1:
        raise ExportError(f"--frames must be 1 or more, got {frames}")
    names = tuple(model.modalities) if not modalities else tuple(modalities)
    unknown = [name for name in names if name not in model.modalities]
    if unknown or len(set(names)) != len(names):
        raise ExportError(f"--modalities {','.join(names)}: this model takes "
                          f"{','.join(model.modalities)} (each at most once); choose among them")
    if model.body_model is not None:
        raise ExportError("the model has a body model attached; the body model stays outside the "
                          "exported graph (it needs your licensed file): detach it with "
                          "model.set_body_model(None) and run it on the exported outputs")
    return tuple(name for name in model.modalities if name in names)  # the model's token order


@contextlib.contextmanager
def _sdpa_attention(model: nn.Module) -> Iterator[None]:
    """The backbone's attention on PyTorch SDPA while exporting (xformers is not exportable)."""
    from extpose_sdk.vit import Attention

    modules = [m for m in model.modules() if isinstance(m, Attention)]
    before = [m.backend for m in modules]
    for m in modules:
        m.backend = "sdpa"
    try:
        yield
    finally:
        for m, backend in zip(modules, before, strict=True):
            m.backend = backend


def _export_onnx(module, example, out: Path, names, outputs) -> list[Path]:
    try:
        import onnxscript  # noqa: F401 - torch's exporter needs it
    except ImportError:
        raise ExportError("--format onnx needs the onnx and onnxscript packages: pip install "
                          "'extpose-sdk[export]'") from None
    import warnings

    batch = torch.export.Dim("batch", min=1, max=4096)
    input_names = [*names, "present"]
    dynamic = {"inputs": tuple({0: batch} for _ in input_names)}
    for path in (out, out.with_name(out.name + ".data")):
        path.unlink(missing_ok=True)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(_Discard()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, example, dynamo=True, dynamic_shapes=dynamic,
                                        input_names=input_names, output_names=list(outputs),
                                        opset_version=OPSET, external_data=False, optimize=True)
            program.save(str(out), external_data=_needs_external_data(module))
    except Exception as error:  # noqa: BLE001 - the exporter raises many kinds
        raise ExportError(f"torch.onnx could not export this model ({type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''}); try --format "
                          "torchscript, or run with EXTPOSE_DEBUG=1 and report it") from error
    data = out.with_name(out.name + ".data")
    return [out, data] if data.exists() else [out]


def _needs_external_data(module: nn.Module) -> bool:
    """ONNX files hold at most 2 GB; bigger weights (ViT-H in fp32) go to ``FILE.data`` beside."""
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    size += sum(b.numel() * b.element_size() for b in module.buffers())
    return size > 1_800_000_000


def _export_torchscript(module, example, out: Path) -> list[Path]:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
            traced = torch.jit.trace(module, example, check_trace=False, strict=False)
        traced.save(str(out))
    except Exception as error:  # noqa: BLE001
        raise ExportError(f"torch.jit.trace could not export this model ({type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''}); try --format "
                          "onnx, or run with EXTPOSE_DEBUG=1 and report it") from error
    return [out]


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def run_exported(path: str | Path, inputs: Sequence[torch.Tensor], fmt: str | None = None
                 ) -> list[torch.Tensor]:
    """Run an exported file on ``inputs`` (CPU): ONNX Runtime for ``.onnx``, else TorchScript."""
    path = Path(path)
    fmt = fmt or ("onnx" if path.suffix == ".onnx" else "torchscript")
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
        return [torch.from_numpy(a) for a in session.run(None, feed)]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still works
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return list(loaded(*inputs))


def reference_outputs(model: nn.Module, modalities: Sequence[str], inputs: Sequence[torch.Tensor]
                      ) -> list[torch.Tensor]:
    """What the PyTorch model gives for the exported inputs, in the exported outputs' order."""
    *crops, present = inputs
    with torch.no_grad():
        output = model(dict(zip(modalities, crops, strict=True)),
                       present={name: present[..., i] for i, name in enumerate(modalities)})
    return [getattr(output, name) for name in output_names(model)]


def _check_exported(module, out: Path, fmt: str, model, names, frames: int) -> dict[str, Any]:
    """Run the exported file at two batch sizes (one with an absent image) against PyTorch."""
    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return {"checked": False, "why": "onnxruntime is not installed"}
    worst = 0.0
    for batch, seed in ((1, 1), (3, 2)):
        inputs = example_inputs(model, names, frames, batch=batch, seed=seed)
        if batch > 1:
            inputs[-1][0, 0, -1] = False  # an absent image: the mask path is exercised
        worst = max(worst, difference(run_exported(out, inputs, fmt),
                                      reference_outputs(model, names, inputs)))
    if not worst <= TOLERANCE:
        raise ExportError(f"the exported {fmt} model differs from PyTorch by {worst:.3g} (more "
                          f"than {TOLERANCE:g}); this is a bug, please report it with "
                          "EXTPOSE_DEBUG=1")
    runner = "onnxruntime" if fmt == "onnx" else "torch.jit"
    return {"checked": True, "runtime": runner, "batch_sizes": [1, 3],
            "max_diff": worst, "tolerance": TOLERANCE,
            "compared": "absolute; relative to values above 1 (pred_cam_t's depth, 2 * 5000 / "
                        "(256 * s), grows without bound as s -> 0)"}


def difference(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor]) -> float:
    """The largest ``|got - want|`` over the outputs, relative to ``|want|`` where that is above
    1 (float32 keeps about 7 digits: a depth of 10^4 is exact to 10^-3, not 10^-4)."""
    return max(float(((g - w).abs() / w.abs().clamp(min=1.0)).max())
               for g, w in zip(got, want, strict=True))
