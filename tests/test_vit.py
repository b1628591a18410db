"""The shared ViT (ViTPose family) and the attention function."""

import json
from pathlib import Path

import pytest
import torch

from extpose_sdk.attention import attention
from extpose_sdk.vit import ViT, ViTConfig, build_vitpose

DATA = Path(__file__).parent / "data"


def tiny(**overrides):
    return ViT(ViTConfig(embed_dim=32, depth=2, num_heads=4, **overrides))


def test_official_vitpose_h_keys_shapes_and_size_without_allocating():
    with torch.device("meta"):
        model = build_vitpose()
    assert sum(p.numel() for p in model.parameters()) == 630_912_000
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    path = DATA / "hmr2_checkpoint_keys.json"
    official = {
        k[len("backbone."):]: v for k, v in json.loads(path.read_text()).items()
        if k.startswith("backbone.")
    }
    assert ours == official


def test_token_grid_and_cls_slot_bias():
    model = tiny()
    assert model.grid_size == (16, 12) and model.num_tokens == 192
    assert model.pos_embed.shape == (1, 193, 32)
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        model.pos_embed.zero_()
        model.pos_embed[:, 0] = 1.0  # the cls slot is a bias added to every patch token
        tokens = model.embed(x)
        expected = model.patch_embed(x) + 1.0
    torch.testing.assert_close(tokens, expected)
    assert model(x).shape == (2, 192, 32)
    assert model.forward_map(x).shape == (2, 32, 16, 12)


def test_wrong_image_size_names_the_expected_shape():
    expected = r"expects images of shape \(B, C, 256, 192\); got \(1, 3, 256, 256\)"
    with pytest.raises(ValueError, match=expected):
        tiny()(torch.randn(1, 3, 256, 256))


@pytest.mark.parametrize("masked", [False, True])
def test_attention_backends_agree(masked):
    q, k, v = torch.randn(3, 2, 4, 10, 8).unbind(0)
    mask = None
    if masked:
        mask = torch.rand(2, 1, 10, 10) > 0.5
        mask[:, :, 3] = False  # a query that may see nothing returns zeros, not NaN
    ref = attention(q, k, v, mask, backend="reference")
    sdpa = attention(q, k, v, mask, backend="sdpa")
    torch.testing.assert_close(ref, sdpa, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(ref).all()
    if masked:
        assert (ref[:, :, 3] == 0).all()


def test_attention_rejects_unknown_backend_and_float_masks():
    q = torch.randn(1, 1, 2, 4)
    with pytest.raises(ValueError, match="available: auto, reference, sdpa, xformers"):
        attention(q, q, q, backend="flash9")
    with pytest.raises(TypeError, match="boolean"):
        attention(q, q, q, mask=torch.zeros(2, 2))
