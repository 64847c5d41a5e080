"""``triton-fused``: in-house fused attention in Triton (:mod:`attnbench.kernels.
triton_attention`): forward, split-key decode and backward kernels, with causal, sliding-window,
packed-document and ALiBi masks computed inside the kernel (no mask tensor is read). ``bind``
chooses the kernel configuration and builds the mask's small tables once per case, outside the
timed call; ``config`` reports that choice, which is recorded with each result."""

from __future__ import annotations

import torch

from ..masks import MaskSpec, alibi_slopes
from ..workload import Workload
from .base import ALL_DTYPES, ALL_MASKS, Implementation
from .registry import register


@register
class TritonFused(Implementation):
    name = "triton-fused"
    family = "in-house"
    description = (
        "in-house fused Triton kernels (FlashAttention-2 style): forward, split-key decode, "
        "backward; every mask computed in the kernel"
    )
    dtypes = {"cuda": ALL_DTYPES}  # fp32 with exact products (tf32 would miss fp32's tolerance)
    max_head_dim = 256
    mask_features = ALL_MASKS
    requires = ("triton",)

    @staticmethod
    def _configs(workload: Workload, device: torch.device):
        from ..kernels import triton_attention as ta

        w, size = workload, workload.torch_dtype.itemsize
        fwd = ta.choose_fwd_config(
            w.batch, w.q_heads, w.kv_heads, w.q_len, w.kv_len, w.head_dim, w.dv, device, size,
            w.mask.causal or bool(w.mask.features - {"alibi"}),
        )  # fmt: skip
        bwd = ta.choose_bwd_config(w.head_dim, w.dv, size) if w.has_backward else None
        return fwd, bwd

    @staticmethod
    def _mask_args(mask: MaskSpec, heads: int, device: torch.device):
        from ..kernels.triton_attention import mask_args

        return mask_args(
            mask.causal,
            window=mask.window,
            doc_lens=mask.doc_lens,
            alibi_slopes=alibi_slopes(heads) if mask.alibi else None,
            device=device,
        )

    def bind(self, workload: Workload, device: torch.device):
        from ..kernels.triton_attention import attention

        fwd, bwd = self._configs(workload, device)
        mask = self._mask_args(workload.mask, workload.q_heads, device)
        scale = workload.scale

        def triton_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return attention(q, k, v, scale=scale, mask=mask, fwd_config=fwd, bwd_config=bwd)

        return triton_attention

    def config(self, workload: Workload, device: torch.device) -> dict | None:
        fwd, bwd = self._configs(workload, device)
        out = {"forward": fwd.as_dict()}
        if bwd is not None:
            out["backward"] = bwd.as_dict()
        return out

    def forward(self, q, k, v, *, causal, scale, mask=None):
        """Unbound use (configuration chosen per call, mask tables built per call)."""
        from ..kernels.triton_attention import attention

        spec = mask if mask is not None else MaskSpec(causal=causal)
        args = self._mask_args(spec, q.shape[1], q.device)
        return attention(q, k, v, scale=scale, mask=args)
