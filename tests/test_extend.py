"""The ExtPose extension: zero new parameters, strict superset, masks, packing, dropout."""

import pytest
import torch

from extpose_sdk.extend import ExtendedViT, MaskSpec, ModalityDropout, parse_mask
from extpose_sdk.vit import ViT, ViTConfig


def tiny_vit(seed=0, depth=2):
    torch.manual_seed(seed)
    return ViT(ViTConfig(img_size=(32, 32), patch_size=8, patch_padding=0, embed_dim=32,
                         depth=depth, num_heads=4)).eval()


def clip(B=2, T=3, names=("rgb", "skeleton"), seed=1):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(B, T, 3, 32, 32, generator=g) for name in names}


def test_no_parameter_is_added():
    vit = tiny_vit()
    extended = ExtendedViT(vit, mask="paper")
    assert sum(p.numel() for p in extended.parameters()) == sum(p.numel() for p in vit.parameters())
    assert [n for n, _ in extended.named_parameters()] == [f"vit.{n}" for n, _ in vit.named_parameters()]


@pytest.mark.parametrize("mask", ["frame", "paper", "full", "causal(2)"])
def test_one_frame_rgb_only_equals_the_base_vit(mask):
    vit = tiny_vit()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = ExtendedViT(vit, mask=mask)({"rgb": x[:, None]})
        base = vit(x)
    assert out.tokens.shape == (3, 1, 1, 16, 32)
    torch.testing.assert_close(out.tokens[:, 0, 0], base, atol=1e-5, rtol=0)


def changed_outputs(mask, t=1, modality=0, T=4):
    """Which (frame, modality) outputs move when frame t of one modality is perturbed.

    One block: one hop of attention, so the result is exactly the mask's reach.
    """
    vit = tiny_vit(depth=1)
    extended = ExtendedViT(vit, mask=mask)
    inputs = clip(B=1, T=T)
    names = list(inputs)
    perturbed = {k: v.clone() for k, v in inputs.items()}
    perturbed[names[modality]][:, t] += torch.randn(3, 32, 32)
    with torch.no_grad():
        a = extended(inputs).tokens[0]
        b = extended(perturbed).tokens[0]
    return (a - b).abs().amax(dim=(-1, -2)) > 1e-6  # (T, M)


def expected(T, M, allowed_frame, same_modality_only, t=1, m=0):
    out = torch.zeros(T, M, dtype=torch.bool)
    for frame in range(T):
        for modality in range(M):
            if frame == t:
                out[frame, modality] = True
            elif allowed_frame(frame) and (not same_modality_only or modality == m):
                out[frame, modality] = True
    return out


@pytest.mark.parametrize(
    "mask, frame_ok, same_modality",
    [
        ("frame", lambda f: False, False),
        ("full", lambda f: True, False),
        ("paper", lambda f: True, True),
        ("window(1)", lambda f: abs(f - 1) <= 1, False),
        ("causal(1)", lambda f: 0 <= f - 1 <= 1, False),  # only frames after t can see t
        ("paper+causal(8)", lambda f: f >= 1, True),
    ],
)
def test_information_flows_only_where_the_mask_allows(mask, frame_ok, same_modality):
    got = changed_outputs(mask)
    torch.testing.assert_close(got, expected(4, 2, frame_ok, same_modality))


def test_absent_modality_equals_a_batch_without_it():
    vit = tiny_vit()
    extended = ExtendedViT(vit, mask="paper")
    inputs = clip(B=2, T=3)
    present = {"skeleton": torch.tensor([[False, False, False], [True, False, True]])}
    with torch.no_grad():
        out = extended(inputs, present=present)
        alone = extended({"rgb": inputs["rgb"][:1]})
    torch.testing.assert_close(out.tokens[:1, :, 0], alone.tokens[:, :, 0], atol=1e-6, rtol=0)
    assert (out.tokens[0, :, 1] == 0).all() and (out.tokens[1, 1, 1] == 0).all()
    assert out.present[1, :, 1].tolist() == [True, False, True]


