"""Weights registered by name (``extpose_register_weights``): resolved wherever a checkpoint goes,
checked like any checkpoint, named in results; and the keypoint agreement of results."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch

import extpose_sdk
from extpose_sdk import plugins
from extpose_sdk.checkpoints import CheckpointError, resolve_weights, save_extpose_checkpoint
from extpose_sdk.results import FrameResult, PersonResult, Results, keypoint_error

TINY = dict(embed_dim=32, depth=2, num_heads=4, head_dim=32, head_depth=1, head_heads=2,
            head_dim_head=8, head_mlp_dim=16)


@pytest.fixture
def tiny_weights(tmp_path):
    """``tiny-paws``: a tiny ExtPose-HaMeR saved as ``extpose train`` saves it, registered by an
    in-process plugin as a package would."""
    torch.manual_seed(3)
    model = extpose_sdk.load_model("extpose-hamer", **TINY)
    path = tmp_path / "paws.safetensors"
    save_extpose_checkpoint(model, path, {"model": "extpose-hamer", "options": TINY,
                                          "modalities": ["rgb", "skeleton"], "frames": 4,
                                          "crop_rescale": 1.5})
    plugin = types.ModuleType("paws_plugin")

    def extpose_register_weights(register):
        register("tiny-paws", lambda: path, "tiny paws", model="extpose-hamer", subject="hand")
        register("missing-paws", lambda: tmp_path / "gone.safetensors", "", model="extpose-hamer",
                 subject="hand")

    plugin.extpose_register_weights = plugins.hookimpl(extpose_register_weights)
    extpose_sdk.register_plugin(plugin)
    yield model, path
    extpose_sdk.unregister_plugin(plugin)


def test_a_registered_name_resolves_to_its_file_and_recipe(tiny_weights):
    _, path = tiny_weights
    resolved = resolve_weights("tiny-paws")
    assert (resolved.path, resolved.model, resolved.label, resolved.subject) == (
        path, "extpose-hamer", "tiny-paws", "hand")
    assert resolve_weights("tiny-paws", "hamer").model == "hamer"  # the caller's recipe wins
    assert resolve_weights(path).path == path and resolve_weights(path).label == str(path)
    # a file: the recipe extpose train recorded beside it, unless the caller names one
    assert resolve_weights(path).model == "extpose-hamer"
    assert resolve_weights(path, "hamer").model == "hamer"
    path.with_suffix(".json").unlink()
    assert resolve_weights(path).model is None  # nothing recorded: the caller's default
    assert resolve_weights(None, "hamer") == resolve_weights("", "hamer")
    assert resolve_weights(None, "hamer").label == "" and resolve_weights(None).path is None


def test_an_unknown_name_lists_the_registered_weights_and_close_matches(tiny_weights):
    with pytest.raises(plugins.UnknownComponentError, match="unknown weights 'tiny-pawz'.*"
                       "tiny-paws.*Did you mean 'tiny-paws'"):
        resolve_weights("tiny-pawz")
    # a path-like string (a folder, or a suffix) is a file that is missing, not a name
    with pytest.raises(FileNotFoundError):
        extpose_sdk.load_model("extpose-hamer", checkpoint="missing/paws.safetensors", **TINY)
    with pytest.raises(FileNotFoundError):
        extpose_sdk.load_model("extpose-hamer", checkpoint="paws.safetensors", **TINY)
    assert resolve_weights("missing/paws").path == "missing/paws"


def test_weights_whose_file_is_missing_say_which_package_to_reinstall(tiny_weights):
    with pytest.raises(CheckpointError, match="'missing-paws' .*gone.safetensors.*reinstall"
                       " paws_plugin$"):
        resolve_weights("missing-paws")


def test_load_model_and_the_pipeline_read_them_by_name(tiny_weights):
    model, _ = tiny_weights
    loaded = extpose_sdk.load_model("extpose-hamer", checkpoint="tiny-paws")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    pipeline = extpose_sdk.Pipeline.from_plugins(checkpoint="tiny-paws")  # the recipe: theirs
    assert pipeline.name == "extpose-hamer" and pipeline.weights == "tiny-paws"
    assert not pipeline.random_weights
    assert pipeline.frames == 4 and pipeline.rescale == 1.5  # what the weights were trained with
    assert extpose_sdk.Pipeline.from_plugins(checkpoint="tiny-paws", frames=2).frames == 2
    results = pipeline([np.zeros((64, 48, 3), np.uint8)], boxes=[[[0, 0, 47, 63]]])
    assert json.loads(results.to_json())["weights"] == "tiny-paws"
    random = extpose_sdk.Pipeline.from_plugins(model="extpose-hamer", **TINY)
    assert random.weights == "" and random.random_weights and random.frames == 1


def test_hand_weights_on_a_body_recipe_do_not_fit(tiny_weights):
    from extpose_sdk.assembly import FitError

    with pytest.raises(FitError, match=r"'extpose-hmr2' predicts body .* but weights "
                       r"'tiny-paws' is a hand \(MANO\) model"):
        extpose_sdk.Pipeline.from_plugins(model="extpose-hmr2", checkpoint="tiny-paws")


def test_predict_takes_the_name_and_the_results_say_it(tiny_weights, tmp_path, capsys):
    from extpose_sdk.cli import main

    image = tmp_path / "hand.png"
    import cv2

    cv2.imwrite(str(image), np.full((64, 48, 3), 90, np.uint8))
    assert main(["predict", str(image), "--out", str(tmp_path / "out"),
                 "--checkpoint", "tiny-paws", "--whole-frame"]) == 0
    assert "weights: tiny-paws" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "results.json").read_text())["weights"] == "tiny-paws"


def person(keypoints, projected, box, frame=0):
    return PersonResult(frame=frame, track_id=0, box=np.asarray(box, np.float32),
                        keypoints=np.asarray(keypoints, np.float32),
                        keypoints_2d=np.asarray(projected, np.float32))


def test_keypoint_error_is_the_median_of_mean_distances_over_the_box_side():
    given = np.zeros((21, 3), np.float32)
    given[:, 0], given[:, 2] = np.arange(21), 1.0
    given[20, 2] = 0.0  # not confident: left out, however far it lands
    shifted = given[:, :2] + [3.0, 4.0]  # 5 px from every keypoint
    shifted[20] += 1000.0
    far = given[:, :2] + [0.0, 30.0]
    results = Results(frames=[
        FrameResult(0, [person(given, shifted, [0, 0, 50, 20])]),        # 5 / 50 = 0.1
        FrameResult(1, [person(given, far, [0, 0, 50, 100], frame=1)]),  # 30 / 100 = 0.3
        FrameResult(2, [person(given, given[:, :2], [0, 0, 40, 40], frame=2)]),  # 0
        FrameResult(3, [PersonResult(frame=3, track_id=0, box=np.zeros(4))]),  # no mesh: skipped
    ])
    assert keypoint_error(results, "openpose_hand21", "hand") == pytest.approx(0.1)
    assert np.isnan(keypoint_error(Results(), "openpose_hand21", "hand"))


def test_keypoint_error_compares_body_keypoints_in_the_model_joints_layout():
    """COCO-17 detections against SMPL joints: OpenPose BODY_25 order (nose 0, right shoulder 2)."""
    coco = np.zeros((17, 3), np.float32)
    coco[0] = [10, 10, 1]   # nose
    coco[6] = [20, 30, 1]   # right shoulder
    joints = np.zeros((44, 2), np.float32)
    joints[0] = [10, 14]    # 4 px off
    joints[2] = [20, 30]    # exact
    results = Results(frames=[FrameResult(0, [person(coco, joints, [0, 0, 40, 20])])])
    assert keypoint_error(results, "coco17", "body") == pytest.approx(2.0 / 40)
