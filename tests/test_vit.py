"""The shared ViT (ViTPose family) and the attention function."""

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from extpose_sdk import attention as attention_module
from extpose_sdk.attention import SegmentMask, attention
from extpose_sdk.vit import DropPath, ViT, ViTConfig, build_vitpose, sincos_position

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


def test_sincos_position_codes_sin_and_cos_of_x_then_y():
    codes = sincos_position((2, 3), 8)  # frequencies 1 and 1/100
    assert codes.shape == (6, 8)
    torch.testing.assert_close(codes[0], torch.tensor([0.0, 0, 1, 1, 0, 0, 1, 1]))
    x2 = torch.tensor([2.0, 0.02])  # the token at row 0, column 2
    torch.testing.assert_close(codes[2], torch.cat([x2.sin(), x2.cos(), torch.zeros(2), torch.ones(2)]))
    y1 = torch.tensor([1.0, 0.01])  # the token at row 1, column 0
    torch.testing.assert_close(codes[3], torch.cat([torch.zeros(2), torch.ones(2), y1.sin(), y1.cos()]))
    far = torch.tensor([100.0, 1.0])  # x = 100 at frequencies 1 and exactly 1/100
    torch.testing.assert_close(sincos_position((1, 101), 8)[100, :4], torch.cat([far.sin(), far.cos()]))
    with pytest.raises(ValueError, match="divisible by 4; got 6"):
        sincos_position((2, 2), 6)


@pytest.mark.parametrize("cls_slot_bias", [True, False])
def test_a_sincos_start_puts_the_codes_on_the_patch_slots(cls_slot_bias):
    model = tiny(img_size=(64, 48), pos_embed_init="sincos", cls_slot_bias=cls_slot_bias)
    pos = model.pos_embed.detach()[0]
    torch.testing.assert_close(pos[-12:], sincos_position((4, 3), 32))
    if cls_slot_bias:  # the slot added to every patch token starts at zero, also on a reset
        assert pos.shape == (13, 32) and float(pos[0].abs().max()) == 0.0
        with torch.no_grad():
            model.pos_embed.fill_(1.0)
        model.reset_parameters()
        assert float(model.pos_embed.detach()[0, 0].abs().max()) == 0.0
    noise = tiny(img_size=(64, 48)).pos_embed.detach()
    assert 0.01 < float(noise.std()) < 0.03  # the default: small noise, as before
    with pytest.raises(ValueError, match="'noise', 'sincos'"):
        ViTConfig(pos_embed_init="zeros")


def test_a_conv_stem_halves_the_side_log2_patch_times_into_the_grid():
    model = ViT(ViTConfig(img_size=(64, 96), patch_size=16, stem="conv", embed_dim=64, depth=1,
                          num_heads=4))
    assert model.grid_size == (4, 6) and model.num_tokens == 24
    assert model.patch_padding == 0  # a modality's own one-convolution embedding meets the grid
    stem = model.patch_embed
    convs = [m for m in stem.stages if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (3, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1),
        (64, 64, 2), (64, 64, 1), (64, 64, 2), (64, 64, 1)]  # 32, 64, ... capped at embed_dim
    assert (stem.proj.in_channels, stem.proj.out_channels, stem.proj.kernel_size) == (64, 64, (1, 1))
    x = torch.randn(2, 3, 64, 96)
    by_hand = x
    # group norm starts as plain normalisation
    for first, second in zip(convs[::2], convs[1::2], strict=True):
        by_hand = torch.relu(F.group_norm(F.conv2d(by_hand, first.weight, first.bias, 2, 1), 8))
        by_hand = torch.relu(F.group_norm(F.conv2d(by_hand, second.weight, second.bias, 1, 1), 8))
    by_hand = F.conv2d(by_hand, stem.proj.weight, stem.proj.bias).flatten(2).transpose(1, 2)
    torch.testing.assert_close(stem(x), by_hand)
    torch.testing.assert_close(model.embed(x), by_hand + model.pos_embed[:, 1:] + model.pos_embed[:, :1])
    assert model(x).shape == (2, 24, 64)
    with pytest.raises(ValueError, match="power of 2; got 24"):
        ViTConfig(stem="conv", patch_size=24)
    for size in ((100, 64), (64, 100)):
        with pytest.raises(ValueError, match=re.escape(f"divisible by patch_size 32; got {size}")):
            ViTConfig(stem="conv", patch_size=32, img_size=size)
    with pytest.raises(ValueError, match="'patch', 'conv'"):
        ViTConfig(stem="resnet")


def test_the_noise_start_takes_its_size_from_pos_embed_std():
    wide = tiny(img_size=(64, 48), pos_embed_std=1.0).pos_embed.detach()
    assert 0.8 < float(wide.std()) < 0.95 and float(wide.abs().max()) <= 2.0  # cut at -2 and 2
    with pytest.raises(ValueError, match="pos_embed_std"):
        ViTConfig(pos_embed_std=0.0)


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


