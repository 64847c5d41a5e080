"""The backward: every mask, any head dim up to 256; deterministic by default.

``_bwd_delta_kernel`` computes ``delta = rowsum(O * dO)``; ``_bwd_dkdv_kernel`` runs a program
per key block and KV head, looping over the group's query heads (GQA accumulates in registers:
no atomics, the same result every run), a head's key blocks launched side by side
(``BwdConfig.keys_first``: grid ``(Skv / block_n1, B * Hkv)``, so the programs in flight
share that head's Q and dO in L2; ``keys_first=False``: grid ``(B * Hkv, Skv / block_n1)``,
one key block of every head); ``_bwd_dq_kernel`` a program per query block and head. P and dS
are recomputed from the forward's base-2 log-sum-exp. Both skip the mask on the blocks every
row sees whole (same interval mask model as the forward's general kernel).

``BwdConfig.atomic_dq`` (off by default; ``triton-flash-atomic-dq``): the dK/dV kernel also
computes ``dS K`` for its key block and adds it with float32 atomics into a zeroed float32 dQ
buffer (FlashAttention-2's scheme: 5 matmuls per pair of blocks instead of 7, but the order of
the additions, hence dQ's last bits, varies from run to run); one elementwise op scales and
casts it, and ``_bwd_dq_kernel`` does not run.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import _LOG2E, LOG2E, _load_rows, _row_bounds
from .configs import BwdConfig, choose_bwd_config, pow2
from .forward import MaskArgs, last_dim_contiguous, prec

MAX_GRID_Y = 65535  # CUDA's limit on a grid's second (and third) axis


# -- kernels --------------------------------------------------------------------------------
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
    dk, dv, k, v, Q_base, dO_base, dQ_base, LSE_row, Delta_row, DocStart, DocEnd,
    stride_qm, stride_dom, stride_dqm, offs_n, offs_d, offs_dv, slope, start, end,
    Sq, Skv, shift, window, qk_scale,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr,
    HAS_DOCS: tl.constexpr, ALIBI: tl.constexpr, BLOCK_M: tl.constexpr, D: tl.constexpr,
    DV: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, PREC: tl.constexpr,
    ATOMIC_DQ: tl.constexpr,
):  # fmt: skip
    """dK, dV of one key block from query blocks [start, end) of one head; with
    ``ATOMIC_DQ`` also each query block's share of dQ (unscaled), added atomically."""
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
        if ATOMIC_DQ:
            # this key block's part of dQ, one float32 [BLOCK_M, D] tile per (query block, key
            # block) pair: relaxed atomics (the sum is read only by a later kernel)
            dq = tl.dot(tl.trans(dsT.to(k.dtype)), k, input_precision=PREC)
            dq_ptrs = dQ_base + offs_m[:, None] * stride_dqm + offs_d[None, :]
            if MASKED or D != BLOCK_D:
                dq_ok = m_ok[:, None] & (offs_d[None, :] < D)
                tl.atomic_add(dq_ptrs, dq, mask=dq_ok, sem="relaxed")
            else:
                tl.atomic_add(dq_ptrs, dq, sem="relaxed")
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
    dQacc,
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
    stride_dqb,
    stride_dqh,
    stride_dqm,
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
    ATOMIC_DQ: tl.constexpr,
    KEYS_FIRST: tl.constexpr,
):
    if KEYS_FIRST:  # a head's key blocks launched side by side: its Q, dO (dQ) stay in L2
        pid_bh = tl.program_id(1)
        start_n = tl.program_id(0) * BLOCK_N
    else:
        pid_bh = tl.program_id(0)  # b * Hkv + kv head
        start_n = tl.program_id(1) * BLOCK_N
    b = pid_bh // Hkv
    hkv = pid_bh % Hkv
    b64 = b.to(tl.int64)
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
        dQ_base = dQacc + b64 * stride_dqb + h64 * stride_dqh
        row_base = (b64 * Hq + h64) * Sq
        if ALIBI:
            slope = tl.load(Slopes + head) * _LOG2E
        else:
            slope = 0.0
        dk, dv = _dkdv_rows(
            dk, dv, k, v, Q_base, dO_base, dQ_base, LSE + row_base, Delta + row_base, DocStart,
            DocEnd, stride_qm, stride_dom, stride_dqm, offs_n, offs_d, offs_dv, slope, m_lo,
            tl.minimum(f_lo, m_hi),
            Sq, Skv, shift, window, qk_scale,
            True, CAUSAL, HAS_WINDOW, HAS_DOCS, ALIBI, BLOCK_M, D, DV, BLOCK_D, BLOCK_DV, PREC,
            ATOMIC_DQ,
        )  # fmt: skip
        dk, dv = _dkdv_rows(
            dk, dv, k, v, Q_base, dO_base, dQ_base, LSE + row_base, Delta + row_base, DocStart,
            DocEnd, stride_qm, stride_dom, stride_dqm, offs_n, offs_d, offs_dv, slope, f_lo, f_hi,
            Sq, Skv, shift, window, qk_scale,
            False, CAUSAL, HAS_WINDOW, HAS_DOCS, ALIBI, BLOCK_M, D, DV, BLOCK_D, BLOCK_DV, PREC,
            ATOMIC_DQ,
        )  # fmt: skip
        dk, dv = _dkdv_rows(
            dk, dv, k, v, Q_base, dO_base, dQ_base, LSE + row_base, Delta + row_base, DocStart,
            DocEnd, stride_qm, stride_dom, stride_dqm, offs_n, offs_d, offs_dv, slope,
            tl.maximum(f_hi, m_lo), m_hi,
            Sq, Skv, shift, window, qk_scale,
            True, CAUSAL, HAS_WINDOW, HAS_DOCS, ALIBI, BLOCK_M, D, DV, BLOCK_D, BLOCK_DV, PREC,
            ATOMIC_DQ,
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


# -- host side ----------------------------------------------------------------------------------
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
    q, k, v, o, do = (last_dim_contiguous(t) for t in (q, k, v, o, do))
    b, hq, sq, d = q.shape
    hkv, skv, dv = k.shape[1], k.shape[2], v.shape[-1]
    group = hq // hkv
    if config is None:
        config = choose_bwd_config(d, dv, q.element_size())
    block_d, block_dv = pow2(d), pow2(dv)
    delta = torch.empty(b, hq, sq, device=q.device, dtype=torch.float32)
    _bwd_delta_kernel[(b * hq, triton.cdiv(sq, 128))](
        o, do, delta, o.stride(0), o.stride(1), o.stride(2),
        do.stride(0), do.stride(1), do.stride(2), hq, sq,
        BLOCK_M=128, DV=dv, BLOCK_DV=block_dv, num_warps=4,
    )  # fmt: skip
    dk = torch.empty_like(k)
    dvt = torch.empty_like(v)
    dummy = delta
    slopes = mask.slopes if mask.slopes is not None else dummy
    doc_start = mask.doc_start if mask.doc_start is not None else dummy
    doc_end = mask.doc_end if mask.doc_end is not None else dummy
    # atomic dQ: float32 sums of dS K, zeroed, scaled and cast once at the end
    dq_acc = None
    if config.atomic_dq:
        dq_acc = torch.zeros(q.shape, device=q.device, dtype=torch.float32)
    acc = dq_acc if dq_acc is not None else dummy
    acc_strides = dq_acc.stride()[:3] if dq_acc is not None else (0, 0, 0)
    common = dict(
        GROUP=group, CAUSAL=mask.causal, HAS_WINDOW=mask.window is not None,
        HAS_DOCS=mask.doc_start is not None, ALIBI=mask.slopes is not None,
        D=d, DV=dv, BLOCK_D=block_d, BLOCK_DV=block_dv, PREC=prec(q.dtype),
        num_warps=config.num_warps, num_stages=config.num_stages,
    )  # fmt: skip
    grid = (b * hkv, triton.cdiv(skv, config.block_n1))
    # a head's key blocks first puts B * Hkv on the grid's second axis, which CUDA caps at
    # 65535: beyond that, the other order (the same results, bitwise)
    keys_first = config.keys_first and b * hkv <= MAX_GRID_Y
    _bwd_dkdv_kernel[grid[::-1] if keys_first else grid](
        q, k, v, do, lse, delta, dk, dvt, acc, slopes, doc_start, doc_end,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        do.stride(0), do.stride(1), do.stride(2),
        dk.stride(0), dk.stride(1), dk.stride(2),
        dvt.stride(0), dvt.stride(1), dvt.stride(2),
        *acc_strides,
        hq, hkv, sq, skv, mask.window or 0, scale, scale * LOG2E,
        BLOCK_M=config.block_m1, BLOCK_N=config.block_n1, ATOMIC_DQ=dq_acc is not None,
        KEYS_FIRST=keys_first,
        **common,
    )  # fmt: skip
    dq = torch.empty_like(q)
    if dq_acc is not None:
        torch.mul(dq_acc, scale, out=dq)  # one pass: scale (as the dQ kernel does) and cast
        return dq, dk, dvt
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


#: the compiled entry points, for tools that compile or profile them outside a launch
KERNELS = {"delta": _bwd_delta_kernel, "dkdv": _bwd_dkdv_kernel, "dq": _bwd_dq_kernel}

__all__ = ["KERNELS", "attention_backward"]
