"""The paper's mask at the cost of its FLOPs: unmasked attentions merged by their log-sum-exp.

Tokens laid out ``(T, M, N)`` (frames, modalities, tokens per image) under the paper's rule: a
query of block ``(t, m)`` sees every frame of modality ``m`` and the other modalities of frame
``t``. The two key sets are disjoint, so the masked attention is exactly the softmax over their
union, computed as two unmasked attentions and merged by their log-sum-exps (LSE)::

    A: the T*N tokens of modality m, all frames       (a batch of B*M sequences of T*N tokens)
    B: block (t, m) against (t, m+1), ..., (t, m+M-1)  (a batch of B*T*M sequences: N queries,
       (M-1)*N keys: the modality axis rolled by 1..M-1, modulo M)
    lse = logaddexp(lse_A, lse_B);  out = out_A * exp(lse_A - lse) + out_B * exp(lse_B - lse)

These are the paper mask's products and no more (``T + M - 1`` of the ``T * M`` key blocks per
query block), and both attentions run on the fused kernels, which a dense boolean mask keeps SDPA
off. The LSE comes from ``aten._scaled_dot_product_flash_attention_for_cpu`` on CPU and from
``aten._scaled_dot_product_efficient_attention`` (``compute_log_sumexp``) on CUDA.

Neither op gives a gradient through its LSE. On CPU none is needed: ``_MergedAttention`` runs the
flash backward of each part with the merged output and LSE, which gives that part's share of
the exact gradient. On CUDA the merge runs only when no gradient is wanted (``merges``);
``extpose_sdk.attention.attention`` otherwise applies ``PaperMask.dense()`` with the backend asked
for, which gives the same numbers.
"""

from __future__ import annotations

import functools

import attrs
import torch


@attrs.frozen
class PaperMask:
    """The paper's rule over a sequence laid out ``(frames, modalities, tokens)``: within a frame
    every modality sees every other; across frames a token sees only its own modality."""

    frames: int
    modalities: int
    tokens: int

    def __attrs_post_init__(self) -> None:
        if min(self.frames, self.modalities, self.tokens) < 1:
            raise ValueError(f"PaperMask sizes must be positive; got {self}")

    @property
    def total(self) -> int:
        return self.frames * self.modalities * self.tokens

    def dense(self, device=None) -> torch.Tensor:
        """The same rule as an ``(L, L)`` boolean mask (built once per device and cached)."""
        return _dense(self, torch.device(device or "cpu"))


@functools.lru_cache(maxsize=8)
def _dense(mask: PaperMask, device: torch.device) -> torch.Tensor:
    T, M, N = mask.frames, mask.modalities, mask.tokens
    frame = torch.arange(T, device=device).repeat_interleave(M * N)
    modality = torch.arange(M, device=device).repeat_interleave(N).repeat(T)
    return (frame[:, None] == frame[None, :]) | (modality[:, None] == modality[None, :])


_MERGE_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def merges(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """True if ``merged_attention`` can run on these tensors: a float dtype the fused kernels
    take, on CPU (with or without a gradient) or on CUDA without a gradient."""
    wants_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if q.dtype not in _MERGE_DTYPES:
        return False
    if q.device.type == "cpu":
        return True
    return q.device.type == "cuda" and q.dtype != torch.float64 and not wants_grad


def merged_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: PaperMask
) -> torch.Tensor:
    """``(B, H, L, d)`` attention under ``mask`` (``L = T * M * N``), as two unmasked attentions
    merged by their LSE. Equals the dense-mask attention to float rounding; differentiable on
    CPU (see ``_MergedAttention``)."""
    if q.shape[2] != mask.total:
        raise ValueError(f"a PaperMask of (T, M, N) = ({mask.frames}, {mask.modalities}, "
                         f"{mask.tokens}) needs L = {mask.total}; got q {tuple(q.shape)}")
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return _MergedAttention.apply(q, k, v, mask)
    return _merged_forward(q, k, v, mask)[0]


@attrs.frozen
class _Parts:
    """Where the tokens of a ``(B, H, T*M*N, ...)`` tensor go in the two attentions, and back.

    ``same_modality``: ``(B*M, H, T*N, ...)``; ``same_frame_queries``: ``(B*T*M, H, N, ...)``;
    ``same_frame_keys``: ``(B*T*M, H, (M-1)*N, ...)``, block (t, m) against (t, m+1), ...,
    (t, m+M-1) (the modality axis rolled, modulo M). ``from_*`` puts a result back (summing the
    rolled copies of a key)."""

    B: int
    H: int
    T: int
    M: int
    N: int

    def _grid(self, t):  # (B, H, T, M, N, ...)
        return t.reshape(self.B, self.H, self.T, self.M, self.N, *t.shape[3:])

    def _flat(self, g):  # (B, H, T, M, N, ...) -> (B, H, L, ...)
        return g.reshape(self.B, self.H, self.T * self.M * self.N, *g.shape[5:])

    def same_modality(self, t):
        g = self._grid(t).movedim(3, 1)  # (B, M, H, T, N, ...)
        return g.reshape(self.B * self.M, self.H, self.T * self.N, *g.shape[5:])

    def from_same_modality(self, x):
        B, H, T, M, N = self.B, self.H, self.T, self.M, self.N
        return self._flat(x.reshape(B, M, H, T, N, *x.shape[3:]).movedim(1, 3))

    def same_frame_queries(self, t):
        g = self._grid(t).movedim(1, 3)  # (B, T, M, H, N, ...)
        return g.reshape(self.B * self.T * self.M, self.H, self.N, *g.shape[5:])

    def from_same_frame_queries(self, x):
        B, H, T, M, N = self.B, self.H, self.T, self.M, self.N
        return self._flat(x.reshape(B, T, M, H, N, *x.shape[3:]).movedim(3, 1))

    def same_frame_keys(self, t):
        g = self._grid(t)
        others = torch.cat([g.roll(-offset, dims=3) for offset in range(1, self.M)], dim=4)
        others = others.movedim(1, 3)  # (B, T, M, H, (M-1)*N, ...)
        return others.reshape(self.B * self.T * self.M, self.H, -1, *g.shape[5:])

    def from_same_frame_keys(self, x):
        B, H, T, M, N = self.B, self.H, self.T, self.M, self.N
        g = x.reshape(B, T, M, H, M - 1, N, *x.shape[3:]).movedim(3, 1)  # (B, H, T, M, M-1, N)
        return self._flat(sum(g[:, :, :, :, o - 1].roll(o, dims=3) for o in range(1, M)))


