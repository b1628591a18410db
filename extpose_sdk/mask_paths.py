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

Neither op gives a gradient through its LSE, so the merge runs only when no gradient is needed
(``merges(q, k, v)``); ``extpose_sdk.attention.attention`` otherwise applies ``PaperMask.dense()``
with the backend asked for, which gives the same numbers.
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
    """True if ``merged_attention`` can run on these tensors: CPU or CUDA, a float dtype the
    fused kernels take, and no gradient wanted (the kernels' LSE has none)."""
    wants_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    return (
        not wants_grad
        and q.device.type in ("cpu", "cuda")
        and q.dtype in _MERGE_DTYPES
        and (q.device.type == "cpu" or q.dtype != torch.float64)
    )


def merged_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: PaperMask
) -> torch.Tensor:
    """``(B, H, L, d)`` attention under ``mask`` (``L = T * M * N``), as two unmasked attentions
    merged by their LSE. Equals the dense-mask attention to float rounding."""
    B, H, L, d = q.shape
    T, M, N = mask.frames, mask.modalities, mask.tokens
    if L != mask.total:
        raise ValueError(f"a PaperMask of (T, M, N) = ({T}, {M}, {N}) needs L = {mask.total}; "
                         f"got q {tuple(q.shape)}")
    q6, k6, v6 = (t.reshape(B, H, T, M, N, d) for t in (q, k, v))

    def same_modality(t):  # (B*M, H, T*N, d)
        return t.permute(0, 3, 1, 2, 4, 5).reshape(B * M, H, T * N, d)

    def same_frame_queries(t):  # (B*T*M, H, N, d)
        return t.permute(0, 2, 3, 1, 4, 5).reshape(B * T * M, H, N, d)

    def same_frame_keys(t):  # block (t, m) -> (t, m+1), ..., (t, m+M-1): (B*T*M, H, (M-1)*N, d)
        others = torch.cat([t.roll(-offset, dims=3) for offset in range(1, M)], dim=4)
        return others.permute(0, 2, 3, 1, 4, 5).reshape(B * T * M, H, (M - 1) * N, d)

    out_a, lse_a = _attention_with_lse(same_modality(q6), same_modality(k6), same_modality(v6))
    if M == 1:
        return out_a.reshape(B, H, L, d)
    out_b, lse_b = _attention_with_lse(
        same_frame_queries(q6), same_frame_keys(k6), same_frame_keys(v6)
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
    return out.reshape(B, L, H, d).transpose(1, 2)  # (B, H, L, d), stored (B, L, H, d)


def _attention_with_lse(q, k, v) -> tuple[torch.Tensor, torch.Tensor]:
    """Unmasked attention and its natural-log LSE per query: ``(B, H, Lq, d)``, ``(B, H, Lq)``."""
    if q.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)
        return out, lse
    # CUDA: the memory-efficient kernel takes fp32 / fp16 / bf16 and any head size up to its
    # limit; its LSE may be padded along the queries (to a multiple of 32 in some releases).
    out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True)[:2]
    return out, lse[..., : q.shape[2]]
