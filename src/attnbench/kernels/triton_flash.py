"""Flash attention in Triton: forward and backward, causal or full, GQA/MQA, q_len != kv_len.

Layout is attnbench's canonical one: ``q (B, Hq, Sq, D)``, ``k (B, Hkv, Skv, D)``,
``v (B, Hkv, Skv, Dv)`` -> ``o (B, Hq, Sq, Dv)``; causal aligned bottom-right (query row ``i``
sees keys ``j <= i + Skv - Sq``). Query head ``h`` reads KV head ``h // (Hq // Hkv)`` by index:
K and V are never repeated. Any strides work as long as the last dimension is contiguous.

Forward (FlashAttention-2): one program per ``block_m`` query rows of one head, walking K/V in
``block_n`` tiles with an online softmax in base 2 (the scale is pre-multiplied by log2(e)).
Under a causal mask the tiles left of the diagonal run without any masking; only the tiles the
diagonal crosses (and a ragged last tile) are masked. Programs run the longest query blocks
first. It keeps the log-sum-exp per row (float32, base 2 internally; :func:`attention_with_lse`
returns it in natural log) for the backward.

Backward: ``delta = rowsum(dO * O)``; one kernel per KV block accumulates dK and dV over all
query blocks of all query heads of its group (GQA without atomics); one kernel per query block
accumulates dQ over the KV blocks. Scores and probabilities are recomputed from the LSE.

Kernels are compiled by Triton on CUDA; with ``TRITON_INTERPRET=1`` set before this module is
imported they run on CPU tensors under Triton's interpreter (slow; for tests).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .configs import BwdConfig, FwdConfig, bwd_config, fwd_config

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
#: whether this module's kernels were built for the interpreter (decided at import by Triton)
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


# -- forward ------------------------------------------------------------------------------
@triton.jit
def _fwd_tiles(
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
    MASKED: tl.constexpr,
    CAUSAL: tl.constexpr,
    BLOCK_N: tl.constexpr,
    USE_DESC: tl.constexpr,
):
    """Online softmax over the key tiles [start, stop); MASKED tiles check bounds/diagonal.
    USE_DESC: ``k_ptrs``/``v_ptrs`` are tensor descriptors (TMA) over (rows, dim), the head's
    keys starting at row ``kv_row0``; rows past ``seq_kv`` are masked out of the scores."""
    for start_n in range(start, stop, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        if USE_DESC:
            k = k_ptrs.load([kv_row0 + start_n, 0])
        elif MASKED:
            k = tl.load(k_ptrs + start_n * stride_kn, mask=cols[:, None] < seq_kv, other=0.0)
        else:
            k = tl.load(k_ptrs + start_n * stride_kn)
        qk = tl.dot(q, tl.trans(k))
        if MASKED:
            keep = cols[None, :] < seq_kv
            if CAUSAL:
                keep = keep & (cols[None, :] <= offs_m[:, None] + diag)
            qk = tl.where(keep, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = tl.exp2(qk * qk_scale - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        if USE_DESC:
            v = v_ptrs.load([kv_row0 + start_n, 0])
        elif MASKED:
            v = tl.load(v_ptrs + start_n * stride_vn, mask=cols[:, None] < seq_kv, other=0.0)
        else:
            v = tl.load(v_ptrs + start_n * stride_vn)
        acc = tl.dot(p.to(v.dtype), v, acc)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _fwd_kernel(
    Q,
    K,
    V,
    Out,
    LSE,
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
    q_heads,
    group,
    seq_q,
    seq_kv,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    V_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
    USE_DESC: tl.constexpr,
):
    pid_m = tl.program_id(0)
    if CAUSAL:  # the longest blocks (bottom rows) first: better load balance at the end
        pid_m = tl.num_programs(0) - 1 - pid_m
    pid_bh = tl.program_id(1)
    b = (pid_bh // q_heads).to(tl.int64)
    h = pid_bh % q_heads
    hk = (h // group).to(tl.int64)
    h = h.to(tl.int64)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_dv = tl.arange(0, V_DIM)
    if USE_DESC:  # Q, K, V are descriptors over contiguous (B * heads * seq, dim) views
        q = Q.load([pid_bh * seq_q + pid_m * BLOCK_M, 0])  # rows past seq_q: never stored
        k_src = K
        v_src = V
        kv_row0 = ((b * (q_heads // group) + hk) * seq_kv).to(tl.int32)
    else:
        q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :]
        q = tl.load(q_ptrs, mask=offs_m[:, None] < seq_q, other=0.0)
        k_src = K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :]
        v_src = V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vn + offs_dv[None, :]
        kv_row0 = 0

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
    acc, l_i, m_i = _fwd_tiles(
        acc, l_i, m_i, q, k_src, v_src, stride_kn, stride_vn, 0, full_stop,
        offs_m, offs_n, seq_kv, diag, qk_scale, kv_row0, False, CAUSAL, BLOCK_N, USE_DESC,
    )  # fmt: skip
    acc, l_i, m_i = _fwd_tiles(
        acc, l_i, m_i, q, k_src, v_src, stride_kn, stride_vn, full_stop, stop,
        offs_m, offs_n, seq_kv, diag, qk_scale, kv_row0, True, CAUSAL, BLOCK_N, USE_DESC,
    )  # fmt: skip

    acc = acc / l_i[:, None]
    rows_ok = offs_m < seq_q
    tl.store(LSE + pid_bh.to(tl.int64) * seq_q + offs_m, m_i + tl.log2(l_i), mask=rows_ok)
    o_ptrs = Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_dv[None, :]
    tl.store(o_ptrs, acc.to(Out.dtype.element_ty), mask=rows_ok[:, None])


# -- backward -----------------------------------------------------------------------------
@triton.jit
def _bwd_delta_kernel(
    Out,
    DO,
    DELTA,
    stride_ob,
    stride_oh,
    stride_om,
    stride_dob,
    stride_doh,
    stride_dom,
    q_heads,
    seq_q,
    V_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """delta = rowsum(dO * O), float32, one row per query."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // q_heads).to(tl.int64)
    h = (pid_bh % q_heads).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_dv = tl.arange(0, V_DIM)
    rows_ok = offs_m < seq_q
    o = tl.load(
        Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_dv[None, :],
        mask=rows_ok[:, None],
        other=0.0,
    )
    do = tl.load(
        DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dom + offs_dv[None, :],
        mask=rows_ok[:, None],
        other=0.0,
    )
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + pid_bh.to(tl.int64) * seq_q + offs_m, delta, mask=rows_ok)


