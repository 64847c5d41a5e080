"""Decode: one query row per head against a long KV cache, through the forward's general kernel.

``q (B, Hq, 1, D)``, ``k (B, Hkv, Skv, D)``, ``v (B, Hkv, Skv, Dv)`` -> ``o (B, Hq, 1, Dv)``.
A decode step reads K and V once and does little arithmetic on them: it is bound by memory
bandwidth, and the work must be spread over enough programs to keep every SM loading. The
configuration (:func:`~.configs.choose_fwd_config`) packs the ``G`` query heads of a KV head into
the rows of one tile (K/V read once per group, never repeated) and cuts the cache into key
splits, each writing a float32 partial output and log-sum-exp; the split that finishes last for
a block of rows merges them in the same launch (``FwdConfig.fused_combine``, the default where
keys are split), else a second kernel does.
"""

from __future__ import annotations

import torch

from .configs import FwdConfig
from .forward import MaskArgs, attention_forward, default_fwd_config


def decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float | None = None,
    mask: MaskArgs | None = None,
    config: FwdConfig | None = None,
) -> torch.Tensor:
    """Attention of one query row per head against the whole cache (forward only). One row
    sees every key: causal and full are the same; ``mask`` may add a window or ALiBi."""
    if q.dim() != 4 or q.shape[2] != 1:
        raise ValueError(f"decode takes one query row: q must be (B, Hq, 1, D), got {q.shape}")
    from .api import check_inputs

    check_inputs(q, k, v, False)
    mask = mask or MaskArgs(False)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    config = config or default_fwd_config(q, k, v, mask)
    return attention_forward(q, k, v, scale, mask, config)[0]


__all__ = ["decode"]