@pytest.mark.parametrize("backend", ["reference", "sdpa"])
def test_segment_mask_equals_its_dense_block_diagonal_mask(backend):
    segments = SegmentMask([3, 5, 3, 1])
    q, k, v = torch.randn(3, 1, 2, segments.total, 8).unbind(0)
    dense = segments.dense()
    assert dense.shape == (12, 12) and dense[:3, :3].all() and not dense[:3, 3:].any()
    packed = attention(q, k, v, segments, backend=backend)
    expected = attention(q, k, v, dense, backend="reference")
    torch.testing.assert_close(packed, expected, atol=1e-5, rtol=0)


def test_segment_mask_errors_name_the_shape():
    with pytest.raises(ValueError, match="positive"):
        SegmentMask([2, 0])
    q = torch.randn(2, 1, 4, 8)
    with pytest.raises(ValueError, match=r"\(1, H, 4, d\); got q \(2, 1, 4, 8\)"):
        attention(q, q, q, SegmentMask([1, 3]))


def test_segment_mask_matches_xformers_block_diagonal_mask():
    """Where xformers is installed (any device): our segments are its BlockDiagonalMask."""
    attn_bias = pytest.importorskip("xformers.ops.fmha.attn_bias")
    segments = SegmentMask([3, 5, 1])
    bias = attn_bias.BlockDiagonalMask.from_seqlens(list(segments.lengths)).materialize((9, 9))
    torch.testing.assert_close(bias.isfinite(), segments.dense())


def test_drop_path_over_segments_drops_whole_segments():
    torch.manual_seed(0)
    drop = DropPath(0.5).train()
    segments = SegmentMask([4, 2, 6, 3, 5, 1, 7])
    out = drop(torch.ones(1, segments.total, 3), segments)[0, :, 0]
    values = [part.unique().tolist() for part in out.split(list(segments.lengths))]
    assert all(v in ([0.0], [2.0]) for v in values)  # each segment whole: dropped or scaled
    assert [0.0] in values and [2.0] in values
    assert drop.eval()(torch.ones(1, 9, 3), SegmentMask([9])).eq(1).all()


@pytest.mark.parametrize("segmented", [False, True])
def test_auto_falls_back_to_sdpa_where_xformers_has_no_kernel(monkeypatch, segmented):
    """An xformers that imports but cannot run these inputs: ``auto`` warns and uses SDPA."""
    def no_kernel(*args):
        raise NotImplementedError("No operator found for `memory_efficient_attention_forward`")

    everything = lambda device=None: ["reference", "sdpa", "xformers"]  # noqa: E731
    monkeypatch.setattr(attention_module, "available_backends", everything)
    monkeypatch.setattr(attention_module, "_xformers", no_kernel)
    q, k, v = torch.randn(3, 1, 2, 6, 8).unbind(0)
    mask = SegmentMask([2, 4]) if segmented else torch.rand(1, 1, 6, 6) > 0.3
    with pytest.warns(RuntimeWarning, match="xformers has no kernel.*No operator found"):
        out = attention(q, k, v, mask, backend="auto")
    torch.testing.assert_close(out, attention(q, k, v, mask, backend="sdpa"))
    with pytest.raises(NotImplementedError):
        attention(q, k, v, mask, backend="xformers")


def test_xformers_bias_is_stored_once_for_the_batch_and_heads():
    """The dense-mask bias for xformers: -inf where masked, rows padded to 8, no B x H copy."""
    q = torch.randn(3, 4, 37, 8)
    mask = torch.rand(1, 1, 37, 37) > 0.3
    bias = attention_module._xformers_bias(mask, q, q)
    assert bias.shape == (3, 4, 37, 37) and bias.stride() == (0, 0, 40, 1)
    torch.testing.assert_close(bias, torch.zeros(3, 4, 37, 37).masked_fill(~mask, float("-inf")))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("kind", ["segments", "dense", "none"])
def test_xformers_would_take_our_arguments_on_a_gpu(kind, dtype):
    """xformers' own dispatch checks (run on CPU): the only thing missing is the CUDA device."""
    fmha = pytest.importorskip("xformers.ops.fmha")
    q = torch.randn(1, 4, 12, 64, dtype=dtype)
    mask = {"segments": SegmentMask([5, 7]), "dense": torch.rand(1, 1, 12, 12) > 0.5}.get(kind)
    inputs = fmha.Inputs(**attention_module.xformers_arguments(q, q, q, mask))
    for op in (fmha.cutlass.FwOp, fmha.cutlass.BwOp):  # forward, and backward for training
        reasons = op.not_supported_reasons(inputs)
        assert reasons and all(r.startswith("device=cpu") for r in reasons), (op.NAME, reasons)