def _parts(q: torch.Tensor, mask: PaperMask) -> _Parts:
    return _Parts(q.shape[0], q.shape[1], mask.frames, mask.modalities, mask.tokens)


def _merged_forward(q, k, v, mask: PaperMask) -> tuple[torch.Tensor, torch.Tensor]:
    """The merged attention ``(B, H, L, d)`` and its LSE ``(B, H, L)``."""
    B, H, L, d = q.shape
    T, M, N = mask.frames, mask.modalities, mask.tokens
    parts = _parts(q, mask)
    out_a, lse_a = _attention_with_lse(*(parts.same_modality(t) for t in (q, k, v)))
    if M == 1:
        return out_a.reshape(B, H, L, d), lse_a.reshape(B, H, L)
    out_b, lse_b = _attention_with_lse(
        parts.same_frame_queries(q), parts.same_frame_keys(k), parts.same_frame_keys(v)
    )
    # both to (B, T, M, N, H) order, the layout the block's output projection reads
    out_a = out_a.reshape(B, M, H, T, N, d).permute(0, 3, 1, 4, 2, 5)
    lse_a = lse_a.reshape(B, M, H, T, N).permute(0, 3, 1, 4, 2)
    out_b = out_b.reshape(B, T, M, H, N, d).permute(0, 1, 2, 4, 3, 5)
    lse_b = lse_b.reshape(B, T, M, H, N).permute(0, 1, 2, 4, 3)
    lse = torch.logaddexp(lse_a, lse_b)
    weight_a = (lse_a - lse).exp_().unsqueeze(-1)
    weight_b = (lse_b - lse).exp_().unsqueeze(-1)
    wide = torch.promote_types(q.dtype, torch.float32)  # merge bf16 / fp16 in fp32
    out_a, out_b = out_a.to(wide), out_b.to(wide)
    out = torch.addcmul(out_b * weight_b.to(wide), out_a, weight_a.to(wide)).to(q.dtype)
    out = out.reshape(B, L, H, d).transpose(1, 2)  # (B, H, L, d), stored (B, L, H, d)
    return out, lse.reshape(B, L, H).transpose(1, 2)


class _MergedAttention(torch.autograd.Function):
    """The merged attention with its exact gradient on CPU.

    The kernels' LSE has no gradient, but none is needed: the flash backward of a part, given
    the *merged* output and LSE, computes each key's probability as ``exp(s - lse)`` and the
    softmax correction from ``rowsum(dO * O)``, both of the whole masked attention, so it returns
    that part's share of the exact gradient. The two shares are summed (a key's rolled copies
    put back first)."""

    @staticmethod
    def forward(ctx, q, k, v, mask):
        out, lse = _merged_forward(q, k, v, mask)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.mask = mask
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, out, lse = ctx.saved_tensors
        parts = _parts(q, ctx.mask)
        backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward
        a = backward(*(parts.same_modality(t) for t in (grad, q, k, v, out)),
                     parts.same_modality(lse).contiguous(), 0.0, False)
        dq, dk, dv = (parts.from_same_modality(x) for x in a)
        if ctx.mask.modalities > 1:
            rows = parts.same_frame_queries
            b = backward(rows(grad), rows(q), parts.same_frame_keys(k),
                         parts.same_frame_keys(v), rows(out), rows(lse).contiguous(), 0.0, False)
            dq = dq + parts.from_same_frame_queries(b[0])
            dk = dk + parts.from_same_frame_keys(b[1])
            dv = dv + parts.from_same_frame_keys(b[2])
        return dq, dk, dv, None


def _attention_with_lse(q, k, v) -> tuple[torch.Tensor, torch.Tensor]:
    """Unmasked attention and its natural-log LSE per query: ``(B, H, Lq, d)``, ``(B, H, Lq)``."""
    if q.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)
        return out, lse
    # CUDA: the memory-efficient kernel takes fp32 / fp16 / bf16 and any head size up to its
    # limit; its LSE may be padded along the queries (to a multiple of 32 in some releases).
    out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True)[:2]
    return out, lse[..., : q.shape[2]]
