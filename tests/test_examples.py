"""The examples in examples/ run, at tiny size: predict an image, a video; fine-tune, then predict;
export to ONNX and run it in ONNX Runtime."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import extpose_sdk
from extpose_sdk.checkpoints import read_extpose_checkpoint, save_extpose_checkpoint

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = dict(embed_dim=32, depth=1, num_heads=2, head_dim=32, head_depth=1, head_heads=2,
            head_dim_head=8, head_mlp_dim=16, img_size=[128, 128])


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind, model", [("hand", "extpose-hamer"), ("body", "extpose-hmr2")])
def test_finetune_synthetic_trains_from_given_weights_and_predicts_with_the_result(
        tmp_path, kind, model):
    example = load_example("finetune_synthetic")
    torch.manual_seed(0)
    start = extpose_sdk.load_model(model, **TINY)
    weights = tmp_path / "start.safetensors"
    save_extpose_checkpoint(start, weights, {"model": model, "options": TINY,
                                             "modalities": ["rgb", "skeleton"], "frames": 8,
                                             "crop_rescale": 1.0})
    options = "{" + ", ".join(f"{k} = {v}" for k, v in TINY.items()) + "}"
    tuned = example.finetune(tmp_path / "run", 2, str(weights),
                             (f"model.options={options}", "batch_size=1"), kind=kind)
    assert tuned == tmp_path / "run" / "checkpoints" / "step-0000002" / "model.safetensors"
    after, config = read_extpose_checkpoint(tuned)
    assert config["frames"] == 8 and config["options"]["embed_dim"] == 32
    changed = [k for k, v in start.state_dict().items() if not torch.equal(after[k], v)]
    assert changed  # it trained from the given weights: same keys, moved values
    error = example.predict(tuned, tmp_path / "run", kind)
    assert 0.0 < error < 10.0  # a random-ish tiny model: far off, but a number
    assert (tmp_path / "run" / "results.json").is_file()


SMALL = ["--option", "embed_dim=32", "--option", "depth=1", "--option", "num_heads=2",
         "--option", "head_dim=32", "--option", "head_depth=1", "--option", "head_heads=2",
         "--option", "head_dim_head=8", "--option", "head_mlp_dim=16"]


def sample(tmp_path, frames):
    from extpose_sdk.datasets.synthetic import synthetic_model_path, write_sample_video

    mano = synthetic_model_path("hand", tmp_path)
    video, keypoints = tmp_path / "clip.mp4", tmp_path / "clip_keypoints.npz"
    write_sample_video(video, frames=frames, kind="hand", size=(96, 128), seed=5,
                       keypoints_path=keypoints, model_path=mano)
    return video, keypoints, mano


def test_predict_image_draws_the_mesh_of_the_hand_in_its_keypoints(tmp_path):
    import cv2
    import numpy as np

    from extpose_sdk.data.video import open_video

    example = load_example("predict_image")
    video, keypoints, mano = sample(tmp_path, 1)
    image = tmp_path / "hand.png"
    frame = next(iter(open_video(video, backend="opencv")))
    cv2.imwrite(str(image), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    out = tmp_path / "overlay.png"
    results = example.main([str(image), "--out", str(out), "--model", "extpose-hamer",
                            "--keypoints", str(keypoints), "--body-model", str(mano), *SMALL])
    (person,) = results.frames[0].people
    detected = np.load(keypoints)["boxes"][0, 0]
    np.testing.assert_allclose(person.box, detected, atol=1e-3)  # the crop is the hand's box
    assert person.vertices.shape == (778, 3) and results.random_weights
    drawn = cv2.imread(str(out))
    assert drawn.shape == (96, 128, 3)
    assert np.abs(drawn.astype(int) - cv2.imread(str(image))).sum() > 0  # something was drawn
    with pytest.raises(FileExistsError, match="exists"):
        example.main([str(image), "--out", str(out), "--model", "extpose-hamer",
                      "--keypoints", str(keypoints), *SMALL])


def test_predict_video_writes_every_frame_and_its_overlay(tmp_path):
    from extpose_sdk.data.video import open_video
    from extpose_sdk.results import load_results

    example = load_example("predict_video")
    video, keypoints, mano = sample(tmp_path, 6)
    out = tmp_path / "out"
    results = example.main([str(video), "--out", str(out), "--model", "extpose-hamer",
                            "--keypoints", str(keypoints), "--body-model", str(mano),
                            "--frames", "4", *SMALL])
    assert len(results) == 6 and len(results.people) == 6
    assert [int(f) for f in load_results(out / "results.npz")["frame"]] == list(range(6))
    assert len(list(open_video(out / "overlay.mp4", backend="opencv"))) == 6
    with pytest.raises(FileExistsError, match="already holds results"):
        example.main([str(video), "--out", str(out), "--model", "extpose-hamer", *SMALL])


def test_export_onnx_runs_the_exported_file_in_onnx_runtime_as_pytorch_runs_the_model(tmp_path):
    pytest.importorskip("onnxruntime", reason="the test extra installs onnx and onnxruntime")
    pytest.importorskip("onnxscript", reason="the test extra installs onnxscript")
    import json

    example = load_example("export_onnx")
    out = tmp_path / "tiny.onnx"
    differences = example.main(["--out", str(out), "--frames", "2", "--batch", "2",
                                "--option", "img_size=(64,48)"])
    assert set(differences) == {"global_orient", "hand_pose", "betas", "pred_cam", "pred_cam_t"}
    assert max(differences.values()) <= 1e-4
    spec = json.loads(out.with_suffix(".json").read_text())
    assert spec["model"] == "extpose-hamer" and spec["preprocessing"]["frames"] == 2
    assert [i["name"] for i in spec["inputs"]] == ["rgb", "skeleton", "present"]
    with pytest.raises(ValueError, match="--overwrite"):  # never replaced silently
        example.main(["--out", str(out), "--option", "img_size=(64,48)"])
