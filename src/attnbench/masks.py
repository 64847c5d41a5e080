"""Masks in attnbench's convention: aligned bottom-right (as with a KV cache).

Query row ``i`` of ``q_len`` sits at absolute position ``i + kv_len - q_len`` among the keys, so a
slice of the last query rows keeps its mask exactly. :class:`MaskSpec` says which keys each query
sees beyond plain causal/full attention: a sliding window, packed documents, an ALiBi bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import InvalidWorkloadError

FEATURE_NAMES = {
    "window": "sliding-window masks",
    "documents": "packed variable-length documents",
    "alibi": "an ALiBi bias",
}


def positive_int(value: object) -> bool:
    """An ``int`` above zero (``True`` is not a size)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


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


def alibi_slopes(heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes (Press et al.): a geometric sequence, interleaved when ``heads``
    is not a power of two. Float32, on the CPU."""

    def powers(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    if math.log2(heads).is_integer():
        return torch.tensor(powers(heads), dtype=torch.float32)
    closest = 2 ** math.floor(math.log2(heads))
    extra = powers(2 * closest)[0::2][: heads - closest]
    return torch.tensor(powers(closest) + extra, dtype=torch.float32)


@dataclass(frozen=True)
class MaskSpec:
    """Which keys each query sees, and any bias on the scores.

    - ``causal``: keys at or before the query's position.
    - ``window``: with causal, only the last ``window`` keys up to the query's position
      (``pos_q - window < pos_k <= pos_q``; flash-attn's ``window_size=(window - 1, 0)``).
    - ``doc_lens``: the key sequence packs documents of these lengths (summing to ``kv_len``);
      no query sees a key of another document (flash-attn's varlen ``cu_seqlens``).
    - ``alibi``: adds ``-slope_h * |pos_q - pos_k|`` to the scaled scores of head ``h``.
    """

    causal: bool = False
    window: int | None = None
    doc_lens: tuple[int, ...] | None = None
    alibi: bool = False

    def __post_init__(self) -> None:
        for key in ("causal", "alibi"):
            if not isinstance(getattr(self, key), bool):
                raise InvalidWorkloadError(
                    f"{key} must be True or False, got {getattr(self, key)!r}"
                )
        if self.window is not None:
            if not positive_int(self.window):
                raise InvalidWorkloadError(
                    f"window must be a positive integer, got {self.window!r}"
                )
            if not self.causal:  # eager would see keys on both sides, flash-attn on the left
                raise InvalidWorkloadError("a sliding window needs causal attention")
        lens = self.doc_lens
        if lens is not None and not (isinstance(lens, tuple) and all(map(positive_int, lens))):
            raise InvalidWorkloadError(
                f"doc_lens must be a tuple of positive integers, got {lens!r}"
            )

    def problem(self, q_len: int, kv_len: int) -> str | None:
        """Why this mask cannot apply to ``q_len`` queries against ``kv_len`` keys, or ``None``."""
        if not self.doc_lens:
            return None
        if q_len != kv_len:
            return f"packed documents need q_len == kv_len (got {q_len} and {kv_len})"
        if sum(self.doc_lens) != kv_len:
            return f"document lengths sum to {sum(self.doc_lens)}, not kv_len {kv_len}"
        return None

    @property
    def features(self) -> frozenset[str]:
        """Beyond causal/full: the subset of ``window``, ``documents``, ``alibi`` in use."""
        on = {"window": self.window is not None, "documents": bool(self.doc_lens)}
        on["alibi"] = self.alibi
        return frozenset(k for k, v in on.items() if v)

    def positions(self, q_len: int, kv_len: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Absolute positions of the query rows (column) and of the keys (row)."""
        rows = torch.arange(kv_len - q_len, kv_len, device=device).unsqueeze(1)
        return rows, torch.arange(kv_len, device=device).unsqueeze(0)

    def document_ids(self, kv_len: int, device) -> torch.Tensor:
        """Document index of each key position (zeros without documents)."""
        if not self.doc_lens:
            return torch.zeros(kv_len, dtype=torch.long, device=device)
        if sum(self.doc_lens) != kv_len:
            raise ValueError(f"document lengths sum to {sum(self.doc_lens)}, not kv_len {kv_len}")
        lens = torch.tensor(self.doc_lens, device=device)
        return torch.repeat_interleave(torch.arange(len(self.doc_lens), device=device), lens)

    def allowed(self, q_len: int, kv_len: int, device="cpu") -> torch.Tensor:
        """Boolean ``(q_len, kv_len)``: True where the query row may see the key column."""
        pq, pk = self.positions(q_len, kv_len, device)
        ok = torch.ones(q_len, kv_len, dtype=torch.bool, device=device)
        if self.causal:
            ok &= pk <= pq
        if self.window is not None:
            ok &= pq - pk < self.window
        if self.doc_lens:
            doc = self.document_ids(kv_len, device)
            ok &= doc[kv_len - q_len :].unsqueeze(1) == doc.unsqueeze(0)
        return ok

    def bias(self, heads: int, q_len: int, kv_len: int, device="cpu") -> torch.Tensor | None:
        """Float32 ``(heads, q_len, kv_len)`` added to the scaled scores, or ``None``."""
        if not self.alibi:
            return None
        pq, pk = self.positions(q_len, kv_len, device)
        distance = (pq - pk).abs().float()
        return -alibi_slopes(heads).to(device).view(heads, 1, 1) * distance

    def additive(self, heads: int, q_len: int, kv_len: int, device, dtype) -> torch.Tensor:
        """The whole mask as one float ``(heads or 1, q_len, kv_len)`` tensor: bias, -inf where
        masked (what ``attn_mask`` of SDPA takes)."""
        allowed = self.allowed(q_len, kv_len, device)
        out = torch.zeros(1, q_len, kv_len, device=device, dtype=torch.float32)
        bias = self.bias(heads, q_len, kv_len, device)
        if bias is not None:
            out = out + bias
        return out.masked_fill(~allowed, float("-inf")).to(dtype)
