"""Attention by the definition, QKᵀ -> softmax -> V: the math of ``eager`` and ``reference``."""

from __future__ import annotations

import torch

from ..masks import MaskSpec, causal_mask, causal_offset


def math_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool,
    scale: float,
    softmax_dtype: torch.dtype | None = None,
    mask: MaskSpec | None = None,
) -> torch.Tensor:
    """Attention by materializing the score matrix; GQA by grouping query heads (no K/V copy).
    ``mask`` (window, documents, ALiBi) replaces ``causal`` when given."""
    b, hq, sq, d = q.shape
    hkv, skv = k.shape[1], k.shape[2]
    g = hq // hkv
    # (B, Hkv, G*Sq, D): the G query heads that share a KV head become extra rows
    scores = torch.matmul(q.reshape(b, hkv, g * sq, d), k.transpose(-1, -2)) * scale
    scores = scores.view(b, hkv, g, sq, skv)
    if mask is not None:
        bias = mask.bias(hq, sq, skv, q.device)
        if bias is not None:
            scores = scores + bias.view(hkv, g, sq, skv).to(scores.dtype)
        scores = scores.masked_fill(~mask.allowed(sq, skv, q.device), float("-inf"))
    elif causal:
        allowed = causal_mask(sq, skv, q.device, q_start=causal_offset(sq, skv))
        scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=softmax_dtype).to(v.dtype)
    out = torch.matmul(probs.view(b, hkv, g * sq, skv), v)
    return out.view(b, hq, sq, v.shape[-1])
