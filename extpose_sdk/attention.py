"""Attention backends behind one function.

``attention(q, k, v, mask=None, backend="auto")`` with ``q, k, v`` of shape ``(B, H, L, d)`` and an
optional boolean ``mask`` broadcastable to ``(B, H, L, L)`` where ``True`` means "may attend".
Backends:

- ``reference``: explicit softmax, the definition every other backend is tested against;
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient
  kernels where PyTorch can use them);
- ``xformers``: ``xformers.ops.memory_efficient_attention`` with the mask as an additive bias,
  when xformers is installed and the tensors are on CUDA (it has no CPU kernels).

``auto`` picks xformers where it can run, else SDPA; if xformers then finds no kernel for the
inputs (a dtype or head size it does not support), ``auto`` warns and uses SDPA.

A query row whose mask allows no key returns zeros (not NaN), in every backend.

Instead of a boolean mask, ``mask`` may be a ``SegmentMask``: ``q, k, v`` of shape ``(1, H, L, d)``
hold several independent sequences of different lengths back to back ("packed"), and each token
attends only within its own sequence. xformers runs it as one kernel over a
``BlockDiagonalMask``, without materialising an ``(L, L)`` mask; the other backends run the
segments in batches of equal length, which gives the same result.

``mask`` may also be a ``PaperMask`` (``extpose_sdk.mask_paths``): ``q, k, v`` of shape
``(B, H, T*M*N, d)`` laid out as frames x modalities x tokens, under the paper's rule. ``sdpa``
and ``auto`` compute it as two unmasked attentions merged by their log-sum-exp where they can
(on CPU; on CUDA without gradients), at the mask's FLOPs; otherwise, and in the other backends,
the mask is applied as its dense boolean equivalent (same numbers).
"""

from __future__ import annotations

import functools
import warnings

import attrs
import torch
import torch.nn.functional as F

from extpose_sdk import mask_paths
from extpose_sdk.mask_paths import PaperMask

BACKENDS = ("reference", "sdpa", "xformers")


