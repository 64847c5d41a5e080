"""Ground truth: the same math as ``eager``, in float64 on the CPU."""

from __future__ import annotations

import torch

from .base import ALL_DTYPES, ALL_MASKS, Implementation
from .math import math_attention
from .registry import register


@register
class Reference(Implementation):
    name = "reference"
    mask_features = ALL_MASKS
    family = "reference"
    description = "float64 math on the CPU; ground truth for every error figure"
    dtypes = {"cpu": ALL_DTYPES | {"fp64", "fp8"}}
    benchmarked = False

    def forward(self, q, k, v, *, causal, scale, mask=None):
        q, k, v = (t.to("cpu", torch.float64) for t in (q, k, v))
        return math_attention(q, k, v, causal=causal, scale=scale, mask=mask)