def padded_reference(vit, inputs, present, mask):
    """The straightforward computation: every token in, absent keys masked out."""
    names = list(inputs)
    B, T = inputs[names[0]].shape[:2]
    tokens = torch.stack(
        [vit.embed(inputs[n].flatten(0, 1)).reshape(B, T, -1, 32) for n in names], dim=2
    )
    M, N = tokens.shape[2], tokens.shape[3]
    shown = torch.stack([present.get(n, torch.ones(B, T, dtype=torch.bool)) for n in names], -1)
    key = shown[..., None].expand(B, T, M, N).reshape(B, -1)
    allowed = parse_mask(mask).allowed(T, M, N)
    full = allowed[None] & key[:, None, :] | torch.eye(allowed.shape[0], dtype=torch.bool)
    x = tokens.flatten(1, 3)
    for block in vit.blocks:
        x = block(x, attn_mask=full[:, None])
    return vit.norm(x).reshape(B, T, M, N, 32) * shown[..., None, None]


@pytest.mark.parametrize(
    "mask, packing",
    [("paper", "groups"), ("full", "groups"), ("frame", "groups"), ("window(1)", "groups"),
     ("full", "segments"), ("frame", "segments")],
)
def test_packed_equals_padded(mask, packing):
    vit = tiny_vit()
    inputs = clip(B=3, T=3)
    present = {
        "rgb": torch.tensor([[True, True, True], [False, False, False], [True, False, True]]),
        "skeleton": torch.tensor([[False, True, True], [True, True, True], [True, True, False]]),
    }
    with torch.no_grad():
        packed = ExtendedViT(vit, mask=mask, packing=packing)(inputs, present=present).tokens
        padded = padded_reference(vit, inputs, present, mask)
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=0)


def test_segment_packing_needs_an_unrestricted_mask_and_a_willing_backbone():
    inputs = clip(B=1, T=3)
    with pytest.raises(ValueError, match="packing='groups'"):
        ExtendedViT(tiny_vit(), mask="paper", packing="segments")(inputs)
    with torch.no_grad():  # one frame: nothing inside the sequence is restricted
        one = ExtendedViT(tiny_vit(), mask="paper", packing="segments")(clip(B=2, T=1))
    assert one.tokens.shape == (2, 1, 2, 16, 32)
    with pytest.raises(ValueError, match="available: auto, groups, segments"):
        ExtendedViT(tiny_vit(), packing="pad")
    unwilling = tiny_vit()
    unwilling.accepts_segment_masks = False
    with pytest.raises(ValueError, match="ViT does not"):
        ExtendedViT(unwilling, packing="segments")


@pytest.mark.parametrize(
    "mask", ["frame", "full", "paper", "window(1)", "window(3)", "causal(3)", "paper+window(5)"]
)
def test_unrestricted_says_whether_the_mask_is_all_true(mask):
    spec = parse_mask(mask)
    for T in (1, 2, 4):
        for M in (1, 2):
            assert spec.unrestricted(T, M) == bool(spec.allowed(T, M, 2).all()), (mask, T, M)


def test_backends_agree():
    inputs = clip(B=2, T=2)
    present = {"skeleton": torch.tensor([[True, False], [True, True]])}
    outs = {}
    for backend in ("reference", "sdpa"):
        with torch.no_grad():
            outs[backend] = ExtendedViT(tiny_vit(), mask="paper", attention=backend)(
                inputs, present=present
            ).tokens
    torch.testing.assert_close(outs["reference"], outs["sdpa"], atol=1e-4, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="xformers runs only on a CUDA GPU")
def test_xformers_agrees_on_gpu():  # pragma: no cover - no GPU in CI
    pytest.importorskip("xformers")
    inputs = {k: v.cuda() for k, v in clip(B=2, T=2).items()}
    present = {"skeleton": torch.tensor([[True, False], [False, True]], device="cuda")}
    vit = tiny_vit().cuda()
    runs = [("sdpa", "groups", "paper"), ("xformers", "groups", "paper"),  # dense bias
            ("sdpa", "groups", "frame"), ("xformers", "segments", "frame")]  # block-diagonal
    with torch.no_grad():
        outs = [
            ExtendedViT(vit, mask=m, attention=b, packing=p)(inputs, present=present).tokens
            for b, p, m in runs
        ]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-4, rtol=0)
    torch.testing.assert_close(outs[2], outs[3], atol=1e-4, rtol=0)


