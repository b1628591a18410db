"""Attention backends against a hand-written softmax: masks, empty rows, segments, choices."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from extpose_sdk import attention as A
from extpose_sdk.attention import SegmentMask, attention

D = torch.float64


def _oracle(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d)) v per batch and head, in numpy; rows with no key give zeros."""
    q, k, v = (t.double().numpy() for t in (q, k, v))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    allowed = np.ones(scores.shape, bool) if mask is None else np.broadcast_to(mask.numpy(),
                                                                                 scores.shape)
    scores = np.where(allowed, scores, -np.inf)
    top = np.where(allowed.any(-1, keepdims=True), scores.max(-1, keepdims=True), 0.0)
    weights = np.where(allowed, np.exp(scores - top), 0.0)
    total = weights.sum(-1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return torch.from_numpy(weights @ v)


def _qkv(B=2, H=3, L=5, d=4, S=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    S = L if S is None else S
    return (torch.randn(B, H, L, d, generator=g, dtype=D), torch.randn(B, H, S, d, generator=g,
            dtype=D), torch.randn(B, H, S, d, generator=g, dtype=D))


@pytest.mark.parametrize("backend", ["reference", "sdpa", "auto"])
def test_backends_equal_the_written_out_softmax(backend):
    q, k, v = _qkv(S=6)
    torch.testing.assert_close(attention(q, k, v, backend=backend), _oracle(q, k, v))
    mask = torch.rand(2, 1, 5, 6, generator=torch.Generator().manual_seed(1)) > 0.4
    mask[0, 0, 2] = False  # a query that may see nothing: zeros, not NaN
    mask[1, 0, 3] = False
    out = attention(q, k, v, mask=mask, backend=backend)
    torch.testing.assert_close(out, _oracle(q, k, v, mask))
    assert not out[0, :, 2].any() and not out[1, :, 3].any()
    assert out[0, :, 0].abs().sum() > 0
    half = attention(q.float(), k.float(), v.float(), mask=mask, backend=backend)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half.double(), _oracle(q, k, v, mask), atol=1e-5, rtol=1e-5)


def test_segments_equal_their_block_diagonal_mask():
    segments = SegmentMask([2, 3, 2, 1])
    assert segments.lengths == (2, 3, 2, 1) and segments.total == 8
    assert segments.segment_ids().tolist() == [0, 0, 1, 1, 1, 2, 2, 3]
    dense = segments.dense()
    assert dense.shape == (8, 8) and dense.sum().item() == 4 + 9 + 4 + 1
    assert dense[1, 0] and not dense[1, 2] and dense[4, 2] and not dense[7, 6]
    q, k, v = _qkv(B=1, L=8, seed=3)
    for backend in ("reference", "sdpa"):
        torch.testing.assert_close(attention(q, k, v, mask=segments, backend=backend),
                                   _oracle(q, k, v, dense))
    with pytest.raises(ValueError) as error:
        attention(q[:, :, :7], k[:, :, :7], v[:, :, :7], mask=segments)
    assert str(error.value) == ("a SegmentMask of 4 segments, 8 tokens in all, needs q, k, v of "
                                "shape (1, H, 8, d); got q (1, 3, 7, 4)")
    with pytest.raises(ValueError):
        attention(torch.cat([q, q]), torch.cat([k, k]), torch.cat([v, v]), mask=segments)
    for bad in ([], [2, 0]):
        with pytest.raises(ValueError) as error:
            SegmentMask(bad)
        assert str(error.value) == (f"SegmentMask lengths must be positive and non-empty; got "
                                    f"{tuple(bad)}")


def test_inputs_and_backend_names_are_checked():
    q, k, v = _qkv()
    with pytest.raises(ValueError) as error:
        attention(q[0], k[0], v[0])
    assert str(error.value) == "attention expects q, k, v of shape (B, H, L, d); got q (3, 5, 4)"
    with pytest.raises(TypeError) as error:
        attention(q, k, v, mask=torch.ones(5, 5))
    assert str(error.value) == ("attention mask must be boolean (True = may attend), got "
                                "torch.float32")
    with pytest.raises(ValueError) as error:
        A.check_backend_name("flash")
    assert str(error.value) == ("unknown attention backend 'flash'; available: auto, reference, "
                                "sdpa, xformers")
    assert A.resolve_backend("auto", "cpu") == "sdpa" and A.resolve_backend("reference") == "reference"
    with pytest.raises(ValueError) as error:
        A.resolve_backend("xformers", "cpu")
    assert str(error.value) == ("attention backend 'xformers' is not available on cpu; available: "
                                "reference, sdpa")
    assert A.available_backends() == A.available_backends("cpu") == ["reference", "sdpa"]


def test_xformers_is_chosen_on_cuda_and_falls_back_when_it_has_no_kernel(monkeypatch):
    monkeypatch.setattr(A, "_xformers_installed", lambda: True)
    assert A.available_backends("cuda") == ["reference", "sdpa", "xformers"]
    assert A.available_backends(torch.device("cuda", 1))[-1] == "xformers"
    monkeypatch.setattr(A, "_xformers_installed", lambda: False)
    assert A.available_backends("cuda") == ["reference", "sdpa"]
    monkeypatch.setattr(A, "resolve_backend", lambda backend, device: "xformers")

    def no_kernel(q, k, v, mask):
        raise NotImplementedError("No operator found\nfor these inputs")

    monkeypatch.setattr(A, "_xformers", no_kernel)
    q, k, v = _qkv()
    mask = torch.ones(5, 5, dtype=torch.bool).tril()
    with pytest.warns(RuntimeWarning, match=r"using PyTorch SDPA instead \(No operator found\)$"):
        out = attention(q, k, v, mask=mask, backend="auto")
    torch.testing.assert_close(out, _oracle(q, k, v, mask))
    with pytest.raises(NotImplementedError):
        attention(q, k, v, backend="xformers")


def test_what_xformers_is_given():
    q, k, v = _qkv(B=2, H=3, L=4, d=8, S=5)
    mask = torch.tensor([[True, False, True, True, False]] * 4)  # (L, S), shared
    args = A.xformers_arguments(q, k, v, mask)
    assert args["query"].shape == (2, 4, 3, 8) and args["key"].shape == (2, 5, 3, 8)
    torch.testing.assert_close(args["value"], v.transpose(1, 2))
    bias = args["attn_bias"]
    assert bias.shape == (2, 3, 4, 5) and bias.dtype == D
    assert bias.stride()[:2] == (0, 0) and bias.stride(-2) == 8  # one padded copy, expanded
    expected = torch.where(mask, 0.0, float("-inf")).to(D)
    torch.testing.assert_close(bias[1, 2], expected)
    per_sample = torch.ones(2, 1, 4, 5, dtype=torch.bool)
    per_sample[1, 0, :, 0] = False
    bias = A._xformers_bias(per_sample, q, k)
    assert bias[0].isfinite().all() and bias[1, 2, :, 0].isinf().all()
    assert A.xformers_arguments(q, k, v, None)["attn_bias"] is None


def test_xformers_is_found_by_importing_it(monkeypatch):
    fake = types.ModuleType("xformers")
    fake.ops = types.ModuleType("xformers.ops")
    monkeypatch.setitem(sys.modules, "xformers", fake)
    monkeypatch.setitem(sys.modules, "xformers.ops", fake.ops)
    assert A._xformers_installed() is True
    monkeypatch.setitem(sys.modules, "xformers.ops", None)  # import fails
    assert A._xformers_installed() is False
    monkeypatch.setattr(A, "_xformers_installed", lambda: True)
    assert A.resolve_backend("auto", "cuda") == "xformers"
    assert A.resolve_backend("sdpa", "cuda") == "sdpa"


def _fake_memory_efficient_attention(calls):
    """xformers' kernel written out on CPU from what it is given: ``(B, L, H, d)`` tensors and an
    additive bias or a ``BlockDiagonalMask``; rows that see nothing come out NaN."""

    def memory_efficient_attention(query, key, value, attn_bias=None):
        calls.append(dict(query=query, key=key, value=value, attn_bias=attn_bias))
        q, k, v = (t.transpose(1, 2) for t in (query, key, value))
        scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
        if isinstance(attn_bias, torch.Tensor):
            scores = scores + attn_bias
        elif attn_bias is not None:
            scores = scores + attn_bias.materialize(scores.shape[-2:], dtype=scores.dtype)
        return (scores.softmax(-1) @ v).transpose(1, 2)

    return memory_efficient_attention


def test_xformers_backend_equals_the_written_out_softmax(monkeypatch):
    import xformers.ops
    from xformers.ops.fmha.attn_bias import BlockDiagonalMask

    calls = []
    monkeypatch.setattr(xformers.ops, "memory_efficient_attention",
                        _fake_memory_efficient_attention(calls))
    # xformers "available" on the tensors' own device only, so auto must be asked about q.device
    monkeypatch.setattr(A, "available_backends", lambda device=None: ["reference", "sdpa"] + (
        ["xformers"] if device == torch.device("cpu") else []))
    q, k, v = _qkv(S=6)
    out = attention(q, k, v)
    assert len(calls) == 1 and calls[0]["attn_bias"] is None
    assert torch.equal(calls[0]["query"], q.transpose(1, 2))
    assert torch.equal(calls[0]["key"], k.transpose(1, 2))
    torch.testing.assert_close(out, _oracle(q, k, v))
    mask = torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(2)) > 0.4
    mask[0, 1, 2] = False  # sees nothing in head 1 only
    mask[1, :, 4] = False  # sees nothing in any head
    mask[1, 0, 4, 5] = True  # ... but head 0
    for m in (mask, mask[0, 0], mask[:, :1]):  # per head, shared (L, S), per sample
        out = attention(q, k, v, mask=m, backend="xformers")
        torch.testing.assert_close(out, _oracle(q, k, v, m))
        expected = torch.where(m, 0.0, float("-inf")).to(D).expand(2, 3, 5, 6)
        torch.testing.assert_close(calls[-1]["attn_bias"], expected)
    out = attention(q, k, v, mask=mask, backend="xformers")
    assert not out[0, 1, 2].any() and out[0, 0, 2].abs().sum() > 0 and out[1, 0, 4].abs().sum() > 0
    assert not out[1, 1:, 4].any()
    segments = SegmentMask([2, 3, 1])
    q, k, v = _qkv(B=1, L=6, seed=4)
    out = attention(q, k, v, mask=segments)
    bias = calls[-1]["attn_bias"]
    assert isinstance(bias, BlockDiagonalMask)
    assert bias.q_seqinfo.seqstart.tolist() == bias.k_seqinfo.seqstart.tolist() == [0, 2, 5, 6]
    torch.testing.assert_close(out, _oracle(q, k, v, segments.dense()))


