"""PyTorch's FlexAttention, compiled, with the workload's mask as a block mask.

``bind`` (untimed) turns the workload's :class:`~attnbench.masks.MaskSpec` into a ``mask_mod``
(bottom-right causal, sliding window, packed documents) and builds its ``BlockMask`` with
``create_block_mask``; ALiBi becomes a ``score_mod``. The timed call is ``torch.compile``'d
``flex_attention`` (``dynamic=False``: one kernel per shape), GQA through ``enable_gqa``. The
first call compiles (Inductor/Triton); that time is the case's ``first_call_seconds``.
"""

from __future__ import annotations

import functools

import torch

from ..masks import MaskSpec, alibi_slopes
from ..workload import Workload
from .base import ALL_DTYPES, ALL_MASKS, AttentionFn, Implementation
from .registry import register

#: Dynamo keeps this many compiled variants per function; a sweep binds one per workload
RECOMPILE_LIMIT = 256
SMALL_Q = 128  # below this many query rows Inductor picks its flex *decoding* kernel


def allow_recompiles(limit: int = RECOMPILE_LIMIT) -> None:
    """Let Dynamo keep ``limit`` shape variants per compiled function (default 8): past the
    limit it silently falls back to eager, which for flex means the unfused math path."""
    config = torch._dynamo.config
    for key in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(config, key) and getattr(config, key) < limit:
            setattr(config, key, limit)


@functools.cache
def compiled_flex_attention():
    """``flex_attention`` under ``torch.compile`` (made once per process)."""
    from torch.nn.attention.flex_attention import flex_attention

    allow_recompiles()
    return torch.compile(flex_attention, dynamic=False)


def mask_mod_for(spec: MaskSpec, q_len: int, kv_len: int, device: torch.device):
    """A :class:`MaskSpec` as a flex ``mask_mod`` (``None`` for plain full attention)."""
    from torch.nn.attention.flex_attention import and_masks

    offset = kv_len - q_len  # bottom-right: query row i sits at position i + offset
    mods = []
    if spec.causal and q_len > 1:  # one query row at the end of the cache sees every key

        def causal(b, h, q_idx, kv_idx):
            return q_idx + offset >= kv_idx

        mods.append(causal)
    if spec.window is not None:
        window = spec.window

        def sliding(b, h, q_idx, kv_idx):
            return q_idx + offset - kv_idx < window

        mods.append(sliding)
    if spec.doc_lens:
        doc = spec.document_ids(kv_len, device).to(torch.int32)

        def same_document(b, h, q_idx, kv_idx):
            return doc[q_idx + offset] == doc[kv_idx]

        mods.append(same_document)
    if not mods:
        return None
    return mods[0] if len(mods) == 1 else and_masks(*mods)


def score_mod_for(spec: MaskSpec, heads: int, q_len: int, kv_len: int, device: torch.device):
    """ALiBi as a flex ``score_mod`` (``None`` without it): ``score - slope_h * |pos_q - pos_k|``
    on the scaled score, as :meth:`MaskSpec.bias`."""
    if not spec.alibi:
        return None
    slopes = alibi_slopes(heads).to(device)
    offset = kv_len - q_len

    def alibi(score, b, h, q_idx, kv_idx):
        return score - slopes[h] * (q_idx + offset - kv_idx).abs()

    return alibi


def flex_for(
    spec: MaskSpec, heads: int, q_len: int, kv_len: int, scale: float, device: torch.device
) -> AttentionFn:
    """Compiled flex attention for one shape and mask, its block mask built now."""
    from torch.nn.attention.flex_attention import create_block_mask

    mask_mod = mask_mod_for(spec, q_len, kv_len, device)
    block_mask = None
    if mask_mod is not None:
        block_mask = create_block_mask(mask_mod, None, None, q_len, kv_len, device=device)
    score_mod = score_mod_for(spec, heads, q_len, kv_len, device)
    flex = compiled_flex_attention()

    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        gqa = q.shape[1] != k.shape[1]
        return flex(
            q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale, enable_gqa=gqa
        )

    return attention


@register
class Flex(Implementation):
    name = "flex"
    family = "pytorch"
    description = (
        "torch.nn.attention.flex_attention under torch.compile; causal/window/documents as a "
        "block mask built once per workload (untimed), ALiBi as a score_mod"
    )
    dtypes = {"cpu": frozenset({"fp32"}), "cuda": ALL_DTYPES}
    mask_features = ALL_MASKS
    compiles = True  # first call compiles: tests keep its CPU coverage small
    forward_cache = 4  # a direct forward call builds its block mask once per shape
    # its compiles cost a commit's H200 run 50 s warm, 81 s cold (the largest share; records
    # h200-x1/47011587, ae51bbf3), and its kernels change with PyTorch, not with a commit
    nightly_only = True

    def extra_reasons(self, workload: Workload, device: torch.device) -> list[str]:
        reasons = []
        if device.type == "cpu":
            if workload.has_backward:
                reasons.append("no backward pass on the CPU (FlexAttention's is CUDA only)")
            if workload.dv != workload.head_dim:
                reasons.append("head_dim of V differs from Q/K's (not on the CPU)")
        if device.type == "cuda" and min(workload.head_dim, workload.dv) < 16:
            reasons.append(f"head_dim {min(workload.head_dim, workload.dv)} < 16 (tl.dot)")
        group = workload.group_size
        if workload.q_len < SMALL_Q and group & (group - 1):
            reasons.append(
                f"{group} query heads per KV head: flex's decoding kernel needs a power of two"
            )
        return reasons

    def bind(self, workload: Workload, device: torch.device) -> AttentionFn:
        w = workload
        return flex_for(w.mask, w.q_heads, w.q_len, w.kv_len, w.scale, device)
