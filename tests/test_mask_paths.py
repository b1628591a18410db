"""The paper's mask as merged unmasked attentions: same numbers as the reference, taken when it
should be, and a dense-mask fallback with the same numbers everywhere else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from extpose_sdk import mask_paths
from extpose_sdk.attention import attention
from extpose_sdk.extend import ExtendedViT, MaskSpec, parse_mask
from extpose_sdk.mask_paths import PaperMask
from extpose_sdk.vit import ViT, ViTConfig

MASKS = ["frame", "full", "paper", "window(1)", "causal(2)", "paper+window(1)",
         "paper+causal(2)", "paper+window(3)"]


def vit_with_weights(seed=0, depth=2):
    """A tiny ViT with non-default weights: every parameter moved off its initial value, and the
    qkv projection scaled up so the attention is peaked (a wrong merge then shows)."""
    torch.manual_seed(seed)
    vit = ViT(ViTConfig(img_size=(32, 32), patch_size=8, patch_padding=0, embed_dim=32,
                        depth=depth, num_heads=4))
    with torch.no_grad():
        for name, p in vit.named_parameters():
            p.add_(0.1 * torch.randn_like(p))
            if "attn.qkv.weight" in name:
                p.mul_(3.0)
    return vit.eval()


def clip(B, T, M, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {f"m{i}": torch.randn(B, T, 3, 32, 32, generator=g) for i in range(M)}


@pytest.fixture
def merged_calls(monkeypatch):
    """Counts the calls of the merged path (and still runs it)."""
    calls = []
    original = mask_paths.merged_attention

    def counted(q, k, v, mask):
        calls.append(mask)
        return original(q, k, v, mask)

    monkeypatch.setattr(mask_paths, "merged_attention", counted)
    return calls


def run(vit, inputs, mask, backend, present=None):
    with torch.no_grad():
        return ExtendedViT(vit, mask=mask, attention=backend)(inputs, present).tokens


@pytest.mark.parametrize("M", [1, 2, 3])
@pytest.mark.parametrize("T", [1, 4, 16])
@pytest.mark.parametrize("mask", MASKS)
def test_every_mask_equals_the_reference_backend(mask, T, M, merged_calls):
    vit, inputs = vit_with_weights(), clip(B=2, T=T, M=M)
    fast = run(vit, inputs, mask, "sdpa")
    assert len(merged_calls) == (
        len(vit.blocks) if parse_mask(mask).paper_rule(T) and T > 1 and M > 1 else 0)
    reference = run(vit, inputs, mask, "reference")
    assert len(merged_calls) in (0, len(vit.blocks))  # the reference backend never merges
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)


def test_paper_takes_the_merged_path_and_builds_no_dense_mask(merged_calls, monkeypatch):
    def no_dense(*args, **kwargs):
        raise AssertionError("a dense mask was built")

    monkeypatch.setattr(MaskSpec, "allowed", no_dense)
    monkeypatch.setattr(mask_paths, "_dense", no_dense)
    vit = vit_with_weights(depth=3)
    run(vit, clip(B=2, T=16, M=2), "paper", "auto")
    assert merged_calls == [PaperMask(16, 2, 16)] * 3


def test_a_modality_dropped_whole_keeps_the_merged_path(merged_calls):
    """Modality dropout removes a modality from every frame of a sample: the present images of
    each group still form a frames x modalities grid, so every group merges (or needs no mask)."""
    vit, inputs = vit_with_weights(), clip(B=4, T=4, M=3)
    present = {"m0": torch.tensor([1, 1, 0, 1]).bool()[:, None].expand(4, 4),
               "m1": torch.tensor([1, 0, 1, 1]).bool()[:, None].expand(4, 4),
               "m2": torch.tensor([1, 0, 0, 0]).bool()[:, None].expand(4, 4)}
    fast = run(vit, inputs, "paper", "sdpa", present)
    # sample 0 has all three modalities, sample 3 two: they merge; samples 1 and 2 keep one
    # modality, which needs no mask at all
    assert sorted((m.frames, m.modalities) for m in merged_calls) == [(4, 2)] * 2 + [(4, 3)] * 2
    reference = run(vit, inputs, "paper", "reference", present)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)
    assert fast[1, :, 1:].abs().max() == 0 and fast[2, :, [0, 2]].abs().max() == 0


def test_absent_frames_of_every_modality_keep_the_merged_path(merged_calls):
    vit, inputs = vit_with_weights(), clip(B=2, T=4, M=2)
    frames = torch.tensor([[1, 0, 1, 1], [1, 1, 1, 1]]).bool()
    fast = run(vit, inputs, "paper", "sdpa", {"m0": frames, "m1": frames})
    assert sorted(m.frames for m in merged_calls) == [3, 3, 4, 4]
    reference = run(vit, inputs, "paper", "reference", {"m0": frames, "m1": frames})
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)


def test_a_modality_missing_in_some_frames_falls_back_with_equal_numbers(merged_calls):
    vit, inputs = vit_with_weights(), clip(B=2, T=4, M=2)
    present = {"m1": torch.tensor([[1, 0, 1, 1], [1, 1, 1, 1]]).bool()}
    fast = run(vit, inputs, "paper", "sdpa", present)
    assert merged_calls == [PaperMask(4, 2, 16)] * 2  # the full sample merges, the other cannot
    reference = run(vit, inputs, "paper", "reference", present)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)


def test_training_merges_on_cpu_with_the_gradients_of_the_reference(merged_calls):
    inputs = clip(B=2, T=4, M=2)
    results = []
    for backend in ("sdpa", "reference"):
        vit = vit_with_weights()
        out = ExtendedViT(vit, mask="paper", attention=backend).train()(inputs).tokens
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        results.append((out.detach(), [p.grad for p in vit.parameters()]))
    assert len(merged_calls) == len(vit.blocks)  # the sdpa run only
    (fast, fast_grads), (reference, reference_grads) = results
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)
    for a, b in zip(fast_grads, reference_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_checkpointed_training_merges_with_the_same_gradients(merged_calls):
    inputs = clip(B=1, T=3, M=3)
    grads = []
    for checkpointing in (False, True):
        vit = vit_with_weights()
        extended = ExtendedViT(vit, mask="paper", checkpointing=checkpointing).train()
        extended(inputs).tokens.square().mean().backward()
        grads.append([p.grad for p in vit.parameters()])
    assert merged_calls and all(m == PaperMask(3, 3, 16) for m in merged_calls)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("T, M, N", [(3, 2, 2), (2, 3, 2), (1, 2, 3), (3, 1, 2)])
def test_the_merged_gradient_is_exact(T, M, N):
    """Although the kernels' LSE has no gradient (float64 gradcheck against finite differences)."""
    q, k, v = (t.requires_grad_(True) for t in qkv(2, 2, T, M, N, d=3, dtype=torch.float64))
    mask = PaperMask(T, M, N)
    assert torch.autograd.gradcheck(lambda *x: mask_paths.merged_attention(*x, mask), (q, k, v))