@attrs.frozen
class SegmentMask:
    """Independent sequences of these lengths packed back to back along the token axis."""

    lengths: tuple[int, ...] = attrs.field(converter=lambda x: tuple(int(n) for n in x))

    def __attrs_post_init__(self) -> None:
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError(
                f"SegmentMask lengths must be positive and non-empty; got {self.lengths}"
            )

    @property
    def total(self) -> int:
        return sum(self.lengths)

    def segment_ids(self, device=None) -> torch.Tensor:
        """``(L,)``: which segment each token belongs to."""
        lengths = torch.tensor(self.lengths, device=device)
        return torch.arange(len(self.lengths), device=device).repeat_interleave(lengths)

    def dense(self, device=None) -> torch.Tensor:
        """The same rule as an ``(L, L)`` boolean mask (block-diagonal; for tests and small L)."""
        ids = self.segment_ids(device)
        return ids[:, None] == ids[None, :]


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
    mask: torch.Tensor | SegmentMask | PaperMask | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Scaled dot-product attention ``(B, H, L, d) -> (B, H, L, d)``, boolean, segment or paper
    mask."""
    if q.dim() != 4:
        raise ValueError(f"attention expects q, k, v of shape (B, H, L, d); got q {tuple(q.shape)}")
    chosen = resolve_backend(backend, q.device)
    if isinstance(mask, SegmentMask):
        if q.shape[0] != 1 or mask.total != q.shape[2]:
            raise ValueError(
                f"a SegmentMask of {len(mask.lengths)} segments, {mask.total} tokens in all, needs "
                f"q, k, v of shape (1, H, {mask.total}, d); got q {tuple(q.shape)}"
            )
    elif isinstance(mask, PaperMask):
        if mask.total != q.shape[2]:
            raise ValueError(
                f"a PaperMask of (T, M, N) = ({mask.frames}, {mask.modalities}, {mask.tokens}) "
                f"needs q, k, v of shape (B, H, {mask.total}, d); got q {tuple(q.shape)}"
            )
        # sdpa, or auto even where xformers runs: the merge computes only the mask's products,
        # xformers with a dense bias all of them (not yet timed on a GPU)
        if (chosen == "sdpa" or backend == "auto") and mask_paths.merges(q, k, v):
            return mask_paths.merged_attention(q, k, v, mask)
        mask = mask.dense(q.device)
    elif mask is not None and mask.dtype != torch.bool:
        raise TypeError(f"attention mask must be boolean (True = may attend), got {mask.dtype}")
    if chosen == "xformers":
        try:
            return _xformers(q, k, v, mask)
        except NotImplementedError as error:  # no xformers kernel for these inputs
            if backend != "auto":
                raise
            warnings.warn(
                f"attention='auto': xformers has no kernel for these inputs, using PyTorch SDPA "
                f"instead ({str(error).splitlines()[0]})",
                RuntimeWarning,
                stacklevel=2,
            )
            chosen = "sdpa"
    kernel = _reference if chosen == "reference" else _sdpa
    if isinstance(mask, SegmentMask):
        return _by_segment_length(q, k, v, mask, kernel)
    return kernel(q, k, v, mask)


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

    out = xops.memory_efficient_attention(**xformers_arguments(q, k, v, mask)).transpose(1, 2)
    if isinstance(mask, torch.Tensor):
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return out


def xformers_arguments(q, k, v, mask) -> dict:
    """What ``xformers.ops.memory_efficient_attention`` is called with: ``(B, L, H, d)`` tensors
    and the mask as its ``attn_bias`` (a ``BlockDiagonalMask`` for segments, else a dense bias)."""
    if isinstance(mask, SegmentMask):
        bias = _block_diagonal_mask(mask.lengths, q.device)
    else:
        bias = None if mask is None else _xformers_bias(mask, q, k)
    query, key, value = (t.transpose(1, 2) for t in (q, k, v))
    return dict(query=query, key=key, value=value, attn_bias=bias)


@functools.lru_cache(maxsize=8)
def _block_diagonal_mask(lengths: tuple[int, ...], device: torch.device):
    """xformers' ``BlockDiagonalMask`` on the tensors' device (its default is ``cuda``, which is
    not ``cuda:1``), built once per packing and reused by every block of the forward pass."""
    from xformers.ops.fmha.attn_bias import BlockDiagonalMask

    return BlockDiagonalMask.from_seqlens(list(lengths), device=device)


def _xformers_bias(mask: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Additive bias for a boolean mask, stored once and expanded (stride 0) over batch and heads.

    xformers wants the bias's rows stored padded to a multiple of 8; a mask shared by the batch and
    heads then costs ``L x S`` memory, not ``B x H x L x S``.
    """
    B, H, L, S = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    mask = mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))
    b, h = mask.shape[:2]
    padded = torch.zeros(b, h, L, (S + 7) // 8 * 8, dtype=q.dtype, device=q.device)
    bias = padded[..., :S]
    bias.masked_fill_(~mask.expand(b, h, L, S), float("-inf"))
    return bias.expand(B, H, L, S)


def _by_segment_length(q, k, v, segments: SegmentMask, kernel):
    """Segments of equal length gathered into one batch each; the kernel runs unmasked on it."""
    lengths = torch.tensor(segments.lengths)
    starts = lengths.cumsum(0) - lengths
    out = torch.empty_like(q)
    for length in lengths.unique().tolist():
        first = starts[lengths == length]
        index = (first[:, None] + torch.arange(length)).flatten().to(q.device)
        shape = (first.numel(), length)
        q_, k_, v_ = (t[0][:, index].unflatten(1, shape).transpose(0, 1) for t in (q, k, v))
        result = kernel(q_, k_, v_, None)  # (segments, H, length, d)
        out[0][:, index] = result.transpose(0, 1).flatten(1, 2)
    return out