def test_frame_context_for_heads():
    out = ExtendedViT(tiny_vit())(clip(B=2, T=3), present={"rgb": torch.zeros(2, 3, dtype=torch.bool)})
    context, valid = out.frame_context()
    assert context.shape == (6, 32, 32) and valid.shape == (6, 32)
    assert not valid[:, :16].any() and valid[:, 16:].all()
    assert out.modality("skeleton").shape == (2, 3, 16, 32)
    with pytest.raises(KeyError, match="available: rgb, skeleton"):
        out.modality("depth")


def test_gradient_checkpointing_gives_the_same_gradients_and_runs_under_autocast():
    """Checkpointing changes memory, not numbers; bf16 autocast stays close to fp32."""
    inputs = clip(B=1, T=2)
    grads = []
    for checkpointing in (False, True):
        vit = tiny_vit().train()
        extended = ExtendedViT(vit, mask="paper", checkpointing=checkpointing)
        extended(inputs).tokens.square().sum().backward()
        grads.append(vit.blocks[0].attn.qkv.weight.grad.clone())
        with torch.no_grad():
            reference = extended(inputs).tokens
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = extended(inputs).tokens
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.float(), reference, atol=0.1, rtol=0.05)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_mask_names_and_errors():
    assert parse_mask("paper+window(4)") == MaskSpec("same-modality", window=4)
    assert parse_mask("causal(3)") == MaskSpec("all", window=3, causal=True)
    assert parse_mask("frame").frames_independent
    with pytest.raises(ValueError, match="available: frame, full, paper, window"):
        parse_mask("diagonal")
    with pytest.raises(ValueError, match="two kinds"):
        parse_mask("paper+full")
    with pytest.raises(ValueError, match="unknown attention backend"):
        ExtendedViT(tiny_vit(), attention="flash9")


def test_input_shape_errors_name_shapes():
    extended = ExtendedViT(tiny_vit())
    with pytest.raises(ValueError, match=r"rgb \(2, 3, 32, 32\)"):
        extended({"rgb": torch.zeros(2, 3, 32, 32)})
    with pytest.raises(ValueError, match=r"must have shape \(B, T\)"):
        extended(clip(B=1, T=2), present={"rgb": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="not among the inputs"):
        extended(clip(B=1, T=2), present={"depth": torch.ones(1, 2, dtype=torch.bool)})


def test_modality_dropout_is_seeded_and_never_drops_everything():
    present = {
        "rgb": torch.ones(2000, 4, dtype=torch.bool),
        "skeleton": torch.ones(2000, 4, dtype=torch.bool),
    }
    present["skeleton"][:500] = False  # these samples have only rgb, which must survive
    first = ModalityDropout(p=0.5, seed=3)(present)
    again = ModalityDropout(p=0.5, seed=3)(present)
    assert all(torch.equal(first[k], again[k]) for k in first)
    alive = first["rgb"].any(1) | first["skeleton"].any(1)
    assert alive.all()
    assert first["rgb"][:500].all()
    rate = 1 - first["rgb"][500:, 0].float().mean().item()
    assert 0.25 < rate < 0.45  # p = 0.5, minus the rescues of samples that lost both
    assert not (first["skeleton"] & ~present["skeleton"]).any()  # nothing absent comes back


def test_segment_packing_trains_like_group_packing():
    """Gradients through the packed sequence equal those of the per-pattern batches."""
    inputs = clip(B=2, T=2)
    present = {"skeleton": torch.tensor([[True, False], [False, True]])}
    grads = []
    for packing in ("groups", "segments"):
        vit = tiny_vit().train()
        extended = ExtendedViT(vit, mask="frame", packing=packing, checkpointing=True)
        extended(inputs, present=present).tokens.square().sum().backward()
        grads.append(vit.patch_embed.proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)
    assert grads[0].abs().sum() > 0
