"""``torch.compile`` of ``eager`` and of ``sdpa``: the seeds' "Manual (compiled)" and
"SDPA (compiled)".

``bind`` (untimed) builds the workload's mask tensors once and returns
``torch.compile(fn, dynamic=False, fullgraph=True)`` of the attention call; the first call
compiles (Dynamo, AOTAutograd for ``train``, Inductor), and that time is the case's
``first_call_seconds``, never part of a timing. Inductor's on-disk caches (FX graph cache,
Triton/C++ kernel cache under ``TORCHINDUCTOR_CACHE_DIR``, by default a per-user directory in
the system temp dir) are left at PyTorch's defaults, so a process that compiles a shape another
process compiled before reads the kernels back: asv starts a process per benchmark parameter,
hence ``first_call_seconds`` measures a cold compile only the first time a shape is seen on a
machine, and a warm-cache compile afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..masks import MaskSpec
from ..workload import Workload
from .base import ALL_DTYPES, ALL_MASKS, NO_FP8_IN_TORCH, AttentionFn, Implementation
from .flex import allow_recompiles
from .math import bound_attention
from .registry import register


def compile_attention(fn: Callable[..., torch.Tensor]) -> AttentionFn:
    """``fn`` compiled for one static shape, in one graph."""
    allow_recompiles()
    return torch.compile(fn, dynamic=False, fullgraph=True)


def compiled_eager(
    spec: MaskSpec, hq: int, hkv: int, q_len: int, kv_len: int, scale: float, device
) -> AttentionFn:
    """eager's math for one shape and mask, compiled; mask tensors built now."""
    return compile_attention(bound_attention(spec, hq, q_len, kv_len, scale, device, torch.float32))


def compiled_sdpa(
    spec: MaskSpec, hq: int, hkv: int, q_len: int, kv_len: int, scale: float, device, dtype
) -> AttentionFn:
    """SDPA for one shape and mask, compiled; any mask tensor built now."""
    kwargs: dict = {}
    if spec.features:
        kwargs["attn_mask"] = spec.additive(hq, q_len, kv_len, device, dtype)
    elif spec.causal and q_len > 1:  # one query row against a cache sees every key
        if q_len == kv_len:
            kwargs["is_causal"] = True
        else:
            kwargs["attn_mask"] = spec.allowed(q_len, kv_len, device)
    gqa = hq != hkv

    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa, **kwargs)

    return compile_attention(attention)


class _Compiled(Implementation):
    family = "pytorch"
    mask_features = ALL_MASKS
    dtypes = {"cpu": ALL_DTYPES, "cuda": ALL_DTYPES}
    dtype_notes = {"fp8": NO_FP8_IN_TORCH}
    compiles = True  # first call compiles: tests keep its CPU coverage small
    forward_cache = 4  # a direct forward call compiles once per shape, not on every call

    def _make(self, spec, hq, hkv, q_len, kv_len, scale, device, dtype) -> AttentionFn:
        raise NotImplementedError

    def bind(self, workload: Workload, device: torch.device) -> AttentionFn:
        w = workload
        args = (w.q_heads, w.kv_heads, w.q_len, w.kv_len, w.scale, device, w.torch_dtype)
        return self._make(w.mask, *args)


@register
class EagerCompiled(_Compiled):
    name = "eager-compiled"
    nightly_only = True  # Inductor compiles for seconds a shape, tens of seconds on a fresh host
    rounds_scores = True  # eager's math: QKᵀ in the input dtype
    description = (
        "eager's QKᵀ -> softmax (float32) -> V under torch.compile (Inductor fuses masking "
        "and softmax); mask tensors built once per workload"
    )

    def _make(self, spec, hq, hkv, q_len, kv_len, scale, device, dtype) -> AttentionFn:
        return compiled_eager(spec, hq, hkv, q_len, kv_len, scale, device)


@register
class SdpaCompiled(_Compiled):
    name = "sdpa-compiled"
    nightly_only = True  # on a GPU, sdpa's own kernels after a compile of seconds a shape
    description = (
        "scaled_dot_product_attention under torch.compile, PyTorch choosing the kernel; masks "
        "beyond causal as an additive attn_mask built once per workload"
    )

    def _make(self, spec, hq, hkv, q_len, kv_len, scale, device, dtype) -> AttentionFn:
        return compiled_sdpa(spec, hq, hkv, q_len, kv_len, scale, device, dtype)
