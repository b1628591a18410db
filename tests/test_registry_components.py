"""Every registered backbone honours the base-ViT interface the ExtPose extension relies on.

Parametrised over the registry itself (each family, such as ``timm:*``, by the variants it
declares), so a backbone is tested here the moment its plugin registers it.
"""

import pytest
import torch

from extpose_sdk import get_registries
from extpose_sdk.vit import BaseViT

#: Tiny sizes every backbone factory takes (the ViTPose family and timm alike).
TINY = dict(img_size=(64, 48), embed_dim=32, depth=2, num_heads=4)


def registered_backbones() -> list[str]:
    names = []
    for component in get_registries().backbone:
        if component.is_family:
            prefix = component.name[:-1]
            example = component.metadata.get("example", "")
            variants = component.metadata.get("variants") or [example[len(prefix):]]
            names += [prefix + variant for variant in variants]
        else:
            names.append(component.name)
    return names


BACKBONES = registered_backbones()


def build(name: str) -> BaseViT:
    torch.manual_seed(0)
    return get_registries().backbone.build(name, **TINY).eval()


def run(backbone: BaseViT, tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    for block in backbone.blocks:
        tokens = block(tokens, attn_mask=mask)
    return backbone.norm(tokens)


def test_every_family_is_tested():
    assert {"vitpose", "hmr2", "hamer"} <= set(BACKBONES)
    assert {"timm:vit_small_patch16_224", "timm:vit_small_patch14_reg4_dinov2",
            "timm:eva02_small_patch14_224"} <= set(BACKBONES)


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_geometry_and_forward(name):
    backbone = build(name)
    assert isinstance(backbone, BaseViT)
    assert tuple(backbone.img_size) == (64, 48) and backbone.embed_dim == 32
    h, w = backbone.grid_size
    assert backbone.num_tokens == backbone.num_prefix_tokens + h * w
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        tokens = backbone.embed(x)
        full = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool)
        masked = run(backbone, tokens, full)
        plain = backbone(x)
    assert tokens.shape == (2, backbone.num_tokens, 32)
    torch.testing.assert_close(masked, plain, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", BACKBONES)
def test_images_in_one_sequence_are_independent_under_a_block_diagonal_mask(name):
    """What lets ExtPose put frames and modalities in one sequence: each image's tokens (its
    prefix tokens, its positions) stay its own; the mask alone decides who sees whom."""
    backbone = build(name)
    x = torch.randn(3, 3, 64, 48)
    n = backbone.num_tokens
    with torch.no_grad():
        alone = backbone(x)
        sequence = backbone.embed(x).reshape(1, 3 * n, 32)
        mask = torch.block_diag(*[torch.ones(n, n)] * 3).bool()
        together = run(backbone, sequence, mask).reshape(3, n, 32)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", BACKBONES)
def test_a_change_reaches_only_images_the_mask_allows(name):
    backbone = build(name)
    n = backbone.num_tokens
    causal = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    mask = causal.repeat_interleave(n, 0).repeat_interleave(n, 1)
    images = torch.randn(3, 3, 64, 48)

    def forward(x):
        with torch.no_grad():
            return run(backbone, backbone.embed(x).reshape(1, 3 * n, 32), mask).reshape(3, n, 32)

    base = forward(images)
    late = forward(torch.cat([images[:2], torch.randn(1, 3, 64, 48)]))
    assert torch.equal(late[:2], base[:2]) and not torch.allclose(late[2], base[2])
    early = forward(torch.cat([torch.randn(1, 3, 64, 48), images[1:]]))
    assert not torch.allclose(early[1], base[1]) and not torch.allclose(early[2], base[2])


# -- the extension's invariants on every backbone -------------------------------------------


@pytest.mark.parametrize("name", BACKBONES)
def test_extension_invariants(name):
    """No new parameter; one frame of RGB gives the backbone's own tokens; with ``frame`` masks a
    change to one frame reaches no other frame, with ``full`` it reaches all."""
    from extpose_sdk.extend import ExtendedViT

    backbone = build(name)
    extended = ExtendedViT(backbone, mask="frame").eval()
    assert sum(p.numel() for p in extended.parameters()) == sum(p.numel() for p in backbone.parameters())
    x = torch.randn(2, 3, 64, 48)
    clip = {"rgb": torch.randn(1, 3, 3, 64, 48), "skeleton": torch.randn(1, 3, 3, 64, 48)}
    changed = {"rgb": clip["rgb"], "skeleton": clip["skeleton"].clone()}
    changed["skeleton"][:, 0] = torch.randn(3, 64, 48)
    with torch.no_grad():
        single = extended({"rgb": x[:, None]}).tokens[:, 0, 0]
        torch.testing.assert_close(single, backbone(x), atol=1e-5, rtol=0)
        before, after = extended(clip).tokens[0], extended(changed).tokens[0]
        torch.testing.assert_close(after[1:], before[1:], atol=1e-6, rtol=0)
        assert not torch.allclose(after[0], before[0])
        full = ExtendedViT(backbone, mask="full").eval()
        before, after = full(clip).tokens[0], full(changed).tokens[0]
        assert not torch.allclose(after[2, 0], before[2, 0])
