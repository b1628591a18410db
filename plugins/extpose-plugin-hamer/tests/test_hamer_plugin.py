"""extpose-plugin-hamer: what it registers, and its recipes at tiny size."""

from __future__ import annotations

import torch

import extpose_sdk

TINY = dict(embed_dim=32, depth=2, num_heads=4, head_dim=32, head_depth=1, head_heads=2,
            head_dim_head=8, head_mlp_dim=16)


def test_registers_its_backbone_and_recipes_with_the_core_head():
    registries = extpose_sdk.get_registries()
    assert "hamer" in registries.backbone.names()
    assert {"hamer", "extpose-hamer"} <= set(registries.model.names())
    assert "mano" in registries.head.names()  # the head lives in the core


def test_original_and_extended_recipes_share_every_weight():
    original, extended = (extpose_sdk.load_model(n, **TINY) for n in ("hamer", "extpose-hamer"))
    assert original.modalities == ("rgb",)
    assert extended.modalities == ("rgb", "skeleton")
    shapes = {k: v.shape for k, v in original.state_dict().items()}
    assert shapes == {k: v.shape for k, v in extended.state_dict().items()}
    assert {k.split(".")[0] for k in shapes} == {"backbone", "mano_head"}


def test_tiny_recipe_predicts_the_contract_fields():
    out = extpose_sdk.load_model("hamer", **TINY)({"rgb": torch.randn(1, 3, 256, 256)})
    assert out.hand_pose.shape == (1, 15, 3, 3) and out.pred_cam_t.shape == (1, 3)
