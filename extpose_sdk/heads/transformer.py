"""The official HMR2.0 / HaMeR transformer decoder: one query token attends to a frame's tokens.

Module names follow the official state dict (``transformer.layers.i.{0,1,2}.{norm,fn}...``), so
official checkpoints load without renaming. Each layer is pre-norm self-attention, pre-norm
cross-attention to the context (the context itself is not normalised) and a pre-norm MLP, each
with a residual.
"""

from __future__ import annotations

import torch
from torch import nn

from extpose_sdk.attention import attention


class PreNorm(nn.Module):
    """LayerNorm on the query stream, then ``fn`` (keys ``norm.*``, ``fn.*``)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.fn = fn

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.fn(self.norm(x), **kwargs)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        return self.to_out(_merge_heads(attention(q, k, v)))


class CrossAttention(nn.Module):
    def __init__(self, dim: int, context_dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(0.0))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        q = _split_heads(self.to_q(x), self.heads)
        k, v = (_split_heads(t, self.heads) for t in self.to_kv(context).chunk(2, dim=-1))
        return self.to_out(_merge_heads(attention(q, k, v, mask=mask)))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CrossAttentionLayers(nn.Module):
    """``depth`` layers of [self-attention, cross-attention, MLP] (keys ``layers.i.{0,1,2}``)."""

    def __init__(self, dim, depth, heads, dim_head, mlp_dim, context_dim) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PreNorm(dim, SelfAttention(dim, heads, dim_head)),
                    PreNorm(dim, CrossAttention(dim, context_dim, heads, dim_head)),
                    PreNorm(dim, FeedForward(dim, mlp_dim)),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x, context, mask=None):
        for self_attn, cross_attn, feed_forward in self.layers:
            x = self_attn(x) + x
            x = cross_attn(x, context=context, mask=mask) + x
            x = feed_forward(x) + x
        return x


class TransformerDecoder(nn.Module):
    """A zero input token -> ``Linear(1, dim)`` + position embedding -> decoder layers.

    ``forward(context (B, N, context_dim), context_mask (B, N) bool | None) -> (B, 1, dim)``;
    ``context_mask`` is ``True`` where a token may be attended (absent modalities are ``False``).
    """

    def __init__(self, *, dim=1024, depth=6, heads=8, dim_head=64, mlp_dim=1024, context_dim=1280):
        super().__init__()
        self.dim = dim
        self.context_dim = context_dim
        self.to_token_embedding = nn.Linear(1, dim)
        self.pos_embedding = nn.Parameter(torch.randn(1, 1, dim))
        self.transformer = CrossAttentionLayers(dim, depth, heads, dim_head, mlp_dim, context_dim)

    def forward(self, context: torch.Tensor, context_mask: torch.Tensor | None = None):
        if context.dim() != 3 or context.shape[-1] != self.context_dim:
            raise ValueError(
                f"head expects context of shape (B, N, {self.context_dim}); got {tuple(context.shape)}"
            )
        mask = None
        if context_mask is not None:
            if context_mask.shape != context.shape[:2]:
                raise ValueError(
                    f"context_mask must have shape {tuple(context.shape[:2])} (B, N); "
                    f"got {tuple(context_mask.shape)}"
                )
            mask = context_mask.to(torch.bool)[:, None, None, :]  # (B, heads, 1 query, N)
        token = context.new_zeros(context.shape[0], 1, 1)
        x = self.to_token_embedding(token) + self.pos_embedding
        return self.transformer(x, context, mask)


def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    B, L, _ = t.shape
    return t.reshape(B, L, heads, -1).transpose(1, 2)


def _merge_heads(t: torch.Tensor) -> torch.Tensor:
    B, H, L, d = t.shape
    return t.transpose(1, 2).reshape(B, L, H * d)
