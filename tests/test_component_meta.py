"""Every registered modality, head and model recipe runs forward at tiny size; every registered
set of weights loads and runs.

Parametrised over the registries, so a component is tested the moment a plugin registers it
(backbones have their own meta-test in ``test_registry_components.py``).
"""

import numpy as np
import pytest
import torch

import extpose_sdk
from extpose_sdk.modalities import CropEvidence

REGISTRIES = extpose_sdk.get_registries()
TINY_HEAD = dict(dim=32, depth=1, heads=2, dim_head=8, mlp_dim=16)
TINY_RECIPE = dict(embed_dim=32, depth=2, num_heads=4, head_dim=32, head_depth=1, head_heads=2,
                   head_dim_head=8, head_mlp_dim=16)


def evidence(size=(64, 48)):
    rng = np.random.default_rng(0)
    keypoints = np.concatenate(
        [rng.uniform(5, 40, size=(17, 2)), np.ones((17, 1))], axis=1
    ).astype(np.float32)
    return CropEvidence(
        size=size,
        transform=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        crop_rgb=rng.integers(0, 256, size=(*size, 3), dtype=np.uint8),
        keypoints=keypoints,
        keypoint_layout="coco17",
    )


@pytest.mark.parametrize("name", REGISTRIES.modality.names())
def test_every_modality_makes_a_normalised_image_of_the_crop(name):
    modality = REGISTRIES.modality.build(name)
    # a modality whose evidence is not an RGB crop with keypoints (a depth map) gives its own
    example = getattr(modality, "example_evidence", None)
    crop = example((64, 48)) if example is not None else evidence()
    assert modality.available(crop)
    image = modality(crop)
    assert image.shape == (modality.channels, 64, 48) and image.dtype == torch.float32
    assert torch.isfinite(image).all() and image.std() > 0  # something was drawn
    assert not modality.available(CropEvidence(size=(64, 48), transform=crop.transform))


@pytest.mark.parametrize("name", REGISTRIES.head.names())
def test_every_head_reads_any_context_width(name):
    torch.manual_seed(0)
    head = REGISTRIES.head.build(name, context_dim=24, token_grid=(4, 3), **TINY_HEAD).eval()
    context = torch.randn(2, 12, 24)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 6:] = False
    out = head(context, context_mask=mask)
    assert out.global_orient.shape == (2, 1, 3, 3)
    assert out.betas.shape == (2, 10) and out.pred_cam.shape == (2, 3)
    pose = out.body_pose if getattr(out, "body_pose", None) is not None else out.hand_pose
    assert pose.shape[-2:] == (3, 3) and pose.shape[1] in (15, 23)
    eye = torch.eye(3).expand_as(pose)
    torch.testing.assert_close(pose @ pose.transpose(-1, -2), eye, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", REGISTRIES.model.names())
def test_every_model_recipe_predicts_a_clip(name):
    torch.manual_seed(0)
    model = extpose_sdk.load_model(name, **TINY_RECIPE).eval()
    inputs = {m: torch.randn(1, 2, 3, 256, 256) for m in model.modalities}
    with torch.no_grad():
        out = model(inputs)
    assert out.pred_cam.shape == (1, 2, 3) and out.pred_cam_t.shape == (1, 2, 3)
    assert out.global_orient.shape == (1, 2, 1, 3, 3)
    assert torch.isfinite(out.pred_cam_t).all()


@pytest.fixture
def tiny_shipped_weights(tmp_path):
    """A plugin shipping tiny weights, so the meta-test below always has weights to check,
    whether or not an installed package ships any yet."""
    import types

    from extpose_sdk.checkpoints import save_extpose_checkpoint

    torch.manual_seed(0)
    model = extpose_sdk.load_model("extpose-hamer", **TINY_RECIPE)
    path = tmp_path / "tiny.safetensors"
    save_extpose_checkpoint(model, path, {"model": "extpose-hamer", "options": TINY_RECIPE,
                                          "modalities": ["rgb", "skeleton"], "frames": 2})
    plugin = types.ModuleType("tiny_shipped_weights")

    def extpose_register_weights(register):
        register("tiny-shipped", lambda: path, "tiny", model="extpose-hamer", subject="hand")

    plugin.extpose_register_weights = extpose_sdk.hookimpl(extpose_register_weights)
    extpose_sdk.register_plugin(plugin)
    yield
    extpose_sdk.unregister_plugin(plugin)


def test_every_registered_weights_load_safely_and_predict_a_clip(tiny_shipped_weights):
    """Shipped weights: small, hashed, for the recipe they name, and a working model."""
    from extpose_sdk.checkpoints import checkpoint_config

    registry = extpose_sdk.get_registries().weights
    assert "tiny-shipped" in registry.names()
    for name in registry.names():
        component = registry.get(name)
        path = component.build()
        assert path.suffix == ".safetensors" and path.stat().st_size <= 25 * 2**20, name
        config = checkpoint_config(path)
        assert config["model"] == component.metadata["model"], name
        model = extpose_sdk.load_model(component.metadata["model"], checkpoint=name).eval()
        assert model.subject.name == component.metadata["subject"], name
        size = config["options"].get("img_size", (256, 256))
        inputs = {m: torch.randn(1, config["frames"], 3, *size) for m in model.modalities}
        with torch.no_grad():
            out = model(inputs)
        assert tuple(model.modalities) == tuple(config["modalities"]), name
        assert out.pred_cam.shape == (1, config["frames"], 3), name
        assert torch.isfinite(out.pred_cam).all(), name
