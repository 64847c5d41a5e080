"""The forward: one kernel with two specializations, the split-key combine kernel, the launcher.

Layout (attnbench's canonical one): ``q (B, Hq, Sq, D)``, ``k (B, Hkv, Skv, D)``,
``v (B, Hkv, Skv, Dv)`` -> ``o (B, Hq, Sq, Dv)``; query head ``h`` reads KV head
``h // (Hq // Hkv)`` by index (K/V are never repeated). Any strides, the last dimension
contiguous (made so at the edge). Query row ``i`` sits at key position ``i + Skv - Sq``
(bottom-right alignment). Scores are kept in base 2 (``scale * log2(e)`` folded in, ``exp2``);
the saved log-sum-exp is base 2.

``_fwd_kernel`` compiles one of two bodies, chosen by the constexpr ``DENSE``:

- **dense** (causal or full, no window/documents/ALiBi, power-of-two head dims, one pass): the
  FlashAttention-2 loop. Grid
  ``(Sq / block_m, B * Hq)``: the query blocks of one head run side by side (its K/V stay in
  L2), causal blocks longest first. Per program one pair of key ranges, no per-row bounds: the
  tiles left of the diagonal run with no mask at all; only the tiles the diagonal crosses (and
  a ragged last tile) are masked. The max is taken on the raw scores and the scale folded into
  the ``exp2`` argument (one FMA per score). Optional TMA loads (tensor descriptors).
- **general** (every mask, any head dim <= 256, packed GQA rows, split keys): every mask is an
  interval per query row (``lo_i <= j < hi_i``: causal sets ``hi``, a window ``lo``, packed
  documents both from two int32 tables); key blocks that cut no row's interval run unmasked.
  ALiBi adds ``-slope_h * |pos_q - pos_k|`` to the scaled scores. ``PACKED``: for few query
  rows (decode) the ``G`` query heads sharing a KV head form one block of ``G * Sq`` rows, so
  K/V are read once per KV head. ``SPLIT``: when the programs would not fill the GPU each also
  takes one of ``num_splits`` key ranges, writes a float32 partial output and log-sum-exp, and
  ``_combine_kernel`` merges them; or (``FUSE``, config ``fused_combine``) the split that
  finishes last, counted by an atomic per row block, merges them itself: one launch, not two.
  Grid ``(B * heads, blocks, splits)``.

With the constexpr flags off, neither body contains code of the other or of a mask it does
not use (``lab/triton_resources.py`` reports each one's registers and shared memory).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ...dtypes import DTYPES, output_torch_dtype
from ...masks import MaskSpec, alibi_slopes
from .common import _LOG2E, LOG2E, _load_rows, _lse, _p_to, _probs, _row_bounds
from .configs import FwdConfig, choose_fwd_config, keys_per_split, num_sms, pow2, splits_for


# -- dense specialization -----------------------------------------------------------------------
@triton.jit
def _dense_tiles(
    acc,
    l_i,
    m_i,
    q,
    k_ptrs,
    v_ptrs,
    stride_kn,
    stride_vn,
    start,
    stop,
    offs_m,
    offs_n,
    seq_kv,
    diag,
    qk_scale,
    kv_row0,
    v_row0,
    MASKED: tl.constexpr,
    CAUSAL: tl.constexpr,
    BLOCK_N: tl.constexpr,
    USE_DESC: tl.constexpr,
    PREC: tl.constexpr,
    V_T: tl.constexpr = False,
):
    """Online softmax over the key tiles [start, stop); MASKED tiles check bounds/diagonal.
    USE_DESC: ``k_ptrs``/``v_ptrs`` are tensor descriptors (TMA) over (rows, dim), the head's
    keys starting at row ``kv_row0``; rows past ``seq_kv`` are masked out of the scores
    (``V_T``: V's descriptor is over V transposed, see :func:`_v_tile`). fp8 inputs: P scaled
    by 2^FP8_P_SHIFT (``common.FP8_P_SHIFT``)."""
    for start_n in tl.range(start, stop, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        if USE_DESC:
            k = k_ptrs.load([kv_row0 + start_n, 0])
        elif MASKED:
            k = tl.load(k_ptrs + start_n * stride_kn, mask=cols[:, None] < seq_kv, other=0.0)
        else:
            k = tl.load(k_ptrs + start_n * stride_kn)
        qk = tl.dot(q, tl.trans(k), input_precision=PREC)
        if MASKED:
            keep = cols[None, :] < seq_kv
            if CAUSAL:
                keep = keep & (cols[None, :] <= offs_m[:, None] + diag)
            qk = tl.where(keep, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = _probs(qk * qk_scale - m_new[:, None], q.dtype)
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        if USE_DESC:
            v = _v_tile(v_ptrs, start_n, kv_row0, v_row0, V_T)
        elif MASKED:
            v = tl.load(v_ptrs + start_n * stride_vn, mask=cols[:, None] < seq_kv, other=0.0)
        else:
            v = tl.load(v_ptrs + start_n * stride_vn)
        acc = tl.dot(_p_to(p, v.dtype), v, acc, input_precision=PREC)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _v_tile(v_desc, start_n, kv_row0, v_row0, V_T: tl.constexpr):
    """The value tile of keys [start_n, start_n + BLOCK_N) through V's tensor descriptor, as
    (keys, dim). ``V_T``: the descriptor is over V transposed, (B * kv_heads * dim, keys), the
    head's rows starting at ``v_row0``: the tile arrives dim-major and its transpose is a view,
    which is the K-major operand layout Hopper's fp8 wgmma needs for P @ V. Without it, Triton
    transposes each fp8 V tile through registers and shared memory (sm_90 TTGIR: a local_load
    and a local_alloc per key tile; bf16 wgmma reads either layout). Keys past the end read
    as zeros (TMA's out-of-bounds fill)."""
    if V_T:
        v = v_desc.load([v_row0, start_n]).T
    else:
        v = v_desc.load([kv_row0 + start_n, 0])
    return v


@triton.jit
def _dense_program(
    Q, K, V, Out, LSE,
    stride_qb, stride_qh, stride_qm, stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn, stride_ob, stride_oh, stride_om,
    q_heads, kv_heads, seq_q, seq_kv, qk_scale,
    GROUP: tl.constexpr, CAUSAL: tl.constexpr, STORE_LSE: tl.constexpr,
    HEAD_DIM: tl.constexpr, V_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    USE_DESC: tl.constexpr, PREC: tl.constexpr, V_T: tl.constexpr = False,
):  # fmt: skip
    """One program of the dense specialization: grid (query blocks, B * Hq). ``V_T``: V's
    descriptor is over V transposed (fp8, :func:`_v_tile`)."""
    pid_m = tl.program_id(0)
    if CAUSAL:  # the longest blocks (bottom rows) first: better load balance at the end
        pid_m = tl.num_programs(0) - 1 - pid_m
    pid_bh = tl.program_id(1)
    b = (pid_bh // q_heads).to(tl.int64)
    h = pid_bh % q_heads
    hk = (h // GROUP).to(tl.int64)
    h = h.to(tl.int64)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_dv = tl.arange(0, V_DIM)
    if USE_DESC:  # Q, K, V are descriptors over contiguous (B * heads * seq, dim) views
        q = Q.load([pid_bh * seq_q + pid_m * BLOCK_M, 0])  # rows past seq_q: never stored
        k_src = K
        v_src = V
        kv_row0 = ((b * (q_heads // GROUP) + hk) * seq_kv).to(tl.int32)
        v_row0 = ((b * (q_heads // GROUP) + hk) * V_DIM).to(tl.int32)
    else:
        q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :]
        q = tl.load(q_ptrs, mask=offs_m[:, None] < seq_q, other=0.0)
        k_src = K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :]
        v_src = V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vn + offs_dv[None, :]
        kv_row0 = 0
        v_row0 = 0

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, V_DIM], dtype=tl.float32)
    diag = seq_kv - seq_q
    if CAUSAL:
        # keys every row of the block sees, then the tiles the diagonal crosses
        full_stop = tl.minimum(pid_m * BLOCK_M + diag + 1, seq_kv)
        stop = tl.minimum(pid_m * BLOCK_M + BLOCK_M + diag, seq_kv)
    else:
        full_stop = seq_kv
        stop = seq_kv
    full_stop = (full_stop // BLOCK_N) * BLOCK_N
    acc, l_i, m_i = _dense_tiles(
        acc, l_i, m_i, q, k_src, v_src, stride_kn, stride_vn, 0, full_stop, offs_m,
        offs_n, seq_kv, diag, qk_scale, kv_row0, v_row0, False, CAUSAL, BLOCK_N, USE_DESC,
        PREC, V_T,
    )  # fmt: skip
    acc, l_i, m_i = _dense_tiles(
        acc, l_i, m_i, q, k_src, v_src, stride_kn, stride_vn, full_stop, stop,
        offs_m, offs_n, seq_kv, diag, qk_scale, kv_row0, v_row0, True, CAUSAL, BLOCK_N, USE_DESC,
        PREC, V_T,
    )  # fmt: skip

    acc = acc / l_i[:, None]
    rows_ok = offs_m < seq_q
    if STORE_LSE:
        lse = _lse(m_i, l_i, q.dtype)
        tl.store(LSE + pid_bh.to(tl.int64) * seq_q + offs_m, lse, mask=rows_ok)
    o_ptrs = Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_dv[None, :]
    tl.store(o_ptrs, acc.to(Out.dtype.element_ty), mask=rows_ok[:, None])


# -- general kernel -----------------------------------------------------------------------------
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
        p = _probs(qk - m_use[:, None], q.dtype)
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
        acc = tl.dot(_p_to(p, v.dtype), v, acc, input_precision=PREC)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _general_program(
    Q, K, V, Out, LSE, Opart, Lpart, Slopes, DocStart, DocEnd, Counter,
    stride_qb, stride_qh, stride_qm, stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn, stride_ob, stride_oh, stride_om,
    Hq, Hkv, Sq, Skv, window, kv_per_split, qk_scale,
    GROUP: tl.constexpr, CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr,
    HAS_DOCS: tl.constexpr, ALIBI: tl.constexpr, PACKED: tl.constexpr, SPLIT: tl.constexpr,
    STORE_LSE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D: tl.constexpr,
    DV: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, PREC: tl.constexpr,
    USE_DESC: tl.constexpr, FUSE: tl.constexpr,
):  # fmt: skip
    """One program of the general kernel: grid (B * heads, row blocks, key splits)."""
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
    lse = tl.where(empty, float("-inf"), _lse(m_i, l_safe, q.dtype))
    if D == BLOCK_D and DV == BLOCK_DV:
        dv_ok = offs_dv < BLOCK_DV
    else:
        dv_ok = offs_dv < DV
    o_ptrs = (
        Out
        + b64 * stride_ob
        + head[:, None].to(tl.int64) * stride_oh
        + i[:, None].to(tl.int64) * stride_om
        + offs_dv[None, :]
    )
    lse_ptrs = LSE + (b64 * Hq + head) * Sq + i
    if SPLIT:
        row = (pid_bh.to(tl.int64) * tl.num_programs(2) + split) * rows_total + r
        tl.store(
            Opart + row[:, None] * BLOCK_DV + offs_dv[None, :],
            out,
            mask=r_ok[:, None],
        )
        tl.store(Lpart + row, lse, mask=r_ok)
        if FUSE:
            _last_split_merges(
                Opart, Lpart, Out, Counter, pid_bh, pid_m, r, r_ok, o_ptrs, lse_ptrs, dv_ok,
                rows_total, STORE_LSE, BLOCK_M, BLOCK_DV,
            )  # fmt: skip
    else:
        tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=r_ok[:, None] & dv_ok[None, :])
        if STORE_LSE:
            tl.store(lse_ptrs, lse, mask=r_ok)


@triton.jit
def _last_split_merges(
    Opart, Lpart, Out, Counter, pid_bh, pid_m, r, r_ok, o_ptrs, lse_ptrs, dv_ok, rows_total,
    STORE_LSE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_DV: tl.constexpr,
):  # fmt: skip
    """The combine kernel's merge, done by the split of a row block that finishes last (one
    atomic ticket per row block; every thread's partials stored before it is taken, read back
    from L2), which then re-arms the counter for the next call or CUDA-graph replay."""
    splits = tl.num_programs(2)
    tl.debug_barrier()
    slot = Counter + pid_bh * tl.num_programs(1) + pid_m
    ticket = tl.atomic_add(slot, 1, sem="acq_rel", scope="gpu")
    if ticket == splits - 1:
        offs_dv = tl.arange(0, BLOCK_DV)
        top = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        total = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=tl.float32)
        for s in range(splits):  # online: weights exp2(lse_split - running max)
            row = (pid_bh.to(tl.int64) * splits + s) * rows_total + r
            lse = tl.load(Lpart + row, mask=r_ok, other=float("-inf"), cache_modifier=".cg")
            part = tl.load(
                Opart + row[:, None] * BLOCK_DV + offs_dv[None, :],
                mask=r_ok[:, None],
                other=0.0,
                cache_modifier=".cg",
            )
            new_top = tl.maximum(top, lse)
            safe = tl.where(new_top == float("-inf"), 0.0, new_top)  # no key yet: no -inf - -inf
            alpha = tl.math.exp2(top - safe)
            w = tl.math.exp2(lse - safe)
            acc = acc * alpha[:, None] + part * w[:, None]
            total = total * alpha + w
            top = new_top
        out = acc / total[:, None]
        tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=r_ok[:, None] & dv_ok[None, :])
        if STORE_LSE:
            tl.store(lse_ptrs, top + tl.math.log2(total), mask=r_ok)
        tl.atomic_xchg(slot, 0)


# -- the kernel ---------------------------------------------------------------------------------
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
    Counter,
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
    DENSE: tl.constexpr,
    SA: tl.constexpr = 1,
    V_T: tl.constexpr = False,
    FUSE: tl.constexpr = False,
):
    # strides arrive divided by SA: multiplied back here, the compiler knows they are multiples
    # of SA (head_dim 56: rows of 112 bytes load in 16-byte vectors, not element by element)
    stride_qb, stride_qh, stride_qm = stride_qb * SA, stride_qh * SA, stride_qm * SA
    stride_kb, stride_kh, stride_kn = stride_kb * SA, stride_kh * SA, stride_kn * SA
    stride_vb, stride_vh, stride_vn = stride_vb * SA, stride_vh * SA, stride_vn * SA
    stride_ob, stride_oh, stride_om = stride_ob * SA, stride_oh * SA, stride_om * SA
    if DENSE:
        _dense_program(
            Q, K, V, Out, LSE,
            stride_qb, stride_qh, stride_qm, stride_kb, stride_kh, stride_kn,
            stride_vb, stride_vh, stride_vn, stride_ob, stride_oh, stride_om,
            Hq, Hkv, Sq, Skv, qk_scale,
            GROUP, CAUSAL, STORE_LSE, D, DV, BLOCK_M, BLOCK_N, USE_DESC, PREC, V_T,
        )  # fmt: skip
    else:
        _general_program(
            Q, K, V, Out, LSE, Opart, Lpart, Slopes, DocStart, DocEnd, Counter,
            stride_qb, stride_qh, stride_qm, stride_kb, stride_kh, stride_kn,
            stride_vb, stride_vh, stride_vn, stride_ob, stride_oh, stride_om,
            Hq, Hkv, Sq, Skv, window, kv_per_split, qk_scale,
            GROUP, CAUSAL, HAS_WINDOW, HAS_DOCS, ALIBI, PACKED, SPLIT, STORE_LSE,
            BLOCK_M, BLOCK_N, D, DV, BLOCK_D, BLOCK_DV, PREC, USE_DESC, FUSE,
        )  # fmt: skip


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
    """Merge the split-key partials of one row: weights ``exp2(lse_split - lse_max)``."""
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


# -- host side ----------------------------------------------------------------------------------
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
        """Some row's key range is cut (causal, window or documents)."""
        return self.causal or self.window is not None or self.doc_start is not None

    @property
    def dense(self) -> bool:
        """Causal or full only: what the dense specialization handles."""
        return self.window is None and self.doc_start is None and self.slopes is None


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


def spec_mask_args(spec: MaskSpec, heads: int, device: torch.device | str) -> MaskArgs:
    """attnbench's mask (a :class:`~attnbench.masks.MaskSpec`) as the kernels take it, for
    ``heads`` query heads (ALiBi's slopes)."""
    return mask_args(
        spec.causal,
        window=spec.window,
        doc_lens=spec.doc_lens,
        alibi_slopes=alibi_slopes(heads) if spec.alibi else None,
        device=device,
    )


def last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def prec(dtype: torch.dtype) -> str:
    # float32 inputs: exact products (tf32 would miss attnbench's fp32 tolerance)
    return "ieee" if dtype == torch.float32 else "tf32"


def default_fwd_config(q, k, v, mask: MaskArgs) -> FwdConfig:
    b, hq, sq, d = q.shape
    hkv, skv, dv = k.shape[1], k.shape[2], v.shape[-1]
    return choose_fwd_config(
        b, hq, hkv, sq, skv, d, dv, itemsize=q.element_size(), causal=mask.masked,
        dense_mask=mask.dense, num_sms=num_sms(q.device),
    )  # fmt: skip


def dense_applies(config: FwdConfig, mask: MaskArgs, q, k, v, splits: int) -> bool:
    """The dense specialization runs: asked for, causal/full mask, one pass, unpacked,
    power-of-two head dims (a tile spans the row), causal with q_len <= kv_len."""
    d, dv = q.shape[-1], v.shape[-1]
    return (
        config.dense
        and mask.dense
        and not config.packed
        and splits == 1
        and d == pow2(d)
        and dv == pow2(dv)
        and not (mask.causal and q.shape[2] > k.shape[2])
    )


def descriptors_apply(config: FwdConfig, q, k, v, splits: int = 1) -> bool:
    """Tensor descriptors (TMA) when asked and possible: one pass, unpacked, contiguous inputs,
    power-of-two head dims, 16-byte rows, row indices within int32, Hopper or newer."""
    if not config.tma or config.packed or splits > 1:
        return False
    if not all(t.is_contiguous() for t in (q, k, v)):
        return False
    if any(t.shape[-1] != pow2(t.shape[-1]) for t in (q, v)):
        return False
    if q.device.type == "cuda" and torch.cuda.get_device_capability(q.device)[0] < 9:
        return False
    rows = max(q.numel() // q.shape[-1], k.numel() // k.shape[-1])
    return rows + config.block_m < 2**31 and all(
        t.shape[-1] * t.element_size() % 16 == 0 for t in (q, v)
    )


def v_transposed_applies(q, k, use_desc: bool, dense: bool) -> bool:
    """fp8 through the dense kernel's descriptors: V goes transposed (:func:`_v_tile`), which
    needs the key count's rows of 16-byte multiples (TMA)."""
    return use_desc and dense and q.dtype == DTYPES["fp8"] and k.shape[2] % 16 == 0


def _descriptors(q, k, v, config: FwdConfig, v_t: bool = False):
    """Host-side tensor descriptors over the (B * heads * seq, dim) views of Q, K, V; with
    ``v_t``, V's over a transposed copy of V, (B * heads * dim, seq) (:func:`_v_tile`). The
    copy is part of the call (for B=4, H=32, S=4096, D=128 fp8: 64 MiB read and written)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    def desc(t: torch.Tensor, rows: int, cols: int | None = None):
        """Blocks of ``rows`` x ``cols`` (default: whole rows) over ``t``'s 2-D row view."""
        flat = t.view(-1, t.shape[-1])
        block = [rows, cols or t.shape[-1]]
        return TensorDescriptor(flat, list(flat.shape), [t.shape[-1], 1], block)

    if v_t:
        v_desc = desc(v.transpose(-1, -2).contiguous(), v.shape[-1], config.block_n)
    else:
        v_desc = desc(v, config.block_n)
    return desc(q, config.block_m), desc(k, config.block_n), v_desc


_COUNTERS: dict[torch.device, torch.Tensor] = {}


def split_counters(device: torch.device, n: int) -> torch.Tensor:
    """Zeroed int32 tickets for the fused combine, at least ``n``, kept per device: the split
    that merges a row block sets its ticket back to zero, so the next call (or a CUDA-graph
    replay) finds them armed. Calls that run at once on two streams must not share them."""
    buf = _COUNTERS.get(device)
    if buf is None or buf.numel() < n:
        buf = torch.zeros(max(n, 4096), dtype=torch.int32, device=device)
        _COUNTERS[device] = buf
    return buf


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
    q, k, v = (last_dim_contiguous(t) for t in (q, k, v))
    b, hq, sq, d = q.shape
    hkv, skv, dv = k.shape[1], k.shape[2], v.shape[-1]
    if config is None:
        config = default_fwd_config(q, k, v, mask)
    group = hq // hkv
    o = torch.empty(b, hq, sq, dv, device=q.device, dtype=output_torch_dtype(q.dtype))
    lse = torch.empty(b, hq, sq, device=q.device, dtype=torch.float32) if need_lse else None
    block_d, block_dv = pow2(d), pow2(dv)
    packed = config.packed
    rows_total = group * sq if packed else sq
    programs = b * (hkv if packed else hq)
    num_m = triton.cdiv(rows_total, config.block_m)
    kv_per_split = keys_per_split(skv, config.block_n, config.num_splits)
    splits = splits_for(skv, config.block_n, config.num_splits)
    dense = dense_applies(config, mask, q, k, v, splits)
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
    use_desc = descriptors_apply(config, q, k, v, splits)
    v_t = v_transposed_applies(q, k, use_desc, dense)
    src = _descriptors(q, k, v, config, v_t) if use_desc else (q, k, v)
    grid = (num_m, programs, 1) if dense else (programs, num_m, splits)
    fuse = splits > 1 and config.fused_combine
    counter = split_counters(q.device, programs * num_m) if fuse else dummy
    _fwd_kernel[grid](
        *src, o, lse if lse is not None else dummy, opart, lpart,
        mask.slopes if mask.slopes is not None else dummy,
        mask.doc_start if mask.doc_start is not None else dummy,
        mask.doc_end if mask.doc_end is not None else dummy, counter,
        *(st // sa for st in strides),
        hq, hkv, sq, skv, mask.window or 0, kv_per_split, scale * LOG2E,
        GROUP=group, CAUSAL=mask.causal, HAS_WINDOW=mask.window is not None,
        HAS_DOCS=mask.doc_start is not None, ALIBI=mask.slopes is not None,
        PACKED=packed, SPLIT=splits > 1, STORE_LSE=need_lse,
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, D=d, DV=dv,
        BLOCK_D=block_d, BLOCK_DV=block_dv, PREC=prec(q.dtype), USE_DESC=use_desc,
        DENSE=dense, SA=sa, V_T=v_t, FUSE=fuse,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )  # fmt: skip
    if splits > 1 and not fuse:
        _combine_kernel[(programs, rows_total)](
            opart, lpart, o, lse if lse is not None else dummy,
            o.stride(0), o.stride(1), o.stride(2),
            hq, hkv, sq, rows_total, splits,
            GROUP=group, PACKED=packed, STORE_LSE=need_lse,
            BLOCK_S=triton.next_power_of_2(splits), DV=dv, BLOCK_DV=block_dv,
            num_warps=4,
        )  # fmt: skip
    return o, lse


#: the compiled entry points, for tools that compile or profile them outside a launch
KERNELS = {"forward": _fwd_kernel, "combine": _combine_kernel}

__all__ = [
    "KERNELS",
    "MaskArgs",
    "attention_forward",
    "default_fwd_config",
    "dense_applies",
    "descriptors_apply",
    "mask_args",
    "spec_mask_args",
]
