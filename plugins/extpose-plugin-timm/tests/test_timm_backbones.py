"""timm ViTs as ExtPose backbones: timm's own modules, timm's own numbers, the mask honoured."""

import pytest
import timm
import torch
from extpose_plugin_timm.backbone import TimmViT, UnsupportedTimmModelError, build_timm_backbone

from extpose_sdk import get_registries
from extpose_sdk.cli import main

FAMILIES = ["vit_small_patch16_224", "vit_small_patch14_reg4_dinov2", "eva02_small_patch14_224"]
TINY = dict(img_size=32, embed_dim=32, depth=2, num_heads=2)


def tiny(name, **options):
    torch.manual_seed(0)
    return build_timm_backbone(name, **{**TINY, **options}).eval()


def run_blocks(backbone, tokens, mask=None):
    for block in backbone.blocks:
        tokens = block(tokens, attn_mask=mask)
    return backbone.norm(tokens)


@pytest.mark.parametrize("name", FAMILIES + ["deit3_small_patch16_224"])
def test_embed_blocks_norm_is_timms_forward_features(name):
    backbone = tiny(name)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = backbone.model.forward_features(x)
        tokens = backbone.embed(x)
        ours = run_blocks(backbone, tokens)
        full_mask = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool)
        masked = run_blocks(backbone, tokens, full_mask)
    assert tokens.shape == (2, backbone.num_tokens, 32)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(masked, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(backbone(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "name, prefix", [("vit_small_patch16_224", 1), ("vit_small_patch14_reg4_dinov2", 5),
                     ("eva02_small_patch14_224", 1)]
)
def test_geometry_comes_from_timm(name, prefix):
    backbone = tiny(name, img_size=(48, 32))
    patch = 16 if "patch16" in name else 14
    assert backbone.img_size == (48, 32) and backbone.patch_size == patch
    assert backbone.grid_size == (48 // patch, 32 // patch)
    assert backbone.num_prefix_tokens == prefix
    assert backbone.num_tokens == prefix + (48 // patch) * (32 // patch)
    assert backbone.embed_dim == 32


@pytest.mark.parametrize("name", FAMILIES)
def test_images_in_one_sequence_each_get_their_own_prefix_and_positions(name):
    """Three images concatenated under a block-diagonal mask = three separate timm forwards.

    For EVA-02 this pins the per-image rotary embedding: every image's patches are rotated by
    their position in their own image, every image's prefix tokens by nothing.
    """
    backbone = tiny(name)
    x = torch.randn(3, 3, 32, 32)
    n = backbone.num_tokens
    with torch.no_grad():
        expected = backbone.model.forward_features(x)
        sequence = backbone.embed(x).reshape(1, 3 * n, 32)
        mask = torch.block_diag(*[torch.ones(n, n)] * 3).bool()
        out = run_blocks(backbone, sequence, mask).reshape(3, n, 32)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_eva_sequence_must_be_whole_images():
    backbone = tiny("eva02_small_patch14_224")
    tokens = torch.randn(1, backbone.num_tokens + 1, 32)
    with pytest.raises(ValueError, match="not whole images of 5 tokens"):
        backbone.blocks[0](tokens)


@pytest.mark.parametrize("name", FAMILIES)
def test_information_flows_only_where_the_mask_allows(name):
    """Images 0, 1, 2 in one sequence under a causal mask: a change to image 2 reaches no one
    else; a change to image 0 reaches images 1 and 2."""
    backbone = tiny(name)
    n = backbone.num_tokens
    images = torch.randn(3, 3, 32, 32)
    mask = torch.tril(torch.ones(3, 3, dtype=torch.bool)).repeat_interleave(n, 0)
    mask = mask.repeat_interleave(n, 1)

    def forward(x):
        with torch.no_grad():
            return run_blocks(backbone, backbone.embed(x).reshape(1, 3 * n, 32), mask).reshape(3, n, 32)

    base = forward(images)
    changed_last = forward(torch.cat([images[:2], torch.randn(1, 3, 32, 32)]))
    assert torch.equal(changed_last[:2], base[:2])
    assert not torch.allclose(changed_last[2], base[2])
    changed_first = forward(torch.cat([torch.randn(1, 3, 32, 32), images[1:]]))
    assert not torch.allclose(changed_first[1], base[1])
    assert not torch.allclose(changed_first[2], base[2])


def test_a_query_that_may_see_nothing_stays_finite():
    backbone = tiny("vit_small_patch16_224")
    tokens = torch.randn(1, 2 * backbone.num_tokens, 32)
    mask = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool)
    mask[:3] = False
    with torch.no_grad():
        out = run_blocks(backbone, tokens, mask)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_parameters_are_timms_unchanged(name):
    backbone = tiny(name)
    torch.manual_seed(0)
    plain = timm.create_model(name, num_classes=0, **TINY)
    assert sum(p.numel() for p in backbone.parameters()) == sum(p.numel() for p in plain.parameters())
    assert list(backbone.state_dict()) == [f"model.{k}" for k in plain.state_dict()]
    blocks = sum(p.numel() for block in backbone.blocks for p in block.parameters())
    assert blocks == sum(p.numel() for p in plain.blocks.parameters())


def test_a_family_whose_blocks_take_no_mask_fails_naming_it():
    with pytest.raises(UnsupportedTimmModelError, match=r"'beit_base_patch16_224' \(Beit\).*take no attention mask"):
        build_timm_backbone("beit_base_patch16_224", **TINY)


def test_a_non_vit_fails_naming_it():
    with pytest.raises(UnsupportedTimmModelError, match="'resnet18'.*not a plain ViT"):
        build_timm_backbone("resnet18")


def test_patch_dropout_is_refused():
    with pytest.raises(UnsupportedTimmModelError, match="patch_drop_rate=0"):
        build_timm_backbone("vit_small_patch16_224", patch_drop_rate=0.5, **TINY)


def test_unknown_model_names_close_matches():
    with pytest.raises(ValueError, match="no model named 'vit_smal_patch16_224'.*vit_small_patch16_224"):
        build_timm_backbone("vit_smal_patch16_224")


def test_pretrained_is_timms_own(monkeypatch):
    seen = {}
    create = timm.create_model

    def spy(name, pretrained=False, **options):
        seen.update(name=name, pretrained=pretrained)
        return create(name, pretrained=False, **options)  # no download in tests

    monkeypatch.setattr(timm, "create_model", spy)
    build_timm_backbone("vit_small_patch16_224", pretrained=True, **TINY)
    assert seen == {"name": "vit_small_patch16_224", "pretrained": True}
    with pytest.raises(ValueError, match="either pretrained=True"):
        build_timm_backbone("vit_small_patch16_224", pretrained=True, weights="w.pt", **TINY)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
@pytest.mark.parametrize("name", FAMILIES)
def test_local_weights_load(tmp_path, name, suffix):
    source = tiny(name)
    state = {k[len("model."):]: v for k, v in source.state_dict().items()}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:  # a training checkpoint: nested, with the classifier of a 1000-class model
        head = {"head.weight": torch.zeros(1000, 32), "head.bias": torch.zeros(1000)}
        torch.save({"state_dict": {**state, **head}, "epoch": 3}, path)
    torch.manual_seed(1)
    loaded = build_timm_backbone(name, weights=path, **TINY).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), atol=0, rtol=0)


def test_weights_for_another_image_size_are_resampled_as_timm_does(tmp_path):
    from safetensors.torch import save_file

    source = tiny("vit_small_patch16_224")
    save_file({k[len("model."):]: v for k, v in source.state_dict().items()}, str(tmp_path / "w.safetensors"))
    bigger = build_timm_backbone("vit_small_patch16_224", weights=tmp_path / "w.safetensors", **{**TINY, "img_size": 64})
    assert bigger.model.pos_embed.shape == (1, 1 + 16, 32)
    torch.testing.assert_close(bigger.model.cls_token, source.model.cls_token)


def test_a_wrong_weights_file_names_the_keys(tmp_path):
    from safetensors.torch import save_file

    state = {k[len("model."):]: v for k, v in tiny("vit_small_patch16_224").state_dict().items()}
    del state["blocks.1.mlp.fc2.bias"]
    state["blocks.1.mlp.fc3.bias"] = torch.zeros(32)
    state["norm.weight"] = torch.ones(48)
    save_file(state, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(ValueError) as error:
        build_timm_backbone("vit_small_patch16_224", weights=tmp_path / "wrong.safetensors", **TINY)
    message = str(error.value)
    assert "missing keys (1): blocks.1.mlp.fc2.bias" in message
    assert "unexpected keys (1): blocks.1.mlp.fc3.bias" in message
    assert "norm.weight (file (48,), model (32,))" in message


def test_weights_file_that_is_not_a_state_dict(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="holds no state dict of tensors"):
        build_timm_backbone("vit_small_patch16_224", weights=tmp_path / "list.pt", **TINY)
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        build_timm_backbone("vit_small_patch16_224", weights=tmp_path / "nowhere.safetensors", **TINY)


def test_registered_as_a_family_and_listed_with_an_example(capsys):
    backbone = get_registries().backbone.build("timm:vit_small_patch14_reg4_dinov2", **TINY)
    assert isinstance(backbone, TimmViT) and backbone.num_prefix_tokens == 5
    assert main(["plugins", "--kind", "backbone"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if "timm:*" in row)
    assert "extpose-plugin-timm" in line and "(e.g. timm:vit_small_patch16_224)" in line


def test_the_docs_examples_run():
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[3] / "docs" / "timm.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(doc), "exec"), {})


# -- through the ExtPose extension ---------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_extended_one_frame_rgb_is_timms_forward_features_and_adds_no_parameter(name):
    from extpose_sdk.extend import ExtendedViT

    backbone = tiny(name)
    extended = ExtendedViT(backbone, mask="paper").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = extended({"rgb": x[:, None]})
        expected = backbone.model.forward_features(x)
    assert out.tokens.shape == (2, 1, 1, backbone.num_tokens, 32)
    torch.testing.assert_close(out.tokens[:, 0, 0], expected, atol=1e-5, rtol=0)
    count = sum(p.numel() for p in extended.parameters())
    assert count == sum(p.numel() for p in backbone.model.parameters())
    assert count == sum(p.numel() for p in timm.create_model(name, num_classes=0, **TINY).parameters())


REACH = [  # mask, frames that see frame 1 (other than itself), across frames only its own modality
    ("frame", lambda f: False, False),
    ("full", lambda f: True, False),
    ("paper", lambda f: True, True),
    ("window(1)", lambda f: abs(f - 1) <= 1, False),
    ("causal(1)", lambda f: 0 <= f - 1 <= 1, False),
    ("paper+causal(8)", lambda f: f >= 1, True),
]


@pytest.mark.parametrize("name", FAMILIES)
def test_extended_masks_reach_exactly_what_they_allow(name):
    """One block (one hop of attention), T=4, rgb + skeleton; frame 1's RGB changes: the
    (frame, modality) outputs that move are exactly those the mask lets see it."""
    from extpose_sdk.extend import ExtendedViT

    backbone = tiny(name, depth=1)
    g = torch.Generator().manual_seed(1)
    clip = {m: torch.randn(1, 4, 3, 32, 32, generator=g) for m in ("rgb", "skeleton")}
    changed = {"rgb": clip["rgb"].clone(), "skeleton": clip["skeleton"]}
    changed["rgb"][:, 1] += torch.randn(3, 32, 32, generator=g)
    for mask, frame_ok, same_modality in REACH:
        extended = ExtendedViT(backbone, mask=mask).eval()
        with torch.no_grad():
            moved = (extended(clip).tokens[0] - extended(changed).tokens[0]).abs().amax((-1, -2)) > 1e-6
        expected = torch.tensor([
            [f == 1 or (frame_ok(f) and (not same_modality or m == 0)) for m in range(2)]
            for f in range(4)
        ])
        assert torch.equal(moved, expected), mask


@pytest.mark.parametrize("name", FAMILIES)
def test_extended_absent_images_are_as_if_not_there(name):
    """Absent images are left out of the sequence (packing): a sample equals the same sample
    run with only its present images, for each family (EVA-02: the rope follows the images)."""
    from extpose_sdk.extend import ExtendedViT

    backbone = tiny(name)
    extended = ExtendedViT(backbone, mask="paper").eval()
    clip = {m: torch.randn(2, 3, 3, 32, 32) for m in ("rgb", "skeleton")}
    present = {"skeleton": torch.tensor([[False, False, False], [True, True, True]])}
    with torch.no_grad():
        out = extended(clip, present=present).tokens
        rgb_only = extended({"rgb": clip["rgb"][:1]}).tokens
        both = extended({m: x[1:] for m, x in clip.items()}).tokens
    torch.testing.assert_close(out[:1, :, :1], rgb_only, atol=1e-5, rtol=0)
    assert (out[0, :, 1] == 0).all()
    torch.testing.assert_close(out[1:], both, atol=1e-5, rtol=0)


def test_a_deep_copy_runs_its_own_blocks():
    """Copies (an EMA model, say) must call their own timm blocks, not the original's."""
    import copy

    backbone = tiny("eva02_small_patch14_224")
    twin = copy.deepcopy(backbone)
    assert twin.blocks[0].block is twin.model.blocks[0]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        twin.model.blocks[0].mlp.fc1.weight.add_(1.0)
        torch.testing.assert_close(twin(x), twin.model.forward_features(x), atol=1e-5, rtol=0)
        assert not torch.allclose(twin(x), backbone(x))
