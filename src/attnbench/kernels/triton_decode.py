"""Split-KV decode (flash-decoding) in Triton: one query row per head against a long KV cache.

``q (B, Hq, 1, D)``, ``k (B, Hkv, Skv, D)``, ``v (B, Hkv, Skv, Dv)`` -> ``o (B, Hq, 1, Dv)``.
One query row sees every key, so causal and full are the same here.

A decode step reads K and V once and does little arithmetic on them: it is bound by memory
bandwidth, and the work must be spread over enough programs to keep every SM loading. The
cache is cut into ``splits`` shares along the keys; one program per (batch, KV head, share)
computes a partial softmax for **all query heads of the KV head's group at once** (the group's
rows form the M side of one ``tl.dot``, so K and V are read once per group, never repeated),
writing a float32 partial output and its log-sum-exp. A second kernel combines the shares,
weighting each by ``exp(lse_share - lse_total)``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .configs import DecodeConfig, decode_config, keys_per_split
from .triton_flash import INTERPRETED, LOG2E


@triton.jit
def _decode_tiles(
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
    end,
    offs_n,
    qk_scale,
    MASKED: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    for start_n in range(start, stop, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        if MASKED:
            k = tl.load(k_ptrs + start_n * stride_kn, mask=cols[:, None] < end, other=0.0)
            v = tl.load(v_ptrs + start_n * stride_vn, mask=cols[:, None] < end, other=0.0)
        else:
            k = tl.load(k_ptrs + start_n * stride_kn)
            v = tl.load(v_ptrs + start_n * stride_vn)
        qk = tl.dot(q, tl.trans(k))
        if MASKED:
            qk = tl.where(cols[None, :] < end, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = tl.exp2(qk * qk_scale - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _decode_split_kernel(
    Q,
    K,
    V,
    PART_O,
    PART_LSE,
    stride_qb,
    stride_qh,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    kv_heads,
    group,
    seq_kv,
    keys_per_split,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    V_DIM: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    split = tl.program_id(0)
    n_splits = tl.num_programs(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // kv_heads).to(tl.int64)
    hk = (pid_bh % kv_heads).to(tl.int64)
    offs_g = tl.arange(0, BLOCK_G)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_dv = tl.arange(0, V_DIM)
    heads = hk * group + offs_g  # the group's query heads, padded to BLOCK_G rows
    g_ok = offs_g < group
    q = tl.load(
        Q + b * stride_qb + heads[:, None] * stride_qh + offs_d[None, :],
        mask=g_ok[:, None],
        other=0.0,
    )
    k_ptrs = K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :]
    v_ptrs = V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vn + offs_dv[None, :]

    start = split * keys_per_split
    end = tl.minimum(start + keys_per_split, seq_kv)
    full_stop = start + ((end - start) // BLOCK_N) * BLOCK_N
    m_i = tl.full([BLOCK_G], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_G], dtype=tl.float32)
    acc = tl.zeros([BLOCK_G, V_DIM], dtype=tl.float32)
    acc, l_i, m_i = _decode_tiles(
        acc, l_i, m_i, q, k_ptrs, v_ptrs, stride_kn, stride_vn, start, full_stop, end,
        offs_n, qk_scale, False, BLOCK_N,
    )  # fmt: skip
    acc, l_i, m_i = _decode_tiles(
        acc, l_i, m_i, q, k_ptrs, v_ptrs, stride_kn, stride_vn, full_stop, end, end,
        offs_n, qk_scale, True, BLOCK_N,
    )  # fmt: skip

    # partials: (B, Hq, splits, Dv) and (B, Hq, splits), contiguous
    rows = (b * kv_heads * group + heads) * n_splits + split
    tl.store(PART_LSE + rows, m_i + tl.log2(l_i), mask=g_ok)
    tl.store(
        PART_O + rows[:, None] * V_DIM + offs_dv[None, :], acc / l_i[:, None], mask=g_ok[:, None]
    )


@triton.jit
def _decode_combine_kernel(
    PART_O,
    PART_LSE,
    Out,
    stride_ob,
    stride_oh,
    q_heads,
    n_splits,
    V_DIM: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    pid_bh = tl.program_id(0)
    b = (pid_bh // q_heads).to(tl.int64)
    h = (pid_bh % q_heads).to(tl.int64)
    offs_s = tl.arange(0, BLOCK_S)
    offs_dv = tl.arange(0, V_DIM)
    s_ok = offs_s < n_splits
    rows = pid_bh.to(tl.int64) * n_splits + offs_s
    lse = tl.load(PART_LSE + rows, mask=s_ok, other=float("-inf"))
    m = tl.max(lse, 0)
    w = tl.where(s_ok, tl.exp2(lse - m), 0.0)
    part = tl.load(PART_O + rows[:, None] * V_DIM + offs_dv[None, :], mask=s_ok[:, None], other=0.0)
    o = tl.sum(part * w[:, None], 0) / tl.sum(w, 0)
    tl.store(Out + b * stride_ob + h * stride_oh + offs_dv, o.to(Out.dtype.element_ty))


def decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float | None = None,
    cfg: DecodeConfig | None = None,
) -> torch.Tensor:
    """Attention of one query row per head against the whole cache (forward only)."""
    if q.dim() != 4 or q.shape[2] != 1:
        raise ValueError(f"decode takes one query row: q must be (B, Hq, 1, D), got {q.shape}")
    b, hq, _, d = q.shape
    hkv, skv, dv = k.shape[1], k.shape[2], v.shape[-1]
    if k.shape[0] != b or v.shape[:3] != k.shape[:3] or k.shape[-1] != d or hq % hkv:
        raise ValueError(
            f"shapes do not match: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    scale = d**-0.5 if scale is None else scale
    if cfg is None:
        sms = (
            torch.cuda.get_device_properties(q.device).multi_processor_count
            if q.device.type == "cuda"
            else 132
        )
        cfg = decode_config(b, hkv, skv, max(d, dv), q.device.type, num_sms=sms)
    group = hq // hkv
    share = keys_per_split(skv, cfg.block_n, cfg.splits)
    splits = triton.cdiv(skv, share)
    part_o = torch.empty((b, hq, splits, dv), device=q.device, dtype=torch.float32)
    part_lse = torch.empty((b, hq, splits), device=q.device, dtype=torch.float32)
    _decode_split_kernel[(splits, b * hkv)](
        q, k, v, part_o, part_lse,
        q.stride(0), q.stride(1),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        hkv, group, skv, share, scale * LOG2E,
        HEAD_DIM=d, V_DIM=dv, BLOCK_G=max(16, triton.next_power_of_2(group)),
        BLOCK_N=cfg.block_n, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    o = torch.empty((b, hq, 1, dv), device=q.device, dtype=q.dtype)
    _decode_combine_kernel[(b * hq,)](
        part_o, part_lse, o, o.stride(0), o.stride(1), hq, splits,
        V_DIM=dv, BLOCK_S=max(2, triton.next_power_of_2(splits)),
    )  # fmt: skip
    return o


__all__ = ["INTERPRETED", "decode"]