@triton.jit
def _bwd_kv_tiles(
    dk,
    dv,
    k,
    v,
    q_ptrs,
    do_ptrs,
    lse_ptr,
    delta_ptr,
    stride_qm,
    stride_dom,
    start,
    stop,
    offs_n,
    seq_q,
    diag,
    qk_scale,
    MASKED: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """dK, dV of one key block over the query tiles [start, stop) of one query head."""
    offs_m0 = tl.arange(0, BLOCK_M)
    for start_m in range(start, stop, BLOCK_M):
        start_m = tl.multiple_of(start_m, BLOCK_M)
        offs_m = start_m + offs_m0
        rows_ok = offs_m < seq_q
        q = tl.load(q_ptrs + start_m * stride_qm, mask=rows_ok[:, None], other=0.0)
        do = tl.load(do_ptrs + start_m * stride_dom, mask=rows_ok[:, None], other=0.0)
        # rows past the end get lse = +inf: their probabilities are exactly 0
        lse = tl.load(lse_ptr + offs_m, mask=rows_ok, other=float("inf"))
        delta = tl.load(delta_ptr + offs_m, mask=rows_ok, other=0.0)
        p_t = tl.exp2(tl.dot(k, tl.trans(q)) * qk_scale - lse[None, :])  # (BLOCK_N, BLOCK_M)
        if MASKED:
            p_t = tl.where(offs_n[:, None] <= offs_m[None, :] + diag, p_t, 0.0)
        dv = tl.dot(p_t.to(do.dtype), do, dv)
        dp_t = tl.dot(v, tl.trans(do))
        ds_t = p_t * (dp_t - delta[None, :])
        dk = tl.dot(ds_t.to(q.dtype), q, dk)
    return dk, dv


@triton.jit
def _bwd_dkdv_kernel(
    Q,
    K,
    V,
    DO,
    LSE,
    DELTA,
    DK,
    DV,
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
    q_heads,
    kv_heads,
    group,
    seq_q,
    seq_kv,
    qk_scale,
    sm_scale,
    HEAD_DIM: tl.constexpr,
    V_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // kv_heads).to(tl.int64)
    hk = (pid_bh % kv_heads).to(tl.int64)
    start_n = pid_n * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_dv = tl.arange(0, V_DIM)
    keys_ok = offs_n < seq_kv
    k = tl.load(
        K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :],
        mask=keys_ok[:, None],
        other=0.0,
    )
    v = tl.load(
        V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vn + offs_dv[None, :],
        mask=keys_ok[:, None],
        other=0.0,
    )
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, V_DIM], dtype=tl.float32)
    diag = seq_kv - seq_q
    rows_end = tl.cdiv(seq_q, BLOCK_M) * BLOCK_M
    if CAUSAL:
        # query rows i >= start_n - diag see some key of the block; i >= last key - diag all
        first = (tl.maximum(start_n - diag, 0) // BLOCK_M) * BLOCK_M
        mid = tl.cdiv(tl.maximum(start_n + BLOCK_N - 1 - diag, 0), BLOCK_M) * BLOCK_M
        mid = tl.maximum(tl.minimum(mid, rows_end), first)
    else:
        first = 0
        mid = 0
    for g in range(0, group):
        h = hk * group + g
        q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :]
        do_ptrs = (
            DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dom + offs_dv[None, :]
        )
        row0 = (b * q_heads + h) * seq_q
        dk, dv = _bwd_kv_tiles(
            dk, dv, k, v, q_ptrs, do_ptrs, LSE + row0, DELTA + row0, stride_qm, stride_dom,
            first, mid, offs_n, seq_q, diag, qk_scale, True, BLOCK_M,
        )  # fmt: skip
        dk, dv = _bwd_kv_tiles(
            dk, dv, k, v, q_ptrs, do_ptrs, LSE + row0, DELTA + row0, stride_qm, stride_dom,
            mid, rows_end, offs_n, seq_q, diag, qk_scale, False, BLOCK_M,
        )  # fmt: skip
    dk = dk * sm_scale
    tl.store(
        DK + b * stride_dkb + hk * stride_dkh + offs_n[:, None] * stride_dkn + offs_d[None, :],
        dk.to(DK.dtype.element_ty),
        mask=keys_ok[:, None],
    )
    tl.store(
        DV + b * stride_dvb + hk * stride_dvh + offs_n[:, None] * stride_dvn + offs_dv[None, :],
        dv.to(DV.dtype.element_ty),
        mask=keys_ok[:, None],
    )


