"""What the kernels share: base-2 constants, the mask model (an interval of keys per query row)
and row loads that handle head dims narrower than their tile."""

from __future__ import annotations

import triton
import triton.language as tl

from ...settings import triton_interpret_requested

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
_LOG2E: tl.constexpr = tl.constexpr(LOG2E)  # what the kernels may read
#: fp8 (e4m3) inputs: P is computed as 2^FP8_P_SHIFT times the probabilities before it is rounded
#: to e4m3 for the PV product (unscaled, the probabilities below e4m3's smallest subnormal 2^-9
#: of the row's largest would flush to zero); the row sum is scaled alike, so O = acc / l is
#: unchanged and the log-sum-exp subtracts the shift (flash-attn-4's fp8 treatment)
FP8_P_SHIFT = 8.0
_FP8_P_SHIFT: tl.constexpr = tl.constexpr(FP8_P_SHIFT)
#: whether the kernels were built for the interpreter (Triton decides when it is imported)
INTERPRETED = triton_interpret_requested()
_INTERPRETED: tl.constexpr = tl.constexpr(INTERPRETED)


@triton.jit
def _probs(x, DTYPE: tl.constexpr):
    """``exp2(x)`` (x: base-2 scores minus the row's maximum), times 2^FP8_P_SHIFT for fp8
    inputs ``DTYPE`` (:data:`FP8_P_SHIFT`)."""
    if DTYPE == tl.float8e4nv:
        x = x + _FP8_P_SHIFT
    return tl.exp2(x)


@triton.jit
def _lse(row_max, row_sum, DTYPE: tl.constexpr):
    """Base-2 log-sum-exp of a row from its maximum and sum (the sum of :func:`_probs`)."""
    lse = row_max + tl.log2(row_sum)
    if DTYPE == tl.float8e4nv:
        lse = lse - _FP8_P_SHIFT
    return lse


@triton.jit
def _p_to(p, DTYPE: tl.constexpr):
    """P (float32, >= 0) as the PV product's operand in ``DTYPE``: ``p.to(DTYPE)``. Under
    Triton's interpreter an fp8 (e4m3) P is first rounded to e4m3's grid (nearest, ties to
    even) in float32, exactly: the interpreter's own float32 -> e4m3 cast drops the carry when
    rounding up crosses a power of two (126.2 -> 64; triton-lang/triton#8322 and #11897, Triton
    3.7.1). The GPU's conversion instruction is right and compiles without this."""
    if _INTERPRETED and DTYPE == tl.float8e4nv:
        exponent = tl.maximum(((p.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127, -6)
        step = ((exponent - 3 + 127) << 23).to(tl.float32, bitcast=True)  # 3 mantissa bits
        t = p / step
        whole = tl.floor(t)
        frac = t - whole
        odd = (whole.to(tl.int32) & 1) == 1
        up = (frac > 0.5) | ((frac == 0.5) & odd)
        p = (whole + up.to(tl.float32)) * step
    return p.to(DTYPE)


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
