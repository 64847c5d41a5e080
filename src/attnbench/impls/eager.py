"""Plain PyTorch attention, QKᵀ -> softmax -> V: the naive baseline of every seed."""

from __future__ import annotations

import torch

from ..workload import Workload
from .base import ALL_MASKS, NO_FP8_IN_TORCH, AttentionFn, Implementation
from .math import bound_attention
from .registry import register


@register
class Eager(Implementation):
    name = "eager"
    dtype_notes = {"fp8": NO_FP8_IN_TORCH}
    mask_features = ALL_MASKS
    family = "pytorch"
    rounds_scores = True  # the baseline as users write it: QKᵀ in the input dtype
    description = (
        "plain PyTorch QKᵀ -> softmax (float32) -> V; memory grows as q_len x kv_len; mask "
        "tensors built once per workload, as eager-compiled's"
    )

    def bind(self, workload: Workload, device: torch.device) -> AttentionFn:
        """The math alone is timed: the workload's masks are built here, untimed (building
        them in the call put a host-to-device copy of the document lengths in every one).
        ``forward`` is derived (masks built per call); a subclass that writes ``forward`` is
        bound through its own, as any implementation is."""
        w = workload
        return bound_attention(w.mask, w.q_heads, w.q_len, w.kv_len, w.scale, device, torch.float32)
