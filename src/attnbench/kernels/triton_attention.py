"""FlashAttention-2 style attention in Triton: forward (one pass or split over the keys),
backward, every mask attnbench knows.

Layout (attnbench's canonical one): ``q (B, Hq, Sq, D)``, ``k (B, Hkv, Skv, D)``,
``v (B, Hkv, Skv, Dv)`` -> ``o (B, Hq, Sq, Dv)``; query head ``h`` reads KV head
``h // (Hq // Hkv)``. Any strides, except that the last dimension must be contiguous (it is made
so at the edge). Query row ``i`` sits at key position ``i + Skv - Sq`` (bottom-right alignment).

Every mask is an interval per query row: row ``i`` sees keys ``lo_i <= j < hi_i`` where causal
sets ``hi = pos + 1``, a window ``lo = pos - window + 1``, packed documents the bounds of the
row's document. A program needs masking only on the key blocks that cut an interval of one of
its rows; the blocks every row sees whole run without it. ALiBi adds
``-slope_h * |pos_q - pos_k|`` to the scaled scores.

Scores are kept in base 2: ``qk * scale * log2(e)``, ``exp2``; the saved log-sum-exp is base 2.

Paths:

- **one pass** (``_fwd_kernel``, ``SPLIT=False``): a program per (batch, query head, block of
  ``block_m`` rows); causal blocks heaviest first.
- **packed GQA** (``PACKED``): for few query rows (decode), the ``G`` query heads sharing a KV
  head and their rows are one block of ``G * Sq`` rows: K/V are read once per KV head.
- **split keys** (``SPLIT``): when the programs above would not fill the GPU (decode, short
  queries against a long cache) each also takes one of ``num_splits`` key ranges, writes a
  partial output and log-sum-exp in float32, and ``_combine_kernel`` merges them.
- **backward**: ``_bwd_delta_kernel`` (``rowsum(Out * dO)``), ``_bwd_dkdv_kernel`` (a program per
  key block and KV head, looping over its query heads: no atomics, deterministic) and
  ``_bwd_dq_kernel`` (a program per query block and head).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634
_LOG2E: tl.constexpr = tl.constexpr(LOG2E)  # what the kernels may read


# -- configurations -------------------------------------------------------------------------
@dataclass(frozen=True)
class FwdConfig:
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    packed: bool = False  # GQA heads packed into the rows of one block
    num_splits: int = 1  # key ranges, merged by the combine kernel
    tma: bool = False  # one-pass path: Q/K/V tiles through tensor descriptors (Hopper's TMA)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BwdConfig:
    block_m1: int  # dK/dV: query rows per step
    block_n1: int  # dK/dV: keys per program
    block_m2: int  # dQ: query rows per program
    block_n2: int  # dQ: keys per step
    num_warps: int
    num_stages: int

    def as_dict(self) -> dict:
        return asdict(self)


def _pow2(n: int, floor: int = 16) -> int:
    return max(floor, triton.next_power_of_2(n))


def _num_sms(device: torch.device) -> int:
    if torch.device(device).type != "cuda":  # Triton's interpreter (TRITON_INTERPRET=1)
        return 132
    return torch.cuda.get_device_properties(device).multi_processor_count


def choose_fwd_config(
    batch: int,
    q_heads: int,
    kv_heads: int,
    q_len: int,
    kv_len: int,
    head_dim: int,
    v_head_dim: int,
    device: torch.device,
    itemsize: int = 2,
    causal: bool = True,
) -> FwdConfig:
    """Tiles, warps, stages, packing and key splits for one shape (H100-tuned heuristics)."""
    group = q_heads // kv_heads
    dmax = max(_pow2(head_dim), _pow2(v_head_dim))
    wide = dmax * itemsize  # bytes of one row of a tile: what shared memory limits
    sms = _num_sms(device)
    if q_len * group <= 128 and q_len <= 16:  # decode-like: pack the group, split the keys
        block_m = _pow2(q_len * group)
        block_n = 64 if wide <= 256 else 32
        programs = batch * kv_heads
        # about one wave of programs while each split keeps >= 4096 keys (H100: kv65536 b8,
        # 2 splits 698 us vs 5 splits 747 us); shorter shares need more programs in flight to
        # keep memory busy (kv4096 b8: 2 splits 120 us, triton-decode's 8 splits 66 us)
        splits = max(1, round(sms / programs))
        if kv_len < 4096 * splits:
            splits = max(splits, min(triton.cdiv(kv_len, 512), triton.cdiv(4 * sms, programs)))
        splits = min(splits, triton.cdiv(kv_len, 256))
        return FwdConfig(block_m, block_n, 4, 3 if wide <= 256 else 2, True, splits)
    # H100 searches (tools/triton_fused_bench.py --tune), against the previous choice:
    # d64 fp16 s1024 causal 2.2x (4 warps on 128 rows spilled); d128 s8192 causal 1.10x,
    # d128 s4096 full 1.09x; d256 s4096 causal 1.47x
    if itemsize > 2:  # float32: half the tile rows fit
        block_m, block_n, warps, stages = (64, 32, 4, 2) if dmax <= 128 else (32, 32, 4, 1)
    elif dmax <= 64:
        block_m, block_n, warps, stages = 128, 64, 8, 4
    elif dmax <= 128:
        block_m, block_n, warps, stages = (128, 32, 4, 4) if causal else (128, 64, 8, 3)
    else:
        block_m, block_n, warps, stages = 128, 32, 8, 3
    programs = batch * q_heads * triton.cdiv(q_len, block_m)
    splits = 1
    if programs < sms and kv_len >= 4 * 256:
        splits = max(1, min(triton.cdiv(2 * sms, programs), triton.cdiv(kv_len, 512)))
    return FwdConfig(block_m, block_n, warps, stages, False, splits)


def choose_bwd_config(head_dim: int, v_head_dim: int, itemsize: int = 2) -> BwdConfig:
    dmax = max(_pow2(head_dim), _pow2(v_head_dim))
    if itemsize > 2:
        return BwdConfig(32, 64, 64, 32, 4, 1) if dmax <= 128 else BwdConfig(16, 32, 32, 16, 4, 1)
    if dmax <= 64:
        return BwdConfig(64, 128, 128, 64, 8, 3)
    if dmax <= 128:  # H100, s8192 causal: 1.29x over (64, 64, 64, 64, 4 warps, 2 stages)
        return BwdConfig(64, 128, 128, 64, 8, 3)
    return BwdConfig(32, 64, 64, 32, 8, 1)


# -- device helpers -------------------------------------------------------------------------
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


@triton.jit
def _fwd_blocks(
    acc,
    l_i,
    m_i,
    q,
    K_base,
    V_base,
    stride_kn,
    stride_vn,
    offs_d,
    offs_dv,
    pos_q,
    lo_r,
    hi_r,
    slope,
    start,
    end,
    Skv,
    qk_scale,
    MASKED: tl.constexpr,
    ALIBI: tl.constexpr,
    BLOCK_N: tl.constexpr,
    D: tl.constexpr,
    DV: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    PREC: tl.constexpr,
    USE_DESC: tl.constexpr = False,
    kv_row0=0,
):
    offs_n0 = tl.arange(0, BLOCK_N)
    for s in range(start, end, BLOCK_N):
        offs_n = s + offs_n0
        n_ok = offs_n < Skv
        if USE_DESC:  # rows past Skv belong to the next head (or are zeros): masked scores
            k = K_base.load([kv_row0 + s, 0])
        else:
            k = _load_rows(
                K_base + offs_n[:, None] * stride_kn + offs_d[None, :],
                n_ok,
                offs_d,
                D,
                BLOCK_D,
                not MASKED,
            )
        qk = tl.dot(q, tl.trans(k), input_precision=PREC) * qk_scale
        if ALIBI:
            dist = tl.abs(pos_q[:, None] - offs_n[None, :]).to(tl.float32)
            qk = qk - slope[:, None] * dist
        if MASKED:
            ok = (offs_n[None, :] >= lo_r[:, None]) & (offs_n[None, :] < hi_r[:, None])
            qk = tl.where(ok, qk, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(qk, 1))
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no key yet
        else:
            m_new = tl.maximum(m_i, tl.max(qk, 1))
            m_use = m_new
        p = tl.math.exp2(qk - m_use[:, None])
        alpha = tl.math.exp2(m_i - m_use)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        if USE_DESC:
            v = V_base.load([kv_row0 + s, 0])
        else:
            v = _load_rows(
                V_base + offs_n[:, None] * stride_vn + offs_dv[None, :],
                n_ok,
                offs_dv,
                DV,
                BLOCK_DV,
                not MASKED,
            )
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PREC)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _fwd_kernel(
    Q,
    K,
    V,
    Out,
    LSE,
    Opart,
    Lpart,
    Slopes,
    DocStart,
    DocEnd,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_ob,
    stride_oh,
    stride_om,
    Hq,
    Hkv,
    Sq,
    Skv,
    window,
    kv_per_split,
    qk_scale,
    GROUP: tl.constexpr,
    CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    HAS_DOCS: tl.constexpr,
    ALIBI: tl.constexpr,
    PACKED: tl.constexpr,
    SPLIT: tl.constexpr,
    STORE_LSE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    D: tl.constexpr,
    DV: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    PREC: tl.constexpr,
    USE_DESC: tl.constexpr,
    SA: tl.constexpr = 1,
):
    # strides arrive divided by SA: multiplied back here, the compiler knows they are multiples
    # of SA (head_dim 56: rows of 112 bytes load in 16-byte vectors, not element by element)
    stride_qb, stride_qh, stride_qm = stride_qb * SA, stride_qh * SA, stride_qm * SA
    stride_kb, stride_kh, stride_kn = stride_kb * SA, stride_kh * SA, stride_kn * SA
    stride_vb, stride_vh, stride_vn = stride_vb * SA, stride_vh * SA, stride_vn * SA
    stride_ob, stride_oh, stride_om = stride_ob * SA, stride_oh * SA, stride_om * SA
    pid_bh = tl.program_id(0)
    num_m = tl.num_programs(1)
    if CAUSAL and not PACKED:
        pid_m = num_m - 1 - tl.program_id(1)  # heaviest (last) rows first
    else:
        pid_m = tl.program_id(1)
    split = tl.program_id(2)
    shift = Skv - Sq

    r = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    if PACKED:  # pid_bh = b * Hkv + kv head; row r = g * Sq + i
        b = pid_bh // Hkv
        hkv = pid_bh % Hkv
        rows_total = GROUP * Sq
        r_ok = r < rows_total
        rc = tl.minimum(r, rows_total - 1)
        i = rc % Sq
        head = hkv * GROUP + rc // Sq
    else:  # pid_bh = b * Hq + query head
        b = pid_bh // Hq
        h = pid_bh % Hq
        hkv = h // GROUP
        rows_total = Sq
        r_ok = r < Sq
        i = tl.minimum(r, Sq - 1)
        head = tl.zeros_like(r) + h
    pos = i + shift
    b64 = b.to(tl.int64)

    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    if USE_DESC:  # Q, K, V: descriptors over contiguous (B * heads * seq, dim) views
        q = Q.load([pid_bh * Sq + pid_m * BLOCK_M, 0])  # rows past Sq: never stored
        K_base = K
        V_base = V
        kv_row0 = (b * Hkv + hkv) * Skv
    else:
        q_ptrs = (
            Q
            + b64 * stride_qb
            + head[:, None].to(tl.int64) * stride_qh
            + i[:, None].to(tl.int64) * stride_qm
            + offs_d[None, :]
        )
        q = _load_rows(q_ptrs, r_ok, offs_d, D, BLOCK_D, False)
        K_base = K + b64 * stride_kb + hkv.to(tl.int64) * stride_kh
        V_base = V + b64 * stride_vb + hkv.to(tl.int64) * stride_vh
        kv_row0 = 0

    lo_r, hi_r = _row_bounds(pos, Skv, window, DocStart, DocEnd, CAUSAL, HAS_WINDOW, HAS_DOCS)
    if SPLIT:
        lo_r = tl.maximum(lo_r, split * kv_per_split)
        hi_r = tl.minimum(hi_r, split * kv_per_split + kv_per_split)
    if ALIBI:
        slope = tl.load(Slopes + head) * _LOG2E
    else:
        slope = tl.zeros([BLOCK_M], dtype=tl.float32)

    # blocks [lo, full_lo) and [full_hi, hi) cut some row's interval: masked; between: not
    lo = (tl.min(lo_r, 0) // BLOCK_N) * BLOCK_N
    hi = tl.max(hi_r, 0)
    full_lo = tl.cdiv(tl.max(lo_r, 0), BLOCK_N) * BLOCK_N
    full_hi = (tl.min(hi_r, 0) // BLOCK_N) * BLOCK_N
    if full_hi <= full_lo:
        full_lo = hi
        full_hi = hi

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=tl.float32)
    acc, l_i, m_i = _fwd_blocks(
        acc, l_i, m_i, q, K_base, V_base, stride_kn, stride_vn, offs_d, offs_dv, pos, lo_r,
        hi_r, slope, lo, tl.minimum(full_lo, hi), Skv, qk_scale,
        True, ALIBI, BLOCK_N, D, DV, BLOCK_D, BLOCK_DV, PREC, USE_DESC, kv_row0,
    )  # fmt: skip
    acc, l_i, m_i = _fwd_blocks(
        acc, l_i, m_i, q, K_base, V_base, stride_kn, stride_vn, offs_d, offs_dv, pos, lo_r,
        hi_r, slope, full_lo, full_hi, Skv, qk_scale,
        False, ALIBI, BLOCK_N, D, DV, BLOCK_D, BLOCK_DV, PREC, USE_DESC, kv_row0,
    )  # fmt: skip
    acc, l_i, m_i = _fwd_blocks(
        acc, l_i, m_i, q, K_base, V_base, stride_kn, stride_vn, offs_d, offs_dv, pos, lo_r,
        hi_r, slope, tl.maximum(full_hi, lo), hi, Skv, qk_scale,
        True, ALIBI, BLOCK_N, D, DV, BLOCK_D, BLOCK_DV, PREC, USE_DESC, kv_row0,
    )  # fmt: skip

    empty = l_i == 0.0  # a split range with no key for this row
    l_safe = tl.where(empty, 1.0, l_i)
    out = acc / l_safe[:, None]
    lse = tl.where(empty, float("-inf"), m_i + tl.math.log2(l_safe))
    if D == BLOCK_D and DV == BLOCK_DV:
        dv_ok = offs_dv < BLOCK_DV
    else:
        dv_ok = offs_dv < DV
    if SPLIT:
        row = (pid_bh.to(tl.int64) * tl.num_programs(2) + split) * rows_total + r
        tl.store(
            Opart + row[:, None] * BLOCK_DV + offs_dv[None, :],
            out,
            mask=r_ok[:, None],
        )
        tl.store(Lpart + row, lse, mask=r_ok)
    else:
        o_ptrs = (
            Out
            + b64 * stride_ob
            + head[:, None].to(tl.int64) * stride_oh
            + i[:, None].to(tl.int64) * stride_om
            + offs_dv[None, :]
        )
        tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=r_ok[:, None] & dv_ok[None, :])
        if STORE_LSE:
            tl.store(LSE + (b64 * Hq + head) * Sq + i, lse, mask=r_ok)


@triton.jit
def _combine_kernel(
    Opart,
    Lpart,
    Out,
    LSE,
    stride_ob,
    stride_oh,
    stride_om,
    Hq,
    Hkv,
    Sq,
    rows_total,
    num_splits,
    GROUP: tl.constexpr,
    PACKED: tl.constexpr,
    STORE_LSE: tl.constexpr,
    BLOCK_S: tl.constexpr,
    DV: tl.constexpr,
    BLOCK_DV: tl.constexpr,
):
    pid_bh = tl.program_id(0)
    r = tl.program_id(1)
    if PACKED:
        b = pid_bh // Hkv
        head = (pid_bh % Hkv) * GROUP + r // Sq
        i = r % Sq
    else:
        b = pid_bh // Hq
        head = pid_bh % Hq
        i = r
    s = tl.arange(0, BLOCK_S)
    s_ok = s < num_splits
    row = (pid_bh.to(tl.int64) * num_splits + s) * rows_total + r
    lse = tl.load(Lpart + row, mask=s_ok, other=float("-inf"))
    top = tl.max(lse, 0)
    w = tl.math.exp2(lse - top)
    total = tl.sum(w, 0)
    offs_dv = tl.arange(0, BLOCK_DV)
    part = tl.load(
        Opart + row[:, None] * BLOCK_DV + offs_dv[None, :], mask=s_ok[:, None], other=0.0
    )
    out = tl.sum(part * w[:, None], 0) / total
    b64 = b.to(tl.int64)
    o_ptrs = Out + b64 * stride_ob + head.to(tl.int64) * stride_oh + i.to(tl.int64) * stride_om
    tl.store(o_ptrs + offs_dv, out.to(Out.dtype.element_ty), mask=offs_dv < DV)
    if STORE_LSE:
        tl.store(LSE + (b64 * Hq + head) * Sq + i, top + tl.math.log2(total))


# -- backward -------------------------------------------------------------------------------
@triton.jit
def _bwd_delta_kernel(
    Out,
    dO,
    Delta,
    stride_ob,
    stride_oh,
    stride_om,
    stride_dob,
    stride_doh,
    stride_dom,
    Hq,
    Sq,
    BLOCK_M: tl.constexpr,
    DV: tl.constexpr,
    BLOCK_DV: tl.constexpr,
):
    pid_bh = tl.program_id(0)
    b = (pid_bh // Hq).to(tl.int64)
    h = (pid_bh % Hq).to(tl.int64)
    r = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs = tl.arange(0, BLOCK_DV)
    ok = (r[:, None] < Sq) & (offs[None, :] < DV)
    o = tl.load(
        Out + b * stride_ob + h * stride_oh + r[:, None] * stride_om + offs[None, :], ok, 0.0
    )
    do = tl.load(
        dO + b * stride_dob + h * stride_doh + r[:, None] * stride_dom + offs[None, :], ok, 0.0
    )
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(Delta + pid_bh.to(tl.int64) * Sq + r, delta, mask=r < Sq)


@triton.jit
def _dkdv_rows(
    dk, dv, k, v, Q_base, dO_base, LSE_row, Delta_row, DocStart, DocEnd,
    stride_qm, stride_dom, offs_n, offs_d, offs_dv, slope, start, end,
    Sq, Skv, shift, window, qk_scale,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr,
    HAS_DOCS: tl.constexpr, ALIBI: tl.constexpr, BLOCK_M: tl.constexpr, D: tl.constexpr,
    DV: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """dK, dV of one key block from query blocks [start, end) of one head."""
    for start_m in range(start, end, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        m_ok = offs_m < Sq
        q = _load_rows(
            Q_base + offs_m[:, None] * stride_qm + offs_d[None, :],
            m_ok, offs_d, D, BLOCK_D, not MASKED,
        )  # fmt: skip
        do = _load_rows(
            dO_base + offs_m[:, None] * stride_dom + offs_dv[None, :],
            m_ok, offs_dv, DV, BLOCK_DV, not MASKED,
        )  # fmt: skip
        if MASKED:
            lse = tl.load(LSE_row + offs_m, mask=m_ok, other=0.0)
            delta = tl.load(Delta_row + offs_m, mask=m_ok, other=0.0)
        else:
            lse = tl.load(LSE_row + offs_m)
            delta = tl.load(Delta_row + offs_m)
        qkT = tl.dot(k, tl.trans(q), input_precision=PREC) * qk_scale  # (N, M)
        pos = tl.minimum(offs_m, Sq - 1) + shift
        if ALIBI:
            qkT = qkT - slope * tl.abs(offs_n[:, None] - pos[None, :]).to(tl.float32)
        pT = tl.math.exp2(qkT - lse[None, :])
        if MASKED:
            lo_r, hi_r = _row_bounds(
                pos, Skv, window, DocStart, DocEnd, CAUSAL, HAS_WINDOW, HAS_DOCS
            )
            ok = (offs_n[:, None] >= lo_r[None, :]) & (offs_n[:, None] < hi_r[None, :])
            ok = ok & m_ok[None, :]
            pT = tl.where(ok, pT, 0.0)
        dv = tl.dot(pT.to(do.dtype), do, dv, input_precision=PREC)
        dpT = tl.dot(v, tl.trans(do), input_precision=PREC)
        dsT = pT * (dpT - delta[None, :])
        dk = tl.dot(dsT.to(q.dtype), q, dk, input_precision=PREC)
    return dk, dv


@triton.jit
def _dq_cols(
    dq, q, do, lse, delta, K_base, V_base, stride_kn, stride_vn, offs_m, m_ok, offs_d, offs_dv,
    pos, lo_r, hi_r, slope, start, end, Skv, qk_scale,
    MASKED: tl.constexpr, ALIBI: tl.constexpr, BLOCK_N: tl.constexpr, D: tl.constexpr,
    DV: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """dQ of one query block from key blocks [start, end)."""
    for start_n in range(start, end, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        n_ok = offs_n < Skv
        k = _load_rows(
            K_base + offs_n[:, None] * stride_kn + offs_d[None, :],
            n_ok, offs_d, D, BLOCK_D, not MASKED,
        )  # fmt: skip
        v = _load_rows(
            V_base + offs_n[:, None] * stride_vn + offs_dv[None, :],
            n_ok, offs_dv, DV, BLOCK_DV, not MASKED,
        )  # fmt: skip
        qk = tl.dot(q, tl.trans(k), input_precision=PREC) * qk_scale
        if ALIBI:
            qk = qk - slope * tl.abs(pos[:, None] - offs_n[None, :]).to(tl.float32)
        p = tl.math.exp2(qk - lse[:, None])
        if MASKED:
            ok = (offs_n[None, :] >= lo_r[:, None]) & (offs_n[None, :] < hi_r[:, None])
            p = tl.where(ok & m_ok[:, None], p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PREC)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PREC)
    return dq


@triton.jit
def _bwd_dkdv_kernel(
    Q,
    K,
    V,
    dO,
    LSE,
    Delta,
    dK,
    dV,
    Slopes,
    DocStart,
    DocEnd,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_dob,
    stride_doh,
    stride_dom,
    stride_dkb,
    stride_dkh,
    stride_dkn,
    stride_dvb,
    stride_dvh,
    stride_dvn,
    Hq,
    Hkv,
    Sq,
    Skv,
    window,
    sm_scale,
    qk_scale,
    GROUP: tl.constexpr,
    CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    HAS_DOCS: tl.constexpr,
    ALIBI: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    D: tl.constexpr,
    DV: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    PREC: tl.constexpr,
):
    pid_bh = tl.program_id(0)  # b * Hkv + kv head
    b = pid_bh // Hkv
    hkv = pid_bh % Hkv
    b64 = b.to(tl.int64)
    start_n = tl.program_id(1) * BLOCK_N
    shift = Skv - Sq
    offs_n = start_n + tl.arange(0, BLOCK_N)
    n_ok = offs_n < Skv
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    k = _load_rows(
        K + b64 * stride_kb + hkv.to(tl.int64) * stride_kh + offs_n[:, None] * stride_kn
        + offs_d[None, :],
        n_ok, offs_d, D, BLOCK_D, False,
    )  # fmt: skip
    v = _load_rows(
        V + b64 * stride_vb + hkv.to(tl.int64) * stride_vh + offs_n[:, None] * stride_vn
        + offs_dv[None, :],
        n_ok, offs_dv, DV, BLOCK_DV, False,
    )  # fmt: skip
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_DV], dtype=tl.float32)

    # query rows whose interval can meet keys [start_n, end_n)
    end_n = tl.minimum(start_n + BLOCK_N, Skv)
    m_lo = 0
    m_hi = Sq
    if CAUSAL:
        m_lo = tl.maximum(m_lo, start_n - shift)
    if HAS_WINDOW:
        m_hi = tl.minimum(m_hi, end_n - 1 + window - shift)
    if HAS_DOCS:
        m_lo = tl.maximum(m_lo, tl.load(DocStart + start_n) - shift)
        m_hi = tl.minimum(m_hi, tl.load(DocEnd + end_n - 1) - shift)

    m_lo = (m_lo // BLOCK_M) * BLOCK_M
    # rows that see the whole key block need no mask: [f_lo, f_hi), whole query blocks only
    f_lo = m_lo
    f_hi = (Sq // BLOCK_M) * BLOCK_M
    if CAUSAL:
        f_lo = tl.maximum(f_lo, tl.cdiv(end_n - 1 - shift, BLOCK_M) * BLOCK_M)
    if HAS_WINDOW:
        f_hi = tl.minimum(f_hi, ((start_n + window - shift) // BLOCK_M) * BLOCK_M)
    if HAS_DOCS or end_n - start_n < BLOCK_N:
        f_hi = f_lo
    f_hi = tl.minimum(f_hi, m_hi)
    if f_hi <= f_lo:
        f_lo = m_hi
        f_hi = m_hi

    for g in range(GROUP):
        head = hkv * GROUP + g
        h64 = head.to(tl.int64)
        Q_base = Q + b64 * stride_qb + h64 * stride_qh
        dO_base = dO + b64 * stride_dob + h64 * stride_doh
        row_base = (b64 * Hq + h64) * Sq
        if ALIBI:
            slope = tl.load(Slopes + head) * _LOG2E
        else:
            slope = 0.0
        dk, dv = _dkdv_rows(
            dk, dv, k, v, Q_base, dO_base, LSE + row_base, Delta + row_base, DocStart, DocEnd,
            stride_qm, stride_dom, offs_n, offs_d, offs_dv, slope, m_lo, tl.minimum(f_lo, m_hi),
            Sq, Skv, shift, window, qk_scale,
            True, CAUSAL, HAS_WINDOW, HAS_DOCS, ALIBI, BLOCK_M, D, DV, BLOCK_D, BLOCK_DV, PREC,
        )  # fmt: skip
        dk, dv = _dkdv_rows(
            dk, dv, k, v, Q_base, dO_base, LSE + row_base, Delta + row_base, DocStart, DocEnd,
            stride_qm, stride_dom, offs_n, offs_d, offs_dv, slope, f_lo, f_hi,
            Sq, Skv, shift, window, qk_scale,
            False, CAUSAL, HAS_WINDOW, HAS_DOCS, ALIBI, BLOCK_M, D, DV, BLOCK_D, BLOCK_DV, PREC,
        )  # fmt: skip
        dk, dv = _dkdv_rows(
            dk, dv, k, v, Q_base, dO_base, LSE + row_base, Delta + row_base, DocStart, DocEnd,
            stride_qm, stride_dom, offs_n, offs_d, offs_dv, slope, tl.maximum(f_hi, m_lo), m_hi,
            Sq, Skv, shift, window, qk_scale,
            True, CAUSAL, HAS_WINDOW, HAS_DOCS, ALIBI, BLOCK_M, D, DV, BLOCK_D, BLOCK_DV, PREC,
        )  # fmt: skip
    dk = dk * sm_scale
    dk_ptrs = (
        dK + b64 * stride_dkb + hkv.to(tl.int64) * stride_dkh + offs_n[:, None] * stride_dkn
        + offs_d[None, :]
    )  # fmt: skip
    dv_ptrs = (
        dV + b64 * stride_dvb + hkv.to(tl.int64) * stride_dvh + offs_n[:, None] * stride_dvn
        + offs_dv[None, :]
    )  # fmt: skip
    tl.store(dk_ptrs, dk.to(dK.dtype.element_ty), mask=n_ok[:, None] & (offs_d[None, :] < D))
    tl.store(dv_ptrs, dv.to(dV.dtype.element_ty), mask=n_ok[:, None] & (offs_dv[None, :] < DV))


@triton.jit
def _bwd_dq_kernel(
    Q,
    K,
    V,
    dO,
    LSE,
    Delta,
    dQ,
    Slopes,
    DocStart,
    DocEnd,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_dob,
    stride_doh,
    stride_dom,
    stride_dqb,
    stride_dqh,
    stride_dqm,
    Hq,
    Sq,
    Skv,
    window,
    sm_scale,
    qk_scale,
    GROUP: tl.constexpr,
    CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    HAS_DOCS: tl.constexpr,
    ALIBI: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    D: tl.constexpr,
    DV: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    PREC: tl.constexpr,
):
    pid_bh = tl.program_id(0)  # b * Hq + head
    b = pid_bh // Hq
    head = pid_bh % Hq
    hkv = head // GROUP
    b64 = b.to(tl.int64)
    h64 = head.to(tl.int64)
    if CAUSAL:
        pid_m = tl.num_programs(1) - 1 - tl.program_id(1)
    else:
        pid_m = tl.program_id(1)
    shift = Skv - Sq
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < Sq
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    q = _load_rows(
        Q + b64 * stride_qb + h64 * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :],
        m_ok, offs_d, D, BLOCK_D, False,
    )  # fmt: skip
    do = _load_rows(
        dO + b64 * stride_dob + h64 * stride_doh + offs_m[:, None] * stride_dom
        + offs_dv[None, :],
        m_ok, offs_dv, DV, BLOCK_DV, False,
    )  # fmt: skip
    row_base = (b64 * Hq + h64) * Sq
    lse = tl.load(LSE + row_base + offs_m, mask=m_ok, other=0.0)
    delta = tl.load(Delta + row_base + offs_m, mask=m_ok, other=0.0)
    pos = tl.minimum(offs_m, Sq - 1) + shift
    lo_r, hi_r = _row_bounds(pos, Skv, window, DocStart, DocEnd, CAUSAL, HAS_WINDOW, HAS_DOCS)
    lo = (tl.min(lo_r, 0) // BLOCK_N) * BLOCK_N
    hi = tl.max(hi_r, 0)
    full_lo = tl.cdiv(tl.max(lo_r, 0), BLOCK_N) * BLOCK_N
    full_hi = (tl.min(hi_r, 0) // BLOCK_N) * BLOCK_N
    if HAS_DOCS or (pid_m + 1) * BLOCK_M > Sq:  # partial query block: rows masked throughout
        full_hi = full_lo
    if full_hi <= full_lo:
        full_lo = hi
        full_hi = hi
    if ALIBI:
        slope = tl.load(Slopes + head) * _LOG2E
    else:
        slope = 0.0
    K_base = K + b64 * stride_kb + hkv.to(tl.int64) * stride_kh
    V_base = V + b64 * stride_vb + hkv.to(tl.int64) * stride_vh
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    dq = _dq_cols(
        dq, q, do, lse, delta, K_base, V_base, stride_kn, stride_vn, offs_m, m_ok, offs_d,
        offs_dv, pos, lo_r, hi_r, slope, lo, tl.minimum(full_lo, hi), Skv, qk_scale,
        True, ALIBI, BLOCK_N, D, DV, BLOCK_D, BLOCK_DV, PREC,
    )  # fmt: skip
    dq = _dq_cols(
        dq, q, do, lse, delta, K_base, V_base, stride_kn, stride_vn, offs_m, m_ok, offs_d,
        offs_dv, pos, lo_r, hi_r, slope, full_lo, full_hi, Skv, qk_scale,
        False, ALIBI, BLOCK_N, D, DV, BLOCK_D, BLOCK_DV, PREC,
    )  # fmt: skip
    dq = _dq_cols(
        dq, q, do, lse, delta, K_base, V_base, stride_kn, stride_vn, offs_m, m_ok, offs_d,
        offs_dv, pos, lo_r, hi_r, slope, tl.maximum(full_hi, lo), hi, Skv, qk_scale,
        True, ALIBI, BLOCK_N, D, DV, BLOCK_D, BLOCK_DV, PREC,
    )  # fmt: skip
    dq = dq * sm_scale
    dq_ptrs = (
        dQ + b64 * stride_dqb + h64 * stride_dqh + offs_m[:, None] * stride_dqm + offs_d[None, :]
    )
    tl.store(dq_ptrs, dq.to(dQ.dtype.element_ty), mask=m_ok[:, None] & (offs_d[None, :] < D))


# -- host side ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskArgs:
    """The mask in the form the kernels take (device tensors made once, before timing)."""

    causal: bool
    window: int | None = None
    doc_start: torch.Tensor | None = None  # per key position: first key of its document
    doc_end: torch.Tensor | None = None  # per key position: one past its document's last key
    slopes: torch.Tensor | None = None  # ALiBi slope per query head, float32

    @property
    def masked(self) -> bool:
        return self.causal or self.window is not None or self.doc_start is not None


def mask_args(
    causal: bool,
    *,
    window: int | None = None,
    doc_lens: tuple[int, ...] | None = None,
    alibi_slopes: torch.Tensor | None = None,
    device: torch.device | str = "cuda",
) -> MaskArgs:
    doc_start = doc_end = None
    if doc_lens:
        lens = torch.tensor(doc_lens, dtype=torch.int64)
        ends = torch.cumsum(lens, 0)
        starts = ends - lens
        doc_start = torch.repeat_interleave(starts, lens).to(device, torch.int32)
        doc_end = torch.repeat_interleave(ends, lens).to(device, torch.int32)
    slopes = None
    if alibi_slopes is not None:
        slopes = alibi_slopes.to(device, torch.float32).contiguous()
    return MaskArgs(causal, window, doc_start, doc_end, slopes)


def _last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _prec(dtype: torch.dtype) -> str:
    # float32 inputs: exact products (tf32 would miss attnbench's fp32 tolerance)
    return "ieee" if dtype == torch.float32 else "tf32"


def _descriptors_apply(config: FwdConfig, q, k, v) -> bool:
    """Tensor descriptors when asked and possible: one-pass unpacked path, contiguous inputs,
    power-of-two head dims (a tile spans the row), 16-byte rows, Hopper or newer."""
    if not config.tma or config.packed or not all(t.is_contiguous() for t in (q, k, v)):
        return False
    if any(t.shape[-1] != _pow2(t.shape[-1]) for t in (q, v)):
        return False
    if q.device.type == "cuda" and torch.cuda.get_device_capability(q.device)[0] < 9:
        return False
    rows = max(q.numel() // q.shape[-1], k.numel() // k.shape[-1])
    return rows + config.block_m < 2**31 and q.shape[-1] * q.element_size() % 16 == 0


def _descriptors(q, k, v, config: FwdConfig):
    from triton.tools.tensor_descriptor import TensorDescriptor

    def desc(t: torch.Tensor, rows: int):
        flat = t.view(-1, t.shape[-1])
        return TensorDescriptor(flat, list(flat.shape), [t.shape[-1], 1], [rows, t.shape[-1]])

    return desc(q, config.block_m), desc(k, config.block_n), desc(v, config.block_n)


def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    mask: MaskArgs,
    config: FwdConfig | None = None,
    *,
    need_lse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``o`` and, with ``need_lse``, the base-2 log-sum-exp ``(B, Hq, Sq)`` float32."""
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    b, hq, sq, d = q.shape
    hkv, skv, dv = k.shape[1], k.shape[2], v.shape[-1]
    if config is None:
        config = choose_fwd_config(
            b, hq, hkv, sq, skv, d, dv, q.device, q.element_size(), mask.masked
        )
    group = hq // hkv
    o = torch.empty(b, hq, sq, dv, device=q.device, dtype=q.dtype)
    lse = torch.empty(b, hq, sq, device=q.device, dtype=torch.float32) if need_lse else None
    block_d, block_dv = _pow2(d), _pow2(dv)
    rows_total = group * sq if config.packed else sq
    programs = b * (hkv if config.packed else hq)
    num_m = triton.cdiv(rows_total, config.block_m)
    splits = max(1, config.num_splits)
    kv_per_split = triton.cdiv(triton.cdiv(skv, splits), config.block_n) * config.block_n
    splits = triton.cdiv(skv, kv_per_split)
    if splits > 1:
        opart = torch.empty(programs * splits * rows_total, block_dv, device=q.device,
                            dtype=torch.float32)  # fmt: skip
        lpart = torch.empty(programs * splits * rows_total, device=q.device, dtype=torch.float32)
    else:
        opart = lpart = o
    dummy = o
    strides = [st for t in (q, k, v, o) for st in t.stride()[:3]]
    # Triton already assumes multiples of 16 where they hold: only other rows need SA
    sa = next(a for a in (16, 8, 4, 2, 1) if all(st % a == 0 for st in strides)) % 16 or 1
    use_desc = splits == 1 and _descriptors_apply(config, q, k, v)
    src = _descriptors(q, k, v, config) if use_desc else (q, k, v)
    _fwd_kernel[(programs, num_m, splits)](
        *src, o, lse if lse is not None else dummy, opart, lpart,
        mask.slopes if mask.slopes is not None else dummy,
        mask.doc_start if mask.doc_start is not None else dummy,
        mask.doc_end if mask.doc_end is not None else dummy,
        *(st // sa for t in (q, k, v, o) for st in t.stride()[:3]),
        hq, hkv, sq, skv, mask.window or 0, kv_per_split, scale * LOG2E,
        GROUP=group, CAUSAL=mask.causal, HAS_WINDOW=mask.window is not None,
        HAS_DOCS=mask.doc_start is not None, ALIBI=mask.slopes is not None,
        PACKED=config.packed, SPLIT=splits > 1, STORE_LSE=need_lse,
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, D=d, DV=dv,
        BLOCK_D=block_d, BLOCK_DV=block_dv, PREC=_prec(q.dtype), USE_DESC=use_desc, SA=sa,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )  # fmt: skip
    if splits > 1:
        _combine_kernel[(programs, rows_total)](
            opart, lpart, o, lse if lse is not None else dummy,
            o.stride(0), o.stride(1), o.stride(2),
            hq, hkv, sq, rows_total, splits,
            GROUP=group, PACKED=config.packed, STORE_LSE=need_lse,
            BLOCK_S=triton.next_power_of_2(splits), DV=dv, BLOCK_DV=block_dv,
            num_warps=4,
        )  # fmt: skip
    return o, lse


def attention_backward(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    scale: float,
    mask: MaskArgs,
    config: BwdConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q, k, v, o, do = (_last_dim_contiguous(t) for t in (q, k, v, o, do))
    b, hq, sq, d = q.shape
    hkv, skv, dv = k.shape[1], k.shape[2], v.shape[-1]
    group = hq // hkv
    if config is None:
        config = choose_bwd_config(d, dv, q.element_size())
    block_d, block_dv = _pow2(d), _pow2(dv)
    delta = torch.empty(b, hq, sq, device=q.device, dtype=torch.float32)
    _bwd_delta_kernel[(b * hq, triton.cdiv(sq, 128))](
        o, do, delta, o.stride(0), o.stride(1), o.stride(2),
        do.stride(0), do.stride(1), do.stride(2), hq, sq,
        BLOCK_M=128, DV=dv, BLOCK_DV=block_dv, num_warps=4,
    )  # fmt: skip
    dq = torch.empty_like(q)
    dk = torch.empty_like(k)
    dvt = torch.empty_like(v)
    dummy = delta
    slopes = mask.slopes if mask.slopes is not None else dummy
    doc_start = mask.doc_start if mask.doc_start is not None else dummy
    doc_end = mask.doc_end if mask.doc_end is not None else dummy
    common = dict(
        GROUP=group, CAUSAL=mask.causal, HAS_WINDOW=mask.window is not None,
        HAS_DOCS=mask.doc_start is not None, ALIBI=mask.slopes is not None,
        D=d, DV=dv, BLOCK_D=block_d, BLOCK_DV=block_dv, PREC=_prec(q.dtype),
        num_warps=config.num_warps, num_stages=config.num_stages,
    )  # fmt: skip
    _bwd_dkdv_kernel[(b * hkv, triton.cdiv(skv, config.block_n1))](
        q, k, v, do, lse, delta, dk, dvt, slopes, doc_start, doc_end,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        do.stride(0), do.stride(1), do.stride(2),
        dk.stride(0), dk.stride(1), dk.stride(2),
        dvt.stride(0), dvt.stride(1), dvt.stride(2),
        hq, hkv, sq, skv, mask.window or 0, scale, scale * LOG2E,
        BLOCK_M=config.block_m1, BLOCK_N=config.block_n1,
        **common,
    )  # fmt: skip
    _bwd_dq_kernel[(b * hq, triton.cdiv(sq, config.block_m2))](
        q, k, v, do, lse, delta, dq, slopes, doc_start, doc_end,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        do.stride(0), do.stride(1), do.stride(2),
        dq.stride(0), dq.stride(1), dq.stride(2),
        hq, sq, skv, mask.window or 0, scale, scale * LOG2E,
        BLOCK_M=config.block_m2, BLOCK_N=config.block_n2,
        **common,
    )  # fmt: skip
    return dq, dk, dvt


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, scale, mask, fwd_config, bwd_config):
        o, lse = attention_forward(q, k, v, scale, mask, fwd_config, need_lse=True)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.scale, ctx.mask, ctx.bwd_config = scale, mask, bwd_config
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(do, q, k, v, o, lse, ctx.scale, ctx.mask, ctx.bwd_config)
        return dq, dk, dv, None, None, None, None


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float | None = None,
    mask: MaskArgs | None = None,
    causal: bool = False,
    fwd_config: FwdConfig | None = None,
    bwd_config: BwdConfig | None = None,
) -> torch.Tensor:
    """Attention in the canonical layout; differentiable (through the Triton backward) when
    autograd records and an input needs a gradient."""
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if mask is None:
        mask = MaskArgs(causal)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return _Attention.apply(q, k, v, scale, mask, fwd_config, bwd_config)
    return attention_forward(q, k, v, scale, mask, fwd_config)[0]