def test_each_backend_runs_its_own_kernel(monkeypatch):
    ran = []
    for name in ("_reference", "_sdpa"):
        kernel = getattr(A, name)
        monkeypatch.setattr(A, name, lambda *args, kernel=kernel, name=name: ran.append(name)
                            or kernel(*args))
    q, k, v = _qkv()
    for backend, kernel in (("reference", "_reference"), ("sdpa", "_sdpa"), ("auto", "_sdpa")):
        ran.clear()
        attention(q, k, v, backend=backend)
        attention(q[:1], k[:1], v[:1], mask=SegmentMask([2, 3]), backend=backend)
        assert ran == [kernel] * 3  # once unmasked, once per segment length


def test_rows_that_see_nothing_are_zeros_whatever_the_kernel_leaves(monkeypatch):
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def nan_rows(q, k, v, attn_mask=None):  # as some kernels do for a row with no key
        out = sdpa(q, k, v, attn_mask=attn_mask)
        if attn_mask is None:
            return out
        return out.masked_fill(~attn_mask.any(-1, keepdim=True), float("nan"))

    monkeypatch.setattr(A.F, "scaled_dot_product_attention", nan_rows)
    q, k, v = _qkv(S=6)
    mask = torch.ones(2, 3, 5, 6, dtype=torch.bool)
    mask[0, 1, 2] = False
    for backend in ("reference", "sdpa"):
        out = attention(q, k, v, mask=mask, backend=backend)
        torch.testing.assert_close(out, _oracle(q, k, v, mask))
        assert not out[0, 1, 2].any() and out[0, 0, 2].abs().sum() > 0


@pytest.mark.parametrize(("S", "stored"), [(1, 8), (5, 8), (8, 8), (9, 16)])
def test_xformers_bias_rows_are_padded_to_a_multiple_of_8(S, stored):
    q, k, _ = _qkv(B=2, H=3, L=4, d=8, S=S)
    mask = torch.arange(S) % 2 == 0
    bias = A._xformers_bias(mask, q, k)
    assert bias.shape == (2, 3, 4, S) and bias.stride() == (0, 0, stored, 1)
    torch.testing.assert_close(bias, torch.where(mask, 0.0, float("-inf")).to(D).expand(2, 3, 4, S))
    meta = A._xformers_bias(mask.to("meta"), q.to("meta"), k.to("meta"))
    assert meta.device.type == "meta" and meta.dtype == D
