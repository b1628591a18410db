"""``extpose export`` and ``extpose_sdk.export``: ONNX Runtime and TorchScript round trips of a tiny
model (T = 1 and 4, RGB + skeleton, two batch sizes, absent images), the JSON beside the file, and
the errors for what cannot be exported."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
import torch

import extpose_sdk
from extpose_sdk import cli, plugins
from extpose_sdk.checkpoints import save_extpose_checkpoint
from extpose_sdk.export import (
    ExportError,
    example_inputs,
    export_model,
    reference_outputs,
    run_exported,
)
from extpose_sdk.keypoints.layouts import get_layout
from extpose_sdk.modalities import IMAGENET_MEAN, IMAGENET_STD

pytest.importorskip("onnxruntime", reason="the test extra installs onnx and onnxruntime")
pytest.importorskip("onnxscript", reason="the test extra installs onnxscript")

TINY = dict(embed_dim=32, depth=1, num_heads=2, head_dim=32, head_depth=1, head_heads=2,
            head_dim_head=8, head_mlp_dim=16, img_size=(64, 48))
TINY_ARGS = [arg for key, value in TINY.items()
             for arg in ("--option", f"{key}={value!r}".replace(" ", ""))]
MODALITIES = ("rgb", "skeleton")
OUTPUTS = ("global_orient", "hand_pose", "betas", "pred_cam", "pred_cam_t")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return extpose_sdk.load_model("extpose-hamer", **TINY)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """``(format, T) -> ExportResult``, each exported once for the module."""
    folder, done = tmp_path_factory.mktemp("export"), {}

    def get(fmt: str, frames: int):
        if (fmt, frames) not in done:
            out = folder / f"tiny-{fmt}-T{frames}.{'onnx' if fmt == 'onnx' else 'pt'}"
            done[fmt, frames] = export_model(model, out, format=fmt, frames=frames,
                                             model_name="extpose-hamer")
        return done[fmt, frames]

    return get


@pytest.mark.parametrize("frames", [1, 4])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_exported_model_gives_pytorchs_outputs_at_any_batch_size(model, exported, fmt, frames):
    result = exported(fmt, frames)
    assert result.path.is_file() and result.spec_path.is_file()
    for batch, seed in ((1, 10), (5, 11)):  # two batch sizes: the batch axis is dynamic
        inputs = example_inputs(model, MODALITIES, frames, batch=batch, seed=seed)
        got = run_exported(result.path, inputs)
        want = reference_outputs(model, MODALITIES, inputs)
        assert [tuple(g.shape) for g in got] == [
            (batch, frames, 1, 3, 3), (batch, frames, 15, 3, 3), (batch, frames, 10),
            (batch, frames, 3), (batch, frames, 3)]
        for g, w in zip(got, want, strict=True):
            assert g.dtype == torch.float32
            assert float((g - w).abs().max()) <= 1e-4
    assert result.spec["check"]["checked"] and result.spec["check"]["max_diff"] <= 1e-4


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_absent_images_are_ignored_as_in_pytorch(model, exported, fmt):
    """``present`` False: the image's pixels change nothing, and the outputs are PyTorch's with
    that modality absent (a frame without keypoints, a clip without any)."""
    result = exported(fmt, 4)
    inputs = example_inputs(model, MODALITIES, 4, batch=3, seed=5)
    present = inputs[-1]
    present[0, :, 1] = False  # clip 0: no skeleton at all
    present[1, 2, 1] = False  # clip 1: frame 2 has no skeleton
    present[2, 0, 0] = False  # clip 2: frame 0 has no RGB
    got = run_exported(result.path, inputs)
    want = reference_outputs(model, MODALITIES, inputs)
    for g, w in zip(got, want, strict=True):
        assert float((g - w).abs().max()) <= 1e-4
    noisy = (inputs[0], inputs[1] + 100.0 * ~present[..., 1, None, None, None], present)
    for g, w in zip(run_exported(result.path, noisy), got, strict=True):
        assert float((g - w).abs().max()) <= 1e-5
    rgb_only = reference_outputs(model, ("rgb",), (inputs[0][:1], present[:1, :, :1]))
    for g, w in zip(got, rgb_only, strict=True):
        assert float((g[:1] - w).abs().max()) <= 1e-4


def test_the_onnx_file_has_a_dynamic_batch_axis_and_the_jsons_names(exported):
    import onnx

    result = exported("onnx", 4)
    graph = onnx.load(str(result.path)).graph
    spec = result.spec
    assert [i.name for i in graph.input] == [i["name"] for i in spec["inputs"]]
    assert [o.name for o in graph.output] == [o["name"] for o in spec["outputs"]] == list(OUTPUTS)
    for value, described in zip(graph.input, spec["inputs"], strict=True):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param and not dims[0].dim_value  # symbolic: any batch size
        assert [d.dim_value for d in dims[1:]] == described["shape"][1:]
    assert spec["files"] == [result.path.name]


def test_the_json_says_how_to_feed_the_model(exported):
    spec = json.loads(exported("onnx", 4).spec_path.read_text())
    assert [(i["name"], i["shape"], i["dtype"]) for i in spec["inputs"]] == [
        ("rgb", ["batch", 4, 3, 64, 64], "float32"),
        ("skeleton", ["batch", 4, 3, 64, 64], "float32"),
        ("present", ["batch", 4, 2], "bool"),
    ]
    assert {o["name"]: o["shape"] for o in spec["outputs"]} == {
        "global_orient": ["batch", 4, 1, 3, 3], "hand_pose": ["batch", 4, 15, 3, 3],
        "betas": ["batch", 4, 10], "pred_cam": ["batch", 4, 3], "pred_cam_t": ["batch", 4, 3]}
    pre = spec["preprocessing"]
    assert (pre["crop_size"], pre["backbone_input"], pre["frames"]) == (64, [64, 48], 4)
    assert (pre["crop_rescale"], pre["crop_rescale_source"]) == (2.0, "subject hand default")
    assert pre["mirror_left"] is True and pre["mask"] == "paper"
    assert list(pre["modalities"]) == ["rgb", "skeleton"]
    for modality in pre["modalities"].values():
        assert modality["mean"] == pytest.approx(IMAGENET_MEAN.tolist(), abs=1e-3)
        assert modality["std"] == pytest.approx(IMAGENET_STD.tolist(), abs=1e-3)
    skeleton = pre["modalities"]["skeleton"]["skeleton"]
    layout = get_layout("openpose_hand21")
    assert skeleton["layout"] == "openpose_hand21"
    assert skeleton["limbs"] == [list(limb) for limb in layout.limbs]
    assert skeleton["limb_colours"] == [list(c) for c in layout.limb_colours]
    assert skeleton["joint_colours"] == [list(c) for c in layout.joint_colours]
    assert (skeleton["limb_width"], skeleton["joint_radius"], skeleton["threshold"]) == (4.0, 4.0, 0.3)
    assert "skeleton" not in pre["modalities"]["rgb"]
    assert spec["body_model"]["included"] is False and spec["body_model"]["kind"] == "mano"
    assert "licensed" in spec["body_model"]["note"]
    assert spec["subject"] == "hand" and spec["model"] == "extpose-hamer"


def test_a_subset_of_the_modalities_exports_rgb_only(model, tmp_path):
    result = export_model(model, tmp_path / "rgb.pt", format="torchscript", frames=1,
                          modalities=["rgb"])
    assert [i["name"] for i in result.spec["inputs"]] == ["rgb", "present"]
    inputs = example_inputs(model, ("rgb",), 1, batch=2, seed=3)
    for g, w in zip(run_exported(result.path, inputs),
                    reference_outputs(model, ("rgb",), inputs), strict=True):
        assert float((g - w).abs().max()) <= 1e-4


# -- the command ---------------------------------------------------------------------------


def test_the_command_exports_and_never_overwrites_silently(tmp_path, capsys):
    out = tmp_path / "tiny.pt"
    argv = ["export", "extpose-hamer", "--format", "torchscript", "--frames", "2",
            "--modalities", "rgb,skeleton", "--out", str(out), *TINY_ARGS]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "tiny.pt" in printed and "largest difference from PyTorch" in printed
    assert "random weights" in printed and "body model" in printed
    spec = json.loads(out.with_suffix(".json").read_text())
    assert spec["inputs"][0]["shape"] == ["batch", 2, 3, 64, 64]
    before = out.read_bytes()

    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "already exist" in err and "--overwrite" in err and "Traceback" not in err
    assert out.read_bytes() == before

    out.unlink()  # the JSON alone is not overwritten either
    assert cli.main(argv) == 1 and "tiny.json" in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite"]) == 0


def test_the_command_reads_weights_by_file_and_by_name(model, tmp_path, capsys):
    """``--checkpoint`` takes a file or registered weights; their JSON gives the frames and the
    crop rescale the model was trained with."""
    weights = tmp_path / "paws.safetensors"
    save_extpose_checkpoint(model, weights, {"model": "extpose-hamer", "options": TINY,
                                             "modalities": list(MODALITIES), "frames": 3,
                                             "crop_rescale": 1.5})
    plugin = types.ModuleType("paws_export_plugin")

    def extpose_register_weights(register):
        register("tiny-paws", lambda: weights, "tiny paws", model="extpose-hamer", subject="hand")

    plugin.extpose_register_weights = plugins.hookimpl(extpose_register_weights)
    extpose_sdk.register_plugin(plugin)
    try:
        for checkpoint, name in ((str(weights), "file.pt"), ("tiny-paws", "named.pt")):
            out = tmp_path / name
            assert cli.main(["export", "--checkpoint", checkpoint, "--format", "torchscript",
                             "--out", str(out)]) == 0
            spec = json.loads(out.with_suffix(".json").read_text())
            assert spec["preprocessing"]["frames"] == 3
            assert spec["preprocessing"]["crop_rescale"] == 1.5
            assert spec["preprocessing"]["crop_rescale_source"] == "checkpoint"
            assert spec["weights"] == checkpoint and spec["model"] == "extpose-hamer"
            inputs = example_inputs(model, MODALITIES, 3, batch=2, seed=7)
            for g, w in zip(run_exported(out, inputs), reference_outputs(model, MODALITIES, inputs),
                            strict=True):
                assert float((g - w).abs().max()) <= 1e-4  # the saved weights, not random ones
        assert "random weights" not in capsys.readouterr().out
    finally:
        extpose_sdk.unregister_plugin(plugin)


@pytest.mark.parametrize("extra, message", [
    (["--format", "tflite"], "unknown export format 'tflite'; available: onnx, torchscript"),
    (["--modalities", "rgb,depth"], "this model takes rgb,skeleton"),
    (["--frames", "0"], "--frames must be 1 or more"),
    (["--option", "frames=2"], "give --frames instead"),
])
def test_the_command_names_what_cannot_be_exported(tmp_path, capsys, extra, message):
    out = tmp_path / "m.onnx"
    assert cli.main(["export", "extpose-hamer", "--out", str(out), *TINY_ARGS, *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_errors_for_what_cannot_be_exported(model, tmp_path):
    with pytest.raises(ExportError, match="is a folder; give a file path"):
        export_model(model, tmp_path, format="onnx")
    with pytest.raises(ExportError, match=r"ends in \.json.*give e\.g\..*m\.onnx"):
        export_model(model, tmp_path / "m.json", format="onnx")
    with pytest.raises(ExportError, match="export takes a MeshRecoveryModel.*Linear"):
        export_model(torch.nn.Linear(2, 2), tmp_path / "m.onnx")
    with pytest.raises(ExportError, match="each at most once"):
        export_model(model, tmp_path / "m.onnx", modalities=["rgb", "rgb"])
    model.set_body_model(torch.nn.Identity())
    try:
        with pytest.raises(ExportError, match="body model stays outside.*set_body_model\\(None\\)"):
            export_model(model, tmp_path / "m.onnx")
    finally:
        model.set_body_model(None)
    assert not list(tmp_path.iterdir())


def test_an_exporter_failure_names_the_format_and_the_way_out(model, tmp_path, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::weird")

    monkeypatch.setattr(torch.jit, "trace", fails)
    with pytest.raises(ExportError, match=r"torch\.jit\.trace could not export this model "
                       r"\(RuntimeError: unsupported operator aten::weird\); try --format onnx"):
        export_model(model, tmp_path / "m.pt", format="torchscript")


def test_a_plain_import_and_the_command_line_pull_in_no_exporter():
    code = ("import sys, extpose_sdk; from extpose_sdk import cli; cli.build_parser(); "
            "print([m for m in ('onnx', 'onnxruntime', 'onnxscript') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
