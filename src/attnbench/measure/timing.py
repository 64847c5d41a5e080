"""Timing a call: a monotonic clock on the CPU; CUDA events with the L2 flushed on the GPU."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class TimingStats:
    """Seconds per call over ``n`` timed calls after warm-up."""

    median: float
    mean: float
    stdev: float
    iqr: float
    min: float
    max: float
    p50: float
    p95: float
    p99: float
    n: int
    clock: str  # "perf_counter" or "cuda_event"

    @classmethod
    def from_samples(cls, samples: list[float], clock: str) -> TimingStats:
        if not samples:
            raise ValueError("no timing samples")
        s = sorted(samples)
        if len(s) > 1:
            pct = statistics.quantiles(s, n=100, method="inclusive")
            p25, p50, p75, p95, p99 = pct[24], pct[49], pct[74], pct[94], pct[98]
        else:
            p25 = p50 = p75 = p95 = p99 = s[0]
        return cls(
            median=statistics.median(s),
            mean=statistics.fmean(s),
            stdev=statistics.stdev(s) if len(s) > 1 else 0.0,
            iqr=p75 - p25,
            min=s[0],
            max=s[-1],
            p50=p50,
            p95=p95,
            p99=p99,
            n=len(s),
            clock=clock,
        )

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return self.iqr / self.median if self.median else 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def time_cpu(
    fn: Callable[[], object],
    *,
    warmup: int = 2,
    min_time: float = 0.2,
    min_runs: int = 5,
    max_runs: int = 1000,
) -> TimingStats:
    """Call ``fn`` until ``min_time`` seconds and ``min_runs`` calls are spent; each call timed."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < max_runs and (
        len(samples) < min_runs or time.perf_counter() - start < min_time
    ):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return TimingStats.from_samples(samples, "perf_counter")


def time_cuda(
    fn: Callable[[], object], *, warmup_ms: float = 25, rep_ms: float = 100
) -> TimingStats:
    """``triton.testing.do_bench``: CUDA events around each call, L2 cache cleared before it."""
    from triton.testing import do_bench

    samples_ms = do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="all")
    return TimingStats.from_samples([t / 1e3 for t in samples_ms], "cuda_event")


def time_call(fn: Callable[[], object], device: torch.device, **kwargs: float) -> TimingStats:
    """Time ``fn`` the right way for ``device``."""
    if device.type == "cuda":
        return time_cuda(fn, **kwargs)
    return time_cpu(fn, **kwargs)