@triton.jit
def _bwd_q_tiles(
    dq,
    q,
    do,
    lse,
    delta,
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
    MASKED: tl.constexpr,
    CAUSAL: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """dQ of one query block over the key tiles [start, stop)."""
    for start_n in range(start, stop, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        if MASKED:
            k = tl.load(k_ptrs + start_n * stride_kn, mask=cols[:, None] < seq_kv, other=0.0)
            v = tl.load(v_ptrs + start_n * stride_vn, mask=cols[:, None] < seq_kv, other=0.0)
        else:
            k = tl.load(k_ptrs + start_n * stride_kn)
            v = tl.load(v_ptrs + start_n * stride_vn)
        p = tl.exp2(tl.dot(q, tl.trans(k)) * qk_scale - lse[:, None])
        if MASKED:
            keep = cols[None, :] < seq_kv
            if CAUSAL:
                keep = keep & (cols[None, :] <= offs_m[:, None] + diag)
            p = tl.where(keep, p, 0.0)
        dp = tl.dot(do, tl.trans(v))
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq)
    return dq


@triton.jit
def _bwd_dq_kernel(
    Q,
    K,
    V,
    DO,
    LSE,
    DELTA,
    DQ,
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
    q_heads,
    group,
    seq_q,
    seq_kv,
    qk_scale,
    sm_scale,
    HEAD_DIM: tl.constexpr,
    V_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
):
    pid_m = tl.program_id(0)
    if CAUSAL:
        pid_m = tl.num_programs(0) - 1 - pid_m
    pid_bh = tl.program_id(1)
    b = (pid_bh // q_heads).to(tl.int64)
    h = pid_bh % q_heads
    hk = (h // group).to(tl.int64)
    h = h.to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_dv = tl.arange(0, V_DIM)
    rows_ok = offs_m < seq_q
    q = tl.load(
        Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :],
        mask=rows_ok[:, None],
        other=0.0,
    )
    do = tl.load(
        DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dom + offs_dv[None, :],
        mask=rows_ok[:, None],
        other=0.0,
    )
    row0 = pid_bh.to(tl.int64) * seq_q
    lse = tl.load(LSE + row0 + offs_m, mask=rows_ok, other=float("inf"))
    delta = tl.load(DELTA + row0 + offs_m, mask=rows_ok, other=0.0)
    k_ptrs = K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :]
    v_ptrs = V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vn + offs_dv[None, :]
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    diag = seq_kv - seq_q
    if CAUSAL:
        full_stop = tl.minimum(pid_m * BLOCK_M + diag + 1, seq_kv)
        stop = tl.minimum(pid_m * BLOCK_M + BLOCK_M + diag, seq_kv)
    else:
        full_stop = seq_kv
        stop = seq_kv
    full_stop = (full_stop // BLOCK_N) * BLOCK_N
    dq = _bwd_q_tiles(
        dq, q, do, lse, delta, k_ptrs, v_ptrs, stride_kn, stride_vn, 0, full_stop,
        offs_m, offs_n, seq_kv, diag, qk_scale, False, CAUSAL, BLOCK_N,
    )  # fmt: skip
    dq = _bwd_q_tiles(
        dq, q, do, lse, delta, k_ptrs, v_ptrs, stride_kn, stride_vn, full_stop, stop,
        offs_m, offs_n, seq_kv, diag, qk_scale, True, CAUSAL, BLOCK_N,
    )  # fmt: skip
    dq = dq * sm_scale
    tl.store(
        DQ + b * stride_dqb + h * stride_dqh + offs_m[:, None] * stride_dqm + offs_d[None, :],
        dq.to(DQ.dtype.element_ty),
        mask=rows_ok[:, None],
    )


# -- host side ----------------------------------------------------------------------------
def _last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> None:
    """One clear message for inputs the kernels cannot take."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D (batch, heads, seq, head_dim)")
    b, hq, sq, d = q.shape
    if k.shape[0] != b or v.shape[:3] != k.shape[:3] or k.shape[-1] != d:
        raise ValueError(
            f"shapes do not match: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if hq % k.shape[1]:
        raise ValueError(f"kv heads ({k.shape[1]}) must divide q heads ({hq})")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if causal and sq > k.shape[2]:
        raise ValueError(f"causal attention needs q_len ({sq}) <= kv_len ({k.shape[2]})")


def _forward(q, k, v, causal: bool, scale: float, cfg: FwdConfig):
    b, hq, sq, d = q.shape
    hkv, skv, dv = k.shape[1], k.shape[2], v.shape[-1]
    o = torch.empty((b, hq, sq, dv), device=q.device, dtype=q.dtype)
    lse = torch.empty((b, hq, sq), device=q.device, dtype=torch.float32)
    grid = (triton.cdiv(sq, cfg.block_m), b * hq)
    use_desc = _descriptors_apply(cfg, q, k, v)
    src = _descriptors(q, k, v, cfg) if use_desc else (q, k, v)
    _fwd_kernel[grid](
        *src, o, lse,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        o.stride(0), o.stride(1), o.stride(2),
        hq, hq // hkv, sq, skv, scale * LOG2E,
        HEAD_DIM=d, V_DIM=dv, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, CAUSAL=causal,
        USE_DESC=use_desc, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    return o, lse


def _descriptors_apply(cfg: FwdConfig, q, k, v) -> bool:
    """TMA descriptors when the config asks and the inputs allow: contiguous, 16-byte rows,
    row indices within int32."""
    if not cfg.tma or not all(t.is_contiguous() for t in (q, k, v)):
        return False
    if q.device.type == "cuda" and torch.cuda.get_device_capability(q.device)[0] < 9:
        return False  # TMA needs Hopper or newer
    rows = max(q.numel() // q.shape[-1], k.numel() // k.shape[-1])
    return rows + cfg.block_m < 2**31 and all(
        t.shape[-1] * t.element_size() % 16 == 0 for t in (q, v)
    )


def _descriptors(q, k, v, cfg: FwdConfig):
    """Host-side tensor descriptors over the (B * heads * seq, dim) views of Q, K, V."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    def desc(t: torch.Tensor, rows: int):
        flat = t.view(-1, t.shape[-1])
        return TensorDescriptor(flat, list(flat.shape), [t.shape[-1], 1], [rows, t.shape[-1]])

    return desc(q, cfg.block_m), desc(k, cfg.block_n), desc(v, cfg.block_n)


def _backward(q, k, v, o, lse, do, causal: bool, scale: float, cfg: BwdConfig):
    b, hq, sq, d = q.shape
    hkv, skv, dv = k.shape[1], k.shape[2], v.shape[-1]
    do = _last_dim_contiguous(do)
    delta = torch.empty_like(lse)
    _bwd_delta_kernel[(triton.cdiv(sq, cfg.block_m2), b * hq)](
        o, do, delta,
        o.stride(0), o.stride(1), o.stride(2),
        do.stride(0), do.stride(1), do.stride(2),
        hq, sq, V_DIM=dv, BLOCK_M=cfg.block_m2,
    )  # fmt: skip
    dq = torch.empty_like(q, memory_format=torch.contiguous_format)
    dk = torch.empty_like(k, memory_format=torch.contiguous_format)
    dvv = torch.empty_like(v, memory_format=torch.contiguous_format)
    qk_scale = scale * LOG2E
    _bwd_dkdv_kernel[(triton.cdiv(skv, cfg.block_n1), b * hkv)](
        q, k, v, do, lse, delta, dk, dvv,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        do.stride(0), do.stride(1), do.stride(2),
        dk.stride(0), dk.stride(1), dk.stride(2),
        dvv.stride(0), dvv.stride(1), dvv.stride(2),
        hq, hkv, hq // hkv, sq, skv, qk_scale, scale,
        HEAD_DIM=d, V_DIM=dv, BLOCK_M=cfg.block_m1, BLOCK_N=cfg.block_n1, CAUSAL=causal,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    _bwd_dq_kernel[(triton.cdiv(sq, cfg.block_m2), b * hq)](
        q, k, v, do, lse, delta, dq,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        do.stride(0), do.stride(1), do.stride(2),
        dq.stride(0), dq.stride(1), dq.stride(2),
        hq, hq // hkv, sq, skv, qk_scale, scale,
        HEAD_DIM=d, V_DIM=dv, BLOCK_M=cfg.block_m2, BLOCK_N=cfg.block_n2, CAUSAL=causal,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    return dq, dk, dvv


class _FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, scale, fwd_cfg, bwd_cfg):
        o, lse = _forward(q, k, v, causal, scale, fwd_cfg)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.scale, ctx.bwd_cfg = causal, scale, bwd_cfg
        ctx.mark_non_differentiable(lse)
        return o, lse

    @staticmethod
    def backward(ctx, do, _dlse):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, o, lse, do, ctx.causal, ctx.scale, ctx.bwd_cfg)
        return dq, dk, dv, None, None, None, None


def attention_with_lse(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool,
    scale: float | None = None,
    fwd_cfg: FwdConfig | None = None,
    bwd_cfg: BwdConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(o, lse)``: the attention output (differentiable) and the natural-log log-sum-exp of
    each query row's scaled scores, float32 ``(B, Hq, Sq)``. Configurations default to the
    table in :mod:`attnbench.kernels.configs`."""
    check_inputs(q, k, v, causal)
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    d = max(q.shape[-1], v.shape[-1])
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    fwd_cfg = fwd_cfg or fwd_config(d, q.device.type, causal=causal)
    bwd_cfg = bwd_cfg or bwd_config(d, q.device.type, causal=causal)
    o, lse2 = _FlashAttention.apply(q, k, v, causal, scale, fwd_cfg, bwd_cfg)
    return o, lse2 * LN2


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool,
    scale: float | None = None,
    fwd_cfg: FwdConfig | None = None,
    bwd_cfg: BwdConfig | None = None,
) -> torch.Tensor:
    """The attention output only (the LSE kept for the backward is not converted)."""
    check_inputs(q, k, v, causal)
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    d = max(q.shape[-1], v.shape[-1])
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    fwd_cfg = fwd_cfg or fwd_config(d, q.device.type, causal=causal)
    bwd_cfg = bwd_cfg or bwd_config(d, q.device.type, causal=causal)
    return _FlashAttention.apply(q, k, v, causal, scale, fwd_cfg, bwd_cfg)[0]


__all__ = ["INTERPRETED", "attention", "attention_with_lse", "check_inputs"]
