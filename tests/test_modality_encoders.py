"""Modalities of any shape: a plugin's 1-channel depth map with its own patch embedding beside
RGB and the skeleton image, which share the ViT's embedding (zero new parameters)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import extpose_sdk  # noqa: E402
from extpose_sdk import hookimpl  # noqa: E402
from extpose_sdk.modalities import CropEvidence, Modality, build_encoders  # noqa: E402
from extpose_sdk.modalities.encoders import PatchEncoder  # noqa: E402
from extpose_sdk.model import build_mesh_recovery_model  # noqa: E402

TINY = dict(embed_dim=32, depth=1, num_heads=2, head_dim=16, head_depth=1, head_heads=2,
            head_dim_head=8, head_mlp_dim=16)


class DepthModality(Modality):
    """Metric depth (m) of the crop, one channel, scaled to 0..255 over 0..5 m."""

    name = "depth"
    channels = 1
    mean = np.array([127.5], np.float32)
    std = np.array([127.5], np.float32)

    def available(self, evidence: CropEvidence) -> bool:
        return "depth" in evidence.extras

    def render(self, evidence: CropEvidence) -> np.ndarray:
        return np.clip(evidence.extras["depth"][..., None] / 5.0 * 255.0, 0, 255)

    def encoder(self, vit):
        return PatchEncoder(self.channels, vit)


class DepthPlugin:
    @hookimpl
    def extpose_register_modalities(self, register):
        register("depth", DepthModality, "metric depth, its own 1-channel patch embedding")


@pytest.fixture
def depth():
    """This file's depth plugin alone (the installed examples/extpose-plugin-depth registers a
    ``depth`` of its own)."""
    from extpose_sdk.testing import isolated_plugins

    with isolated_plugins(DepthPlugin()):
        yield


def tiny(modalities):
    torch.manual_seed(0)
    return build_mesh_recovery_model("mano", modalities=modalities, mask="paper", **TINY)


def test_a_depth_map_is_normalised_with_its_own_statistics(depth):
    modality = extpose_sdk.get_registries().modality.build("depth")
    evidence = CropEvidence(size=(4, 6), transform=np.eye(2, 3),
                            extras={"depth": np.full((4, 6), 2.5)})
    image = modality(evidence)
    assert image.shape == (1, 4, 6) and image.dtype == torch.float32
    torch.testing.assert_close(image, torch.zeros(1, 4, 6))  # 2.5 m -> 127.5 -> 0


def test_depth_adds_only_its_patch_embedding_and_rgb_skeleton_add_nothing(depth):
    extended, with_depth = tiny(("rgb", "skeleton")), tiny(("rgb", "depth"))
    base = tiny(("rgb",))
    report = extended.parameter_report()
    assert report.added == {"rgb": 0, "skeleton": 0}
    assert report.shared == base.parameter_report().shared
    assert report.total == sum(p.numel() for p in base.parameters())  # zero new parameters
    depth_report = with_depth.parameter_report()
    assert depth_report.added == {"rgb": 0, "depth": 32 * 1 * 16 * 16 + 32}
    assert depth_report.shared == report.shared
    assert "added 8,224 (rgb 0, depth 8,224)" in str(depth_report)
    extra = set(with_depth.state_dict()) - set(base.state_dict())
    assert extra == {"encoders.depth.proj.weight", "encoders.depth.proj.bias"}
    assert set(extended.state_dict()) == set(base.state_dict())  # keys unchanged


def test_depth_tokens_are_its_patches_on_the_vits_position_embedding(depth):
    model = tiny(("rgb", "depth"))
    vit, encoder = model.backbone, model.encoders["depth"]
    x = torch.randn(2, 1, 256, 192)
    by_hand = torch.nn.functional.conv2d(x, encoder.proj.weight, encoder.proj.bias, stride=16,
                                         padding=2).flatten(2).transpose(1, 2)
    by_hand = by_hand + vit.pos_embed[:, 1:] + vit.pos_embed[:, :1]
    torch.testing.assert_close(encoder(x), by_hand)
    assert encoder(x).shape == (2, vit.num_tokens, 32)
    with pytest.raises(ValueError, match=r"PatchEncoder expects \(B, 1, H, W\)"):
        encoder(torch.randn(2, 3, 256, 192))


def test_a_model_with_depth_runs_clips_and_learns_its_encoder(depth):
    model = tiny(("rgb", "depth"))
    rgb, depth_map = torch.randn(2, 3, 3, 256, 256), torch.randn(2, 3, 1, 256, 256)
    out = model({"rgb": rgb, "depth": depth_map})
    assert out.hand_pose.shape == (2, 3, 15, 3, 3)
    changed = model({"rgb": rgb, "depth": depth_map + 1.0})
    assert not torch.allclose(changed.betas, out.betas)
    absent = model({"rgb": rgb, "depth": depth_map + 1.0},
                   present={"depth": torch.zeros(2, 3, dtype=torch.bool)})
    rgb_only = model({"rgb": rgb}, present=None)
    torch.testing.assert_close(absent.betas, rgb_only.betas, atol=1e-5, rtol=0)
    out.betas.sum().backward()
    assert model.encoders["depth"].proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"input 'depth' must have shape \(B, 1, 256, 256\)"):
        model({"rgb": rgb, "depth": torch.randn(2, 3, 3, 256, 256)})


def test_a_conv_stem_is_shared_too_and_a_depth_encoder_meets_its_grid(depth):
    torch.manual_seed(0)
    conv = dict(TINY, stem="conv", patch_size=32)
    base = build_mesh_recovery_model("mano", modalities=("rgb",), **conv)
    model = build_mesh_recovery_model("mano", modalities=("rgb", "skeleton", "depth"), mask="paper",
                                      **conv)
    assert model.backbone.grid_size == (8, 6)  # 256 x 192 in 32 px steps
    report = model.parameter_report()
    assert report.added == {"rgb": 0, "skeleton": 0, "depth": 32 * 1 * 32 * 32 + 32}
    assert report.shared == base.parameter_report().shared
    rgb, skeleton = torch.randn(1, 2, 3, 256, 256), torch.randn(1, 2, 3, 256, 256)
    depth_map = torch.randn(1, 2, 1, 256, 256)
    assert model.encoders["depth"](depth_map[0, :, :, :, 32:-32]).shape == (2, 48, 32)
    out = model({"rgb": rgb, "skeleton": skeleton, "depth": depth_map})
    assert out.hand_pose.shape == (1, 2, 15, 3, 3)
    assert not torch.allclose(model({"rgb": rgb, "skeleton": skeleton + 1.0, "depth": depth_map}).betas,
                              out.betas)


def test_a_one_channel_modality_without_an_encoder_is_refused():
    class Mask(Modality):
        name, channels = "mask", 1

    with pytest.raises(ValueError, match=r"modality 'mask' makes 1-channel images but the "
                                         r"backbone embeds 3 channels: give the modality an "
                                         r"encoder"):
        build_encoders({"mask": Mask()}, tiny(("rgb",)).backbone)
