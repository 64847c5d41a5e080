"""FlashAttention 2, 3 and 4 from their own packages (optional; absent or broken: a reason).

Layout at the edges: these take ``(B, S, H, D)`` (a transposed view of attnbench's canonical
``(B, H, S, D)``, no copy) and GQA natively (``Hq`` a multiple of ``Hkv``, K/V never repeated).
Packed documents go through the varlen entry points: ``(B*S, H, D)`` with int32 ``cu_seqlens``
over batch x documents (that packing is a copy, and is timed). Causal is bottom-right aligned
(flash-attn >= 2.1, as attnbench); a window is ``window_size=(window - 1, 0)``; ALiBi (FA2
only) adds ``-slope * |i + Skv - Sq - j|``, as :meth:`attnbench.masks.MaskSpec.bias` does.

fp8 (float8 e4m3 Q, K, V; bf16 output; forward only): FA3 on Hopper and flash-attn-4 on
Blackwell take it through the same entry points, the per-head descale factors left at their
default (1: attnbench's fp8 inputs are unscaled values); FA2 has no fp8 kernels.

Return conventions differ: FA2 returns ``out`` (a tuple with ``return_attn_probs``), FA3's
``flash_attn_func`` ``out`` or ``(out, lse)`` by version, FA4 (``flash_attn.cute``)
``(out, lse)``: :func:`first` takes the output in every case.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import ClassVar

import torch

from .. import settings
from ..errors import UnsupportedError
from ..masks import MaskSpec, alibi_slopes
from ..workload import Workload
from ._external import bshd, capability_problem, cu_seqlens, first, load, packed, unpacked
from ._external import version as dist_version
from .base import HALF, AttentionFn, Implementation
from .registry import register

#: ``ATTNBENCH_FA4_DISK_CACHE=1``: flash-attn-4 keeps its compiled kernels in attnbench's cache
#: folder, so that asv's process per figure loads them instead of compiling again (as Inductor's
#: and Triton's caches do by default). Off unless asked; the GPU workflows ask.
FA4_DISK_CACHE_ENV = settings.FA4_DISK_CACHE
FP8_NOTE = "FlashAttention-2 has no fp8 kernels (FlashAttention-3 on Hopper has: fa3)"


class _FlashAttn(Implementation):
    family = "flash-attn"
    module: ClassVar[str]  # the Python module holding the entry points
    distribution: ClassVar[str]  # the pip package that provides it
    dtypes = {"cuda": HALF}
    head_dim_multiple = 8
    max_head_dim = 256
    #: compute capability majors the kernels are built for, and how to say so
    capability: ClassVar[tuple[tuple[int, ...], str]] = ((8, 9, 10, 11, 12), "sm_80 or newer")
    no_window_value: ClassVar[object] = (-1, -1)

    #: the entry point that must exist (flash-attn-4 alone makes ``flash_attn`` a bare package)
    entry: ClassVar[str] = "flash_attn_func"

    def availability(self) -> str | None:
        mod, reason = load(self.module, self.distribution)
        if mod is not None and not hasattr(mod, self.entry):
            return (
                f"module {self.module} imports but has no {self.entry}: {self.distribution} "
                "is not installed (another package provides the module)"
            )
        return reason

    def _mod(self) -> ModuleType:
        mod, reason = load(self.module, self.distribution)
        if mod is None:
            raise UnsupportedError(reason)
        return mod

    def device_problem(self, device: torch.device) -> str | None:
        majors, need = self.capability
        return super().device_problem(device) or capability_problem(device, majors, self.name, need)

    def config(self, workload: Workload, device: torch.device) -> dict | None:
        return {"package": self.distribution, "version": dist_version(self.distribution)}

    def _kwargs(self, causal: bool, scale: float, mask: MaskSpec | None, heads: int, device):
        """Keyword arguments shared by the entry points: scale, causal, window, ALiBi."""
        kwargs: dict = {"softmax_scale": scale, "causal": causal}
        if mask is not None and mask.window is not None:
            kwargs["window_size"] = (mask.window - 1, 0)
        if mask is not None and mask.alibi:
            kwargs["alibi_slopes"] = alibi_slopes(heads).to(device)
        return kwargs

    def _attention(
        self, causal: bool, scale: float, mask: MaskSpec | None, batch: int, heads: int, device
    ) -> AttentionFn:
        mod = self._mod()
        kwargs = self._kwargs(causal, scale, mask, heads, device)
        if mask is not None and mask.doc_lens:
            varlen = mod.flash_attn_varlen_func
            cu = cu_seqlens(mask.doc_lens, batch, device)
            n = max(mask.doc_lens)

            def attention_varlen(q, k, v):
                # by keyword: FA4's varlen entry point has seqused_q/k where FA2 has max_seqlen_q/k
                out = varlen(
                    packed(q),
                    packed(k),
                    packed(v),
                    cu_seqlens_q=cu,
                    cu_seqlens_k=cu,
                    max_seqlen_q=n,
                    max_seqlen_k=n,
                    **kwargs,
                )
                return unpacked(first(out), batch)

            return attention_varlen
        func = self._dense(mod)

        def attention(q, k, v):
            return first(func(bshd(q), bshd(k), bshd(v), **kwargs)).transpose(1, 2)

        return attention

    def bind(self, workload: Workload, device: torch.device) -> AttentionFn:
        mask = workload.mask if workload.mask.features else None
        return self._attention(
            workload.causal, workload.scale, mask, workload.batch, workload.q_heads, device
        )

    def _dense(self, mod: ModuleType):
        return mod.flash_attn_func


@register
class FlashAttn2(_FlashAttn):
    name = "fa2"
    description = (
        "FlashAttention-2 (flash-attn package: flash_attn_func; packed documents through "
        "flash_attn_varlen_func)"
    )
    module = "flash_attn"
    distribution = "flash-attn"
    supports_v_head_dim = False
    mask_features = frozenset({"window", "documents", "alibi"})
    dtype_notes = {"fp8": FP8_NOTE}


@register
class FlashAttn2KVCache(_FlashAttn):
    name = "fa2-kvcache"
    description = "FlashAttention-2's flash_attn_with_kvcache: decode against a KV cache"
    module = "flash_attn"
    distribution = "flash-attn"
    supports_v_head_dim = False
    supports_backward = False
    mask_features = frozenset({"window", "alibi"})
    entry = "flash_attn_with_kvcache"
    dtype_notes = {"fp8": FP8_NOTE}

    def extra_reasons(self, workload, device):
        reasons = super().extra_reasons(workload, device)
        if workload.scenario != "decode":
            reasons.append("for decode workloads only (queries against a KV cache); see fa2")
        return reasons

    def _dense(self, mod):
        return mod.flash_attn_with_kvcache  # (q, k_cache, v_cache, ...): same positions


@register
class FlashAttn3(_FlashAttn):
    name = "fa3"
    description = (
        "FlashAttention-3 for Hopper (flash_attn_interface, from flash-attention/hopper); fp8 "
        "e4m3 forward too"
    )
    module = "flash_attn_interface"
    distribution = "flash-attn-3"
    capability = ((9,), "sm_90 (Hopper)")
    mask_features = frozenset({"window", "documents"})
    dtypes = {"cuda": HALF | {"fp8"}}


def fa4_disk_cache() -> bool:
    """Set flash-attn-4's disk-cache variables (before its first import) when
    :data:`FA4_DISK_CACHE_ENV` asks; a variable the user set stays. True when the cache is on."""
    if settings.fa4_disk_cache_requested():
        os.environ.setdefault(settings.FA4_CACHE_ENABLED, "1")
        os.environ.setdefault(settings.FA4_CACHE_DIR, str(settings.cache_dir() / "fa4-cute-dsl"))
    return settings.fa4_disk_cache_enabled()


@register
class FlashAttn4(_FlashAttn):
    name = "fa4"
    description = (
        "FlashAttention-4 in CuTe DSL (flash-attn-4 package: flash_attn.cute), JIT-compiled"
    )
    module = "flash_attn.cute"
    distribution = "flash-attn-4"
    capability = ((9, 10, 11), "sm_90, sm_100 or sm_110")
    mask_features = frozenset({"window", "documents"})
    dtypes = {"cuda": HALF | {"fp8"}}

    def availability(self) -> str | None:
        fa4_disk_cache()
        return super().availability()

    def _mod(self) -> ModuleType:
        fa4_disk_cache()
        return super()._mod()

    def config(self, workload: Workload, device: torch.device) -> dict | None:
        return {**super().config(workload, device), "disk_cache": fa4_disk_cache()}

    def extra_reasons(self, workload, device):
        reasons = super().extra_reasons(workload, device)
        if workload.dtype == "fp8" and device.type == "cuda":
            why = capability_problem(device, (10,), "flash-attn-4's fp8 forward", "sm_100")
            if why:
                reasons.append(why)
        return reasons
