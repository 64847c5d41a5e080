"""Rates derived from a time: TFLOP/s, tokens/s, GB/s (on the fewest bytes that must move)."""

from __future__ import annotations

from dataclasses import dataclass

from ..workload import Workload


@dataclass(frozen=True)
class Rates:
    tflops: float
    tokens_per_s: float
    gbps: float  # GB/s (1e9 bytes) over the workload's minimal bytes


def rates(workload: Workload, seconds: float, mode: str = "forward") -> Rates:
    """Rates of ``workload`` done in ``seconds``; ``mode`` says which passes were timed."""
    if mode == "forward":
        flops, moved = workload.forward_flops, workload.forward_bytes
    else:
        flops, moved = workload.flops, workload.bytes
    return Rates(flops / seconds / 1e12, workload.tokens / seconds, moved / seconds / 1e9)
