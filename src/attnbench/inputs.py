"""Seeded random inputs in the canonical layout; never zeros or constants."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .workload import Workload


@dataclass
class Inputs:
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    grad_out: torch.Tensor | None
    scale: float
    causal: bool

    def leaves(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.q, self.k, self.v


def make_inputs(
    workload: Workload,
    device: torch.device | str = "cpu",
    *,
    seed: int = 0,
    magnitude: float = 1.0,
    dtype: torch.dtype | None = None,
) -> Inputs:
    """Standard-normal Q, K, V (times ``magnitude``) from a generator seeded on ``device``;
    ``grad_out`` too for ``train``. Same seed, same device: same numbers."""
    w = workload
    device = torch.device(device)
    gen = torch.Generator(device).manual_seed(seed)
    dtype = dtype or w.torch_dtype

    def randn(*shape: int) -> torch.Tensor:
        t = torch.randn(*shape, generator=gen, device=device, dtype=torch.float32)
        return t.mul_(magnitude).to(dtype).requires_grad_(w.has_backward)

    q = randn(w.batch, w.q_heads, w.q_len, w.head_dim)
    k = randn(w.batch, w.kv_heads, w.kv_len, w.head_dim)
    v = randn(w.batch, w.kv_heads, w.kv_len, w.dv)
    grad_out = None
    if w.has_backward:
        grad_out = randn(w.batch, w.q_heads, w.q_len, w.dv).detach()
    return Inputs(q, k, v, grad_out, scale=w.scale, causal=w.causal)
