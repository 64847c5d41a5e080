"""What the kernels share: base-2 constants, the mask model (an interval of keys per query row)
and row loads that handle head dims narrower than their tile."""

from __future__ import annotations

import os

import triton
import triton.language as tl

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
_LOG2E: tl.constexpr = tl.constexpr(LOG2E)  # what the kernels may read
#: whether the kernels were built for the interpreter (Triton decides when it is imported)
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@triton.jit
def _row_bounds(
    pos,
    Skv,
    window,
    DocStart,
    DocEnd,
    CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    HAS_DOCS: tl.constexpr,
):
    """Keys ``lo <= j < hi`` that the rows at key positions ``pos`` (all < Skv) see."""
    lo = tl.zeros_like(pos)
    hi = tl.zeros_like(pos) + Skv
    if CAUSAL:
        hi = tl.minimum(hi, pos + 1)
    if HAS_WINDOW:
        lo = tl.maximum(lo, pos - window + 1)
    if HAS_DOCS:
        lo = tl.maximum(lo, tl.load(DocStart + pos))
        hi = tl.minimum(hi, tl.load(DocEnd + pos))
    return lo, hi


@triton.jit
def _load_rows(
    ptrs, rows_ok, offs_d, D: tl.constexpr, BLOCK_D: tl.constexpr, ROWS_EVEN: tl.constexpr
):
    if D == BLOCK_D:
        if ROWS_EVEN:
            return tl.load(ptrs)
        return tl.load(ptrs, mask=rows_ok[:, None], other=0.0)
    return tl.load(ptrs, mask=rows_ok[:, None] & (offs_d[None, :] < D), other=0.0)
