"""Errors against the float64 reference, NaN/Inf detection, and determinism."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# Tolerances on the relative norm ||out - ref|| / ||ref|| and on the max abs error, for
# unit-normal inputs. Low precision types are judged by their rounding unit.
TOLERANCES: dict[str, tuple[float, float]] = {  # dtype: (rel_norm, max_abs)
    "fp64": (1e-10, 1e-9),
    "fp32": (2e-5, 2e-4),
    "fp16": (2e-3, 1e-2),
    "bf16": (1.6e-2, 8e-2),
    # fp8 inputs are exact in the reference; what is judged is the kernel's own rounding (P
    # to e4m3 before the PV product: relative 2^-4 per element), then the bf16 output
    "fp8": (6.25e-2, 2.5e-1),
}


@dataclass(frozen=True)
class ErrorStats:
    max_abs: float
    rel_norm: float
    nonfinite: int  # count of NaN or Inf in the output

    def within(self, dtype: str, factor: float = 1.0) -> bool:
        rel, abs_ = TOLERANCES[dtype]
        return self.within_bounds(rel * factor, abs_ * factor)

    def within_bounds(self, rel: float, abs_: float) -> bool:
        """All finite, relative norm at most ``rel`` and largest difference at most ``abs_``."""
        return self.nonfinite == 0 and self.rel_norm <= rel and self.max_abs <= abs_


def compare(actual: torch.Tensor, expected: torch.Tensor) -> ErrorStats:
    """Error of ``actual`` against ``expected`` (float64), computed in float64 on the CPU."""
    if actual.shape != expected.shape:
        raise ValueError(f"output shape {tuple(actual.shape)} != reference {tuple(expected.shape)}")
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    nonfinite = int((~torch.isfinite(a)).sum())
    diff = torch.nan_to_num(a - e, nan=float("inf"), posinf=float("inf"), neginf=float("-inf"))
    denom = float(torch.linalg.vector_norm(e)) or 1.0
    return ErrorStats(
        max_abs=float(diff.abs().max()) if diff.numel() else 0.0,
        rel_norm=float(torch.linalg.vector_norm(diff)) / denom,
        nonfinite=nonfinite,
    )


def is_deterministic(fn: Callable[[], torch.Tensor]) -> bool:
    """Same input twice gives the same output bits."""
    first = fn().detach().clone()
    second = fn().detach()
    return torch.equal(first, second)
