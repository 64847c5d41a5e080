"""Masks in attnbench's convention: causal aligned bottom-right (as with a KV cache)."""

from __future__ import annotations

import torch


def causal_mask(
    q_len: int,
    kv_len: int,
    device: torch.device | str = "cpu",
    *,
    q_start: int = 0,
    kv_start: int = 0,
) -> torch.Tensor:
    """Boolean ``(q_len, kv_len)`` mask, True where query row may see key column.

    ``q_start``/``kv_start`` place a tile inside a larger ``(q_total, kv_total)`` problem; pass
    them with the totals' difference already folded in via :func:`causal_offset`.
    """
    rows = torch.arange(q_start, q_start + q_len, device=device).unsqueeze(1)
    cols = torch.arange(kv_start, kv_start + kv_len, device=device).unsqueeze(0)
    return cols <= rows


def causal_offset(q_len: int, kv_len: int) -> int:
    """How far right the diagonal sits: query row i sees keys j <= i + offset."""
    return kv_len - q_len
