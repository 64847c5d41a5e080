"""The kernels as one differentiable function: input checks, autograd, ``attention`` and
``attention_with_lse``. Kernels are compiled by Triton on CUDA; with ``TRITON_INTERPRET=1``
set before Triton is imported they run on CPU tensors under its interpreter (slow; tests)."""

from __future__ import annotations

import torch

from .backward import attention_backward
from .common import INTERPRETED, LN2
from .configs import MAX_HEAD_DIM, BwdConfig, FwdConfig
from .forward import MaskArgs, attention_forward, last_dim_contiguous


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
    if max(d, v.shape[-1]) > MAX_HEAD_DIM:
        raise ValueError(f"head_dim {max(d, v.shape[-1])} > {MAX_HEAD_DIM}")
    if causal and sq > k.shape[2]:
        raise ValueError(f"causal attention needs q_len ({sq}) <= kv_len ({k.shape[2]})")


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, scale, mask, fwd_config, bwd_config):
        o, lse = attention_forward(q, k, v, scale, mask, fwd_config, need_lse=True)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.scale, ctx.mask, ctx.bwd_config = scale, mask, bwd_config
        ctx.mark_non_differentiable(lse)
        return o, lse

    @staticmethod
    def backward(ctx, do, _dlse):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(do, q, k, v, o, lse, ctx.scale, ctx.mask, ctx.bwd_config)
        return dq, dk, dv, None, None, None, None


def _prepare(q, k, v, scale, mask, causal):
    mask = MaskArgs(causal) if mask is None else mask
    check_inputs(q, k, v, mask.causal)
    q, k, v = (last_dim_contiguous(t) for t in (q, k, v))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return q, k, v, scale, mask


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
    autograd records and an input needs a gradient. ``mask`` (:func:`.forward.mask_args`)
    replaces ``causal``; configurations default to :mod:`.configs`' chooser."""
    q, k, v, scale, mask = _prepare(q, k, v, scale, mask, causal)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return _Attention.apply(q, k, v, scale, mask, fwd_config, bwd_config)[0]
    return attention_forward(q, k, v, scale, mask, fwd_config)[0]


def attention_with_lse(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float | None = None,
    mask: MaskArgs | None = None,
    causal: bool = False,
    fwd_config: FwdConfig | None = None,
    bwd_config: BwdConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(o, lse)``: the output (differentiable) and the natural-log log-sum-exp of each query
    row's scaled scores, float32 ``(B, Hq, Sq)`` (``-inf`` for a row that sees no key)."""
    q, k, v, scale, mask = _prepare(q, k, v, scale, mask, causal)
    o, lse2 = _Attention.apply(q, k, v, scale, mask, fwd_config, bwd_config)
    return o, lse2 * LN2


__all__ = ["INTERPRETED", "attention", "attention_with_lse", "check_inputs"]
