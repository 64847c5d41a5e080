"""PyTorch's ``scaled_dot_product_attention``: its own dispatch, and each backend pinned."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..masks import causal_mask, causal_offset
from .base import ALL_DTYPES, ALL_MASKS, HALF, NO_FP8_IN_TORCH, Implementation
from .registry import register


class _Sdpa(Implementation):
    dtype_notes = {"fp8": NO_FP8_IN_TORCH}
    family = "sdpa"
    backend: SDPBackend | None = None  # None: let PyTorch choose
    native_gqa = True  # False: the kernel needs equal head counts, K/V heads are repeated

    mask_features = ALL_MASKS  # as a materialized attn_mask (pinned flash/cuDNN: not at all)

    def _mask_args(self, q: torch.Tensor, k: torch.Tensor, causal: bool, mask) -> dict:
        sq, skv = q.shape[2], k.shape[2]
        if mask is not None:
            return {"attn_mask": mask.additive(q.shape[1], sq, skv, q.device, q.dtype)}
        if not causal or sq == 1:  # one query row against a cache sees every key
            return {}
        if sq == skv:
            return {"is_causal": True}
        if self.backend is None:  # PyTorch's own lower-right causal bias, fused where it can
            # imported here: the module pulls in torch._dynamo, over a second per process
            from torch.nn.attention.bias import causal_lower_right

            return {"attn_mask": causal_lower_right(sq, skv)}
        # CausalBias would pick a kernel itself, ignoring the pin: pass the mask as a tensor
        return {"attn_mask": causal_mask(sq, skv, q.device, q_start=causal_offset(sq, skv))}

    def bind(self, workload, device):
        """The mask argument (a materialized q_len x kv_len tensor for windows, documents,
        ALiBi or a pinned backend's bottom-right causal) is built here once, not per call
        (``forward`` is derived: built per call)."""
        w, dtype = workload, workload.torch_dtype
        q = torch.empty(1, w.q_heads, w.q_len, 1, device=device, dtype=dtype)
        k = torch.empty(1, w.kv_heads, w.kv_len, 1, device=device, dtype=dtype)
        kwargs = self._mask_args(q, k, w.causal, w.mask if w.mask.features else None)
        scale = w.scale

        def attention(q, k, v):
            return self._attend(q, k, v, scale, kwargs)

        return attention

    def _attend(self, q, k, v, scale: float, kwargs: dict) -> torch.Tensor:
        gqa = q.shape[1] != k.shape[1]
        if gqa and not self.native_gqa:
            group = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            gqa = False
        if self.backend is None:
            return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa, **kwargs)
        with sdpa_kernel(self.backend):
            return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa, **kwargs)


@register
class Sdpa(_Sdpa):
    name = "sdpa"
    description = "torch.nn.functional.scaled_dot_product_attention, PyTorch choosing the kernel"


@register
class SdpaMath(_Sdpa):
    name = "sdpa-math"
    description = "SDPA pinned to the MATH backend (unfused, in PyTorch ops)"
    backend = SDPBackend.MATH
    nightly_only = True  # on a GPU: eager's kind of unfused matmuls, tens of x slower


@register
class SdpaFlash(_Sdpa):
    name = "sdpa-flash"
    description = "SDPA pinned to FLASH_ATTENTION (FlashAttention-2 on CUDA; PyTorch's own on CPU)"
    backend = SDPBackend.FLASH_ATTENTION
    mask_features = frozenset()  # no attn_mask in FlashAttention-2
    dtypes = {"cpu": ALL_DTYPES, "cuda": HALF}
    supports_v_head_dim = False

    def extra_reasons(self, workload, device):
        reasons = []
        if device.type == "cuda" and workload.causal and 1 < workload.q_len < workload.kv_len:
            reasons.append(
                "causal with 1 < q_len < kv_len needs a bottom-right mask tensor, which the "
                "pinned FLASH_ATTENTION backend does not take on CUDA"
            )
        if device.type == "cuda" and max(workload.head_dim, workload.dv) > 256:
            reasons.append(f"head_dim {max(workload.head_dim, workload.dv)} > 256 on CUDA")
        return reasons


@register
class SdpaEfficient(_Sdpa):
    name = "sdpa-efficient"
    description = (
        "SDPA pinned to EFFICIENT_ATTENTION (xFormers' memory-efficient kernel); "
        "GQA/MQA by repeating K/V heads, which this kernel needs (the copy is timed)"
    )
    backend = SDPBackend.EFFICIENT_ATTENTION
    native_gqa = False
    dtypes = {"cuda": ALL_DTYPES}


@register
class SdpaCudnn(_Sdpa):
    name = "sdpa-cudnn"
    description = "SDPA pinned to CUDNN_ATTENTION (cuDNN's fused flash attention)"
    backend = SDPBackend.CUDNN_ATTENTION
    mask_features = frozenset()
    dtypes = {"cuda": HALF}
    max_head_dim = 256
    head_dim_multiple = 8
