"""The kernels as one differentiable function: input checks, autograd, ``attention`` and
``attention_with_lse``. Kernels are compiled by Triton on CUDA; with ``TRITON_INTERPRET=1``
set before Triton is imported they run on CPU tensors under its interpreter (slow; tests)."""

from __future__ import annotations

import torch

from ...workload import check_tensors
from .backward import attention_backward
from .common import INTERPRETED, LN2
from .configs import MAX_HEAD_DIM, BwdConfig, FwdConfig
from .forward import MaskArgs, attention_forward, last_dim_contiguous

#: what the kernels compute in: fp8 is float8 e4m3 (forward only, bf16 output)
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float8_e4m3fn)


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> None:
    """One clear message (a ``ValueError``) for inputs the kernels cannot take: the canonical
    layout's contract (:func:`~attnbench.workload.check_tensors`), then the kernels' limits."""
    check_tensors(q, k, v, causal=causal)
    if q.dtype not in KERNEL_DTYPES:
        names = ", ".join(str(t).removeprefix("torch.") for t in KERNEL_DTYPES)
        raise ValueError(f"the kernels take no {q.dtype} inputs (they take {names})")
    if max(q.shape[-1], v.shape[-1]) > MAX_HEAD_DIM:
        raise ValueError(f"head_dim {max(q.shape[-1], v.shape[-1])} > {MAX_HEAD_DIM}")


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
