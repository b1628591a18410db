"""extpose-plugin-depth: registration, the depth image of known scenes, a forward pass with
rgb + skeleton + depth, a few engine steps, and the model without depth. Tiny sizes, CPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import extpose_plugin_depth
import numpy as np
import pytest
import torch
from extpose_plugin_depth.modality import FLOOR, DepthModality, read_depth, relative_depth
from extpose_plugin_depth.synthetic import depth_from_faces

import extpose_sdk
from extpose_sdk.modalities import CropEvidence
from extpose_sdk.testing import fake_distribution, isolated_plugins, on_sys_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PACKAGE = Path(__file__).resolve().parents[1]
TINY = dict(img_size=[64, 64], embed_dim=32, depth=1, num_heads=2, head_dim=32, head_depth=1,
            head_heads=2, head_dim_head=8, head_mlp_dim=16)


def tiny_hand(checkpoint=None, **options):
    """A model recipe from the core alone (no other plugin needed): ViTPose + MANO head."""
    from extpose_sdk.model import build_mesh_recovery_model

    return build_mesh_recovery_model("mano", checkpoint=checkpoint, subject="hand",
                                     **{**TINY, **options})


class TinyRecipe:
    @extpose_sdk.hookimpl
    def extpose_register_models(self, register):
        register("tiny-hand", tiny_hand, "a tiny hand model for the depth tests", subject="hand")


@pytest.fixture
def plugins():
    with isolated_plugins(extpose_plugin_depth, TinyRecipe()) as manager:
        yield manager


# -- registration ------------------------------------------------------------------------------

def test_the_entry_point_of_pyproject_registers_the_modality_and_the_data_set(tmp_path):
    """Discovery as pip-installed: the entry point pyproject.toml declares, found by the SDK."""
    from extpose_sdk.plugins import make_plugin_manager

    declared = tomllib.loads((PACKAGE / "pyproject.toml").read_text())
    entry_points = declared["project"]["entry-points"]["extpose"]
    assert entry_points == {"depth": "extpose_plugin_depth"}
    fake_distribution(tmp_path, declared["project"]["name"], entry_points)
    with on_sys_path(tmp_path):
        manager = make_plugin_manager(autoload=False, only=["extpose-plugin-depth"], strict=True)
        registries = manager.registries()
    assert manager.infos["depth"].package == "extpose-plugin-depth"
    assert registries.modality.get("depth").package == "extpose-plugin-depth"
    assert "synthetic-hand-depth" in registries.dataset.names()


def test_importing_the_plugin_imports_no_torch_and_builds_nothing():
    """Listing plugins must stay light: the factories are lazy."""
    import subprocess

    code = ("import sys, extpose_sdk, extpose_plugin_depth\n"
            "extpose_sdk.register_plugin(extpose_plugin_depth)\n"
            "names = extpose_sdk.get_registries().modality.names()\n"
            "assert 'depth' in names, names\n"
            "heavy = {'torch', 'extpose_plugin_depth.modality', 'extpose_plugin_depth.synthetic'}\n"
            "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n")
    env = {**__import__("os").environ, "EXTPOSE_DISABLE_PLUGIN_AUTOLOAD": "1",
           "PYTHONPATH": str(PACKAGE)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_the_modality_builds_with_its_options(plugins):
    modality = plugins.registries().modality.build("depth", range_m=1.0)
    assert isinstance(modality, DepthModality) and modality.channels == 1
    assert modality.range_m == 1.0
    assert not modality.available(CropEvidence(size=(8, 8), transform=np.eye(2, 3)))
    assert modality.available(modality.example_evidence())


# -- the depth image ---------------------------------------------------------------------------

def tilted_plane(size=64, focal=100.0):
    """A square at z = 1 + 0.5 x (x in [-0.2, 0.2] m) seen by a camera of focal 100 px."""
    from extpose_sdk.cameras import Camera
    from extpose_sdk.render import rasterize

    corners = np.array([[-0.2, -0.2], [0.2, -0.2], [0.2, 0.2], [-0.2, 0.2]])
    vertices = np.concatenate([corners, 1.0 + 0.5 * corners[:, :1]], axis=1)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    camera = Camera.of(focal, image_size=(size, size))
    buffer = rasterize(vertices, faces, camera, (size, size), cull_backfaces=False)
    return depth_from_faces(buffer, vertices, faces, (focal, focal), (camera.cx, camera.cy))


def test_depth_of_a_tilted_plane_is_exact_at_known_pixels():
    depth = tilted_plane()
    # pixel u sees x = z (u - 32) / 100, so z = 1 / (1 - 0.5 (u - 32) / 100)
    for u, z in ((32, 1.0), (42, 1 / 0.95), (22, 1 / 1.05)):
        assert depth[32, u] == pytest.approx(z, abs=1e-6)
    assert depth[0, 0] == 0.0 and depth[63, 63] == 0.0  # background
    assert depth[32, 22] < depth[32, 32] < depth[32, 42]  # the left side is nearer


def test_the_depth_image_is_relative_nearer_smaller_background_zero():
    depth = tilted_plane()
    evidence = CropEvidence(size=(64, 64), transform=np.array([[1.0, 0, 0], [0, 1.0, 0]]),
                            extras={"depth": depth})
    modality = DepthModality(range_m=0.25)
    image = modality(evidence)[0].numpy()
    near = depth[depth > 0].min()
    assert image[0, 0] == 0.0
    assert image[depth > 0].min() == pytest.approx(FLOOR)
    for u in (22, 32, 42):  # pinned: FLOOR + 0.9 * (z - z_near) / 0.25
        assert image[32, u] == pytest.approx(FLOOR + 0.9 * (depth[32, u] - near) / 0.25, abs=1e-6)
    assert image[32, 22] < image[32, 32] < image[32, 42] <= 1.0
    # the crop's affine applies: a crop shifted by 10 px sees pixel 42 at 32
    shifted = CropEvidence(size=(64, 64), transform=np.array([[1.0, 0, -10], [0, 1.0, 0]]),
                           extras={"depth": depth})
    assert modality(shifted)[0, 32, 32] > 0 and modality(shifted)[0, 32, 60] == 0.0


def test_relative_depth_of_nothing_is_zero():
    assert not relative_depth(np.zeros((4, 4))).any()


def test_synthetic_hand_depth_matches_its_face_buffer_and_mesh():
    from extpose_plugin_depth.synthetic import SyntheticDepthDataset

    data = SyntheticDepthDataset(split="test", kind="hand", num_sequences=1, sequence_length=1,
                                 crop_size=64, seed=0)
    frame = data.render(0, [0])[0]
    depth = data._depth.pop((0, 0))
    assert ((depth > 0) == (frame.faces >= 0)).all()  # depth exactly where the hand is
    assert depth[0, 0] == 0.0
    vertices = frame.labels["vertices"]
    assert depth[depth > 0].min() == pytest.approx(vertices[:, 2].min(), abs=2e-3)
    assert depth.max() <= vertices[:, 2].max() + 1e-6
    # the pixel of the nearest vertex shows it: depth = its z (to 1 mm)
    from extpose_sdk.cameras import Camera

    nearest = vertices[np.argmin(vertices[:, 2])]
    u, v = np.round(Camera.of(data.focal, image_size=data.image_size).project(nearest))
    assert depth[int(v), int(u)] == pytest.approx(nearest[2], abs=1e-3)
    # pinned (regression values of this seed, hand data version 2): 3,801 px of hand, 0.407 m
    # at pixel (130, 120)
    assert int((depth > 0).sum()) == pytest.approx(3801, abs=10)
    assert depth[120, 130] == pytest.approx(0.40732, abs=2e-4) and depth[128, 128] == 0.0


def test_synthetic_hand_depth_samples_are_synthetic_hand_plus_depth():
    from extpose_plugin_depth.synthetic import synthetic_hand_depth

    from extpose_sdk.datasets.synthetic import synthetic_hand

    options = dict(num_sequences=1, sequence_length=2, crop_size=64, clip_length=2, seed=3)
    plain, with_depth = synthetic_hand(split="train", **options)[0], synthetic_hand_depth(
        split="train", **options)[0]
    assert set(with_depth) - set(plain) == {"depth", "has_depth"}
    assert torch.equal(plain["rgb"], with_depth["rgb"])  # same images, same augmentation
    assert with_depth["depth"].shape == (2, 1, 64, 64) and with_depth["has_depth"].all()
    image = with_depth["depth"]
    assert image.min() == 0.0 and image.max() <= 1.0 and (image == 0).float().mean() > 0.2
    assert image[image > 0].min() == pytest.approx(FLOOR)


def test_a_users_depth_file_in_millimetres_or_metres(tmp_path):
    import cv2

    millimetres = np.array([[0, 500], [1000, 65535]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), millimetres)
    np.save(tmp_path / "d.npy", millimetres / 1000.0)
    for name in ("d.png", "d.npy"):
        assert read_depth(tmp_path / name) == pytest.approx(millimetres / 1000.0)
    with pytest.raises(ValueError, match="unknown depth format"):
        (tmp_path / "d.jpg").write_bytes(b"x")
        read_depth(tmp_path / "d.jpg")


# -- the model ---------------------------------------------------------------------------------

def inputs_for(model, batch=2, frames=2, size=64):
    torch.manual_seed(1)
    shape = lambda c: (batch, frames, c, size, size)  # noqa: E731
    depth = torch.rand(shape(1)) * (torch.rand(shape(1)) > 0.5)
    return {"rgb": torch.randn(shape(3)), "skeleton": torch.randn(shape(3)), "depth": depth}


def test_forward_with_rgb_skeleton_and_depth_adds_only_the_depth_patch_embedding(plugins):
    torch.manual_seed(0)
    model = extpose_sdk.load_model("tiny-hand", modalities=("rgb", "skeleton", "depth")).eval()
    report = model.parameter_report()
    assert report.added == {"rgb": 0, "skeleton": 0, "depth": 32 * 16 * 16 + 32}
    assert {k.split(".")[1] for k in model.state_dict() if k.startswith("encoders.")} == {"depth"}
    with torch.no_grad():
        out = model(inputs_for(model))
    assert out.hand_pose.shape == (2, 2, 15, 3, 3) and torch.isfinite(out.pred_cam_t).all()
    with torch.no_grad():  # the depth image reaches the head
        other = model({**inputs_for(model), "depth": torch.zeros(2, 2, 1, 64, 64)})
    assert not torch.allclose(out.pred_cam, other.pred_cam)


def test_the_model_runs_without_depth(plugins):
    torch.manual_seed(0)
    model = extpose_sdk.load_model("tiny-hand", modalities=("rgb", "skeleton", "depth")).eval()
    full = inputs_for(model)
    without = {k: v for k, v in full.items() if k != "depth"}
    absent = {"rgb": torch.ones(2, 2, dtype=torch.bool), "skeleton": torch.ones(2, 2, dtype=torch.bool),
              "depth": torch.zeros(2, 2, dtype=torch.bool)}
    with torch.no_grad():
        missing = model(without)
        marked = model(full, present=absent)
    assert torch.isfinite(missing.pred_cam_t).all()
    torch.testing.assert_close(missing.pred_cam, marked.pred_cam)  # absent tokens are not seen


def test_a_batch_without_depth_evidence_gets_depth_marked_absent(plugins):
    """A data set without depth (plain synthetic-hand) in a depth model: zeros, present False."""
    from extpose_sdk.data.inputs import model_inputs
    from extpose_sdk.data.sample import collate
    from extpose_sdk.datasets.synthetic import synthetic_hand

    data = synthetic_hand(split="test", num_sequences=1, sequence_length=2, crop_size=64)
    batch = collate([data[0], data[1]])
    inputs, present = model_inputs(batch, ("rgb", "skeleton", "depth"), size=64)
    assert inputs["depth"].shape == (2, 1, 64, 64) and not inputs["depth"].any()
    assert not present["depth"].any() and present["rgb"].all()


def test_crop_inputs_with_and_without_a_users_depth_map(plugins):
    from extpose_plugin_depth.inference import crop_inputs

    image = np.zeros((64, 64, 3), dtype=np.uint8)
    depth = tilted_plane()
    inputs, present = crop_inputs(("rgb", "depth"), image, (0, 0, 63, 63), depth=depth, size=64)
    assert bool(present["depth"]) and inputs["depth"].shape == (1, 64, 64)
    assert inputs["depth"].max() > FLOOR
    inputs, present = crop_inputs(("rgb", "depth"), image, (0, 0, 63, 63), size=64)
    assert not bool(present["depth"]) and not inputs["depth"].any()


def test_a_depth_model_starts_from_weights_trained_without_it(plugins, tmp_path):
    from extpose_plugin_depth.start import add_modality_encoders

    from extpose_sdk.checkpoints import save_extpose_checkpoint

    torch.manual_seed(0)
    base = extpose_sdk.load_model("tiny-hand", modalities=("rgb",))
    save_extpose_checkpoint(base, tmp_path / "base.safetensors",
                            {"model": "tiny-hand", "options": {}, "modalities": ["rgb"]})
    report = add_modality_encoders(tmp_path / "base.safetensors", tmp_path / "d.safetensors",
                                   ["rgb", "skeleton", "depth"])
    assert report["added"]["depth"] == 32 * 16 * 16 + 32
    model = extpose_sdk.load_model("tiny-hand", checkpoint=str(tmp_path / "d.safetensors"))
    assert model.modalities == ("rgb", "skeleton", "depth")
    for key, value in base.state_dict().items():  # every trained tensor kept
        torch.testing.assert_close(model.state_dict()[key], value)


# -- training ----------------------------------------------------------------------------------

def test_the_engine_trains_a_few_steps_with_depth(plugins, tmp_path):
    from extpose_sdk.engine import train
    from extpose_sdk.engine.recipe import recipe_from_dict

    data = {"num_sequences": 4, "sequence_length": 2, "crop_size": 64,
            "augment": {"flip_prob": 0.0}}
    recipe = recipe_from_dict({
        "name": "depth-test",
        "model": {"recipe": "tiny-hand", "modalities": ["rgb", "skeleton", "depth"],
                  "frames": 1, "body_model": "synthetic", "mean_params_samples": 4},
        "data": {"crop_size": 64, "train": [{"name": "synthetic-hand-depth", "options": data}],
                 "val": {"name": "synthetic-hand-depth", "split": "test",
                         "options": {**data, "num_sequences": 1, "augment": False}}},
        "optim": {"lr": 1e-3, "weight_decay": 0.0, "batch_size": 2, "max_steps": 2},
        "train": {"log_every": 1, "save_every": 1, "plot": False, "tensorboard": False,
                  "modality_dropout": 0.0},  # no decay, no dropout: a change is a gradient
    })
    result = train(recipe, tmp_path / "run", progress=False)
    assert result.status == "finished" and result.step == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in records if "loss" in r)
    assert any("pa_mpjpe" in r.get("val", {}) for r in records)  # validated on held-out frames
    first, last = (extpose_sdk.load_model(
        "tiny-hand", checkpoint=str(tmp_path / "run" / "checkpoints" / f"step-000000{s}" /
                                    "model.safetensors")) for s in (1, 2))
    assert last.modalities == ("rgb", "skeleton", "depth")
    moved = last.encoders["depth"].proj.weight - first.encoders["depth"].proj.weight
    assert moved.abs().max() > 0  # the depth patch embedding learns
