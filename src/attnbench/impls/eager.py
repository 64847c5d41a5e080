"""Plain PyTorch attention, QKᵀ -> softmax -> V: the naive baseline of every seed."""

from __future__ import annotations

import torch

from .base import ALL_MASKS, NO_FP8_IN_TORCH, Implementation
from .math import math_attention
from .registry import register


@register
class Eager(Implementation):
    name = "eager"
    dtype_notes = {"fp8": NO_FP8_IN_TORCH}
    mask_features = ALL_MASKS
    family = "pytorch"
    description = "plain PyTorch QKᵀ -> softmax (float32) -> V; memory grows as q_len x kv_len"

    def forward(self, q, k, v, *, causal, scale, mask=None):
        return math_attention(
            q, k, v, causal=causal, scale=scale, softmax_dtype=torch.float32, mask=mask
        )
