"""Attention by the definition, QKᵀ -> softmax -> V: the math of ``eager``, ``eager-compiled``
and ``reference``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..masks import MaskSpec


def mask_tensors(
    spec: MaskSpec, heads: int, q_len: int, kv_len: int, device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Boolean ``(q_len, kv_len)`` allowed-mask (``None``: every key) and float32 ALiBi bias
    ``(heads, q_len, kv_len)`` (``None``: no bias)."""
    allowed = None
    if spec.features or (spec.causal and q_len > 1):  # one row at the end sees every key
        allowed = spec.allowed(q_len, kv_len, device)
    return allowed, spec.bias(heads, q_len, kv_len, device)


def masked_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    allowed: torch.Tensor | None,
    bias: torch.Tensor | None,
    *,
    scale: float,
    softmax_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Attention by materializing the score matrix, masks given (:func:`mask_tensors`); GQA
    by grouping query heads (no K/V copy)."""
    b, hq, sq, d = q.shape
    hkv, skv = k.shape[1], k.shape[2]
    g = hq // hkv
    # (B, Hkv, G*Sq, D): the G query heads that share a KV head become extra rows
    scores = torch.matmul(q.reshape(b, hkv, g * sq, d), k.transpose(-1, -2)) * scale
    scores = scores.view(b, hkv, g, sq, skv)
    if bias is not None:
        scores = scores + bias.view(hkv, g, sq, skv).to(scores.dtype)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=softmax_dtype).to(v.dtype)
    out = torch.matmul(probs.view(b, hkv, g * sq, skv), v)
    return out.view(b, hq, sq, v.shape[-1])


def bound_attention(
    spec: MaskSpec,
    heads: int,
    q_len: int,
    kv_len: int,
    scale: float,
    device,
    softmax_dtype: torch.dtype | None = None,
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """:func:`masked_attention` for one shape and mask, the masks built now (untimed)."""
    masks = mask_tensors(spec, heads, q_len, kv_len, device)

    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return masked_attention(q, k, v, *masks, scale=scale, softmax_dtype=softmax_dtype)

    return attention


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
    """:func:`masked_attention` with its masks built now; ``mask`` (window, documents, ALiBi)
    replaces ``causal`` when given."""
    masks = mask_tensors(mask or MaskSpec(causal), q.shape[1], q.shape[2], k.shape[2], q.device)
    return masked_attention(q, k, v, *masks, scale=scale, softmax_dtype=softmax_dtype)
