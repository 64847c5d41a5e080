"""Plain PyTorch attention, QKᵀ -> softmax -> V: the naive baseline of every seed."""

from __future__ import annotations

import torch

from .base import Implementation
from .math import math_attention
from .registry import register


@register
class Eager(Implementation):
    name = "eager"
    family = "pytorch"
    description = "plain PyTorch QKᵀ -> softmax (float32) -> V; memory grows as q_len x kv_len"

    def forward(self, q, k, v, *, causal, scale):
        return math_attention(q, k, v, causal=causal, scale=scale, softmax_dtype=torch.float32)
