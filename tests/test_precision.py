"""The number format of inference: fp32 by default, bf16 where the hardware has it, clear errors
elsewhere; the body model stays in float32 whatever the model runs in."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from extpose_sdk import precision

TINY = dict(embed_dim=32, depth=1, num_heads=2, head_dim=32, head_depth=1, head_heads=2,
            head_dim_head=8, head_mlp_dim=16)


def test_names_resolve_to_dtypes_and_auto_follows_the_hardware(monkeypatch):
    assert precision.resolve_dtype("fp32", "cpu") is torch.float32
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: True)
    assert precision.resolve_dtype("auto", "cpu") is torch.bfloat16
    assert precision.resolve_dtype("bf16", "cpu") is torch.bfloat16
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: False)
    assert precision.resolve_dtype("auto", "cpu") is torch.float32
    with pytest.raises(ValueError, match="no native bf16 .* use fp32, or auto"):
        precision.resolve_dtype("bf16", "cpu")
    with pytest.raises(ValueError, match="fp16 runs on GPUs only"):
        precision.resolve_dtype("fp16", "cpu")
    with pytest.raises(ValueError, match="unknown dtype 'fp8'; available: auto, fp32, bf16, fp16"):
        precision.resolve_dtype("fp8", "cpu")


def test_the_cpu_check_is_onednns():
    assert precision.bf16_is_native("cpu") == torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert precision.bf16_is_native("meta") is False


def test_a_bf16_model_keeps_a_float32_body_model_and_close_results():
    from extpose_sdk import Pipeline
    from extpose_sdk.datasets.synthetic import synthetic_model_path

    image = np.full((240, 320, 3), 120, np.uint8)
    image[80:150, 120:170] = 200
    boxes = np.array([[100.0, 60.0, 180.0, 160.0]])
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)
        pipeline = Pipeline.from_plugins(model="extpose-hamer", dtype=dtype,
                                         body_model=str(synthetic_model_path("hand")), **TINY)
        assert next(pipeline.model.parameters()).dtype is dtype
        assert {b.dtype for b in pipeline.body_model.buffers() if b.is_floating_point()} == {
            torch.float32}
        results[dtype] = pipeline(image, boxes=boxes).frames[0].people[0]
    exact, fast = results[torch.float32], results[torch.bfloat16]
    assert fast.vertices.dtype == np.float32
    # bf16 keeps about 3 significant digits: close, not equal
    np.testing.assert_allclose(fast.params["hand_pose"], exact.params["hand_pose"], atol=0.05)
    assert not np.array_equal(fast.params["hand_pose"], exact.params["hand_pose"])


def test_predict_takes_dtype_and_threads(tmp_path, capsys, monkeypatch):
    from extpose_sdk.cli import main

    monkeypatch.setattr(precision, "bf16_is_native", lambda device: True)
    threads = torch.get_num_threads()
    try:
        assert main(["predict", "--sample", "--out", str(tmp_path / "o"), "--dtype", "bf16",
                     "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert json.loads((tmp_path / "o" / "results.json").read_text())["num_frames"] == 24
    capsys.readouterr()
    assert main(["predict", "--sample", "--out", str(tmp_path / "t"), "--threads", "0"]) == 1
    assert "--threads must be 1 or more" in capsys.readouterr().err