def test_inference_in_train_mode_without_gradients_merges(merged_calls):
    vit = vit_with_weights()
    with torch.no_grad():
        ExtendedViT(vit, mask="paper").train()(clip(B=1, T=2, M=2))
    assert len(merged_calls) == len(vit.blocks)


class Wrapped(nn.Module):
    """A block that is not the SDK's (as timm's adapter blocks are not)."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x, attn_mask=None):
        return self.block(x, attn_mask=attn_mask)


def test_other_blocks_are_given_the_dense_mask(merged_calls):
    vit, inputs = vit_with_weights(), clip(B=2, T=4, M=2)
    expected = run(vit, inputs, "paper", "reference")
    vit.blocks = nn.ModuleList(Wrapped(block) for block in vit.blocks)
    seen = []
    vit.blocks[0].register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("attn_mask")), with_kwargs=True)
    fast = run(vit, inputs, "paper", "sdpa")
    assert merged_calls == [] and isinstance(seen[0], torch.Tensor)
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=0)


# -- attention() with a PaperMask -------------------------------------------------------------


def qkv(B, H, T, M, N, d=8, dtype=torch.float32, seed=0):
    """Queries and keys scaled up (peaked attention), values of unit scale."""
    g = torch.Generator().manual_seed(seed)
    shape = (B, H, T * M * N, d)
    return tuple(scale * torch.randn(shape, generator=g, dtype=dtype) for scale in (2, 2, 1))


def oracle(q, k, v, allowed):
    """The masked softmax written out in float64."""
    q, k, v = (t.double() for t in (q, k, v))
    scores = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).masked_fill(~allowed, float("-inf"))
    return scores.softmax(dim=-1) @ v


@pytest.mark.parametrize("T, M, N", [(1, 2, 3), (4, 1, 5), (4, 2, 5), (3, 3, 4), (16, 2, 2)])
def test_merged_attention_equals_the_dense_mask(T, M, N, merged_calls):
    q, k, v = qkv(2, 3, T, M, N)
    mask = PaperMask(T, M, N)
    out = attention(q, k, v, mask, backend="sdpa")
    assert len(merged_calls) == 1
    dense = attention(q, k, v, mask.dense(), backend="reference")
    torch.testing.assert_close(out, dense, atol=1e-5, rtol=0)
    torch.testing.assert_close(attention(q, k, v, mask, backend="reference"), dense,
                               atol=0, rtol=0)
    assert len(merged_calls) == 1


def test_merged_attention_in_float64_and_bfloat16():
    q, k, v = qkv(1, 2, 4, 2, 6, dtype=torch.float64)
    mask = PaperMask(4, 2, 6)
    dense = oracle(q, k, v, mask.dense())
    torch.testing.assert_close(mask_paths.merged_attention(q, k, v, mask), dense,
                               atol=1e-12, rtol=0)
    low = mask_paths.merged_attention(*(t.bfloat16() for t in (q, k, v)), mask)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.double(), dense, atol=0.1, rtol=0.02)


def test_the_dense_equivalent_is_the_paper_rule_and_cached():
    mask = PaperMask(3, 2, 4)
    assert torch.equal(mask.dense(), parse_mask("paper").allowed(3, 2, 4))
    assert mask.dense() is mask.dense("cpu")
    assert mask.total == 24


def test_merges_on_cpu_with_or_without_a_gradient_in_float_dtypes():
    q, k, v = qkv(1, 1, 2, 2, 2)
    assert mask_paths.merges(q, k, v)
    assert mask_paths.merges(q.requires_grad_(True), k, v)
    assert not mask_paths.merges(*(t.detach().int() for t in (q, k, v)))
    assert not mask_paths.merges(*(t.detach().to("meta") for t in (q, k, v)))


def test_shapes_are_checked():
    q, k, v = qkv(1, 1, 2, 2, 2)
    with pytest.raises(ValueError, match=r"needs q, k, v of shape \(B, H, 12, d\); got q "):
        attention(q, k, v, PaperMask(2, 2, 3))
    with pytest.raises(ValueError, match="needs L = 12"):
        mask_paths.merged_attention(q, k, v, PaperMask(2, 2, 3))
    with pytest.raises(ValueError, match="must be positive"):
        PaperMask(0, 2, 3)


def test_the_paper_rule_is_named_where_a_window_does_not_cut_it():
    assert parse_mask("paper").paper_rule(16)
    assert parse_mask("paper+window(3)").paper_rule(4)
    assert not parse_mask("paper+window(3)").paper_rule(5)
    assert not parse_mask("paper+causal(8)").paper_rule(2)
    assert not parse_mask("full").paper_rule(4) and not parse_mask("frame").paper_rule(4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA LSE kernel needs a GPU")
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_merged_attention_on_gpu(dtype, atol, merged_calls):
    q, k, v = (t.cuda().to(dtype) for t in qkv(2, 4, 16, 2, 12, d=64))
    mask = PaperMask(16, 2, 12)
    out = attention(q, k, v, mask, backend="sdpa")
    assert len(merged_calls) == 1 and out.dtype == dtype
    dense = attention(*(t.float() for t in (q, k, v)), mask.dense("cuda"), backend="reference")
    torch.testing.assert_close(out.float(), dense, atol=atol, rtol=0)
    q.requires_grad_(True)  # no gradient through the CUDA kernel's LSE: the dense mask
    attention(q, k, v, mask, backend="sdpa").sum().backward()
    assert len(merged_calls) == 1 and q.grad is not None
