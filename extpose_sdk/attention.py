"""Attention backends behind one function.

``attention(q, k, v, mask=None, backend="auto")`` with ``q, k, v`` of shape ``(B, H, L, d)`` and an
optional boolean ``mask`` broadcastable to ``(B, H, L, L)`` where ``True`` means "may attend".
Backends:

- ``reference``: explicit softmax, the definition every other backend is tested against;
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient
  kernels where PyTorch can use them);
- ``xformers``: ``xformers.ops.memory_efficient_attention`` with the mask as an additive bias,
  when xformers is installed and the tensors are on CUDA (it has no CPU kernels).

``auto`` picks xformers where it can run, else SDPA.

A query row whose mask allows no key returns zeros (not NaN), in every backend.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BACKENDS = ("reference", "sdpa", "xformers")


def _xformers_installed() -> bool:
    try:
        import xformers.ops  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken xformers build is as good as none
        return False
    return True


def available_backends(device: torch.device | str | None = None) -> list[str]:
    """The backends usable on ``device``, fastest last."""
    available = ["reference", "sdpa"]
    if device is not None and torch.device(device).type == "cuda" and _xformers_installed():
        available.append("xformers")
    return available


def check_backend_name(backend: str) -> None:
    """Raise unless ``backend`` is ``auto`` or a known backend (availability is checked later)."""
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(
            f"unknown attention backend {backend!r}; available: auto, {', '.join(BACKENDS)}"
        )


def resolve_backend(backend: str, device: torch.device | str | None = None) -> str:
    """Turn ``"auto"`` into the fastest backend available on ``device``; check other names."""
    check_backend_name(backend)
    available = available_backends(device)
    if backend == "auto":
        return available[-1]
    if backend not in available:
        raise ValueError(
            f"attention backend {backend!r} is not available on {device}; available: {', '.join(available)}"
        )
    return backend


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Scaled dot-product attention ``(B, H, L, d) -> (B, H, L, d)`` with a boolean mask."""
    if q.dim() != 4:
        raise ValueError(f"attention expects q, k, v of shape (B, H, L, d); got q {tuple(q.shape)}")
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(f"attention mask must be boolean (True = may attend), got {mask.dtype}")
    backend = resolve_backend(backend, q.device)
    if backend == "reference":
        return _reference(q, k, v, mask)
    if backend == "xformers":
        return _xformers(q, k, v, mask)
    return _sdpa(q, k, v, mask)


def _reference(q, k, v, mask):
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.float().softmax(dim=-1).to(q.dtype)
    if mask is not None:
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return weights @ v


def _sdpa(q, k, v, mask):
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if mask is not None:
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return out


def _xformers(q, k, v, mask):
    import xformers.ops as xops

    bias = None
    if mask is not None:
        B, H, L, S = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
        # xformers wants a bias whose last dimension is stored padded to a multiple of 8
        padded = torch.zeros(B, H, L, (S + 7) // 8 * 8, dtype=q.dtype, device=q.device)
        bias = padded[..., :S]
        bias.masked_fill_(~mask.expand(B, H, L, S), float("-inf"))
    out = xops.memory_efficient_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias
    ).transpose(1, 2)
    if mask is not None:
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return out
