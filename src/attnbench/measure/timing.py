"""Timing a call: a monotonic clock on the CPU; CUDA events with the L2 flushed on the GPU.

On the GPU a call shorter than :data:`GRAPH_BELOW_S` (decode), or one whose host side takes at
least :data:`HOST_BOUND_FRACTION` of its plain median (launch-bound: its events would time the
host, which varies from run to run), is captured once in a CUDA graph and its replays are timed,
so that the launch overhead of the Python and dispatcher layers does not stand in for the
kernels' time; the L2 cache is still flushed before each replay. A call that cannot be captured
(one that synchronizes, say) keeps its plain timing, with a note.

On the GPU the samples are taken as two batches, the two halves of one ``do_bench`` (or one
run of graph replays), and more batches follow (:func:`until_steady`) until two in a row agree
within :data:`STEADY_TOLERANCE` and together hold one population; those two are the figure. A
call whose clock is still falling under the power limit, or that shares the GPU with another
process, keeps being sampled; one that never settles is published with a "not steady" note
(a caution in its record) instead of passing for a regression.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch

from .. import settings

GRAPH_BELOW_S = 50e-6  # plain median under this: time CUDA-graph replays instead
#: host seconds to enqueue one call over its plain median, at or above which the call is
#: launch-bound and timed as graph replays (H100: host-bound calls of 60-300 us read up to 3x
#: apart in two whole runs). Low, so that a call whose host side measures differently from run
#: to run changes method only where the GPU never waits for the host and both methods agree
#: (H200, two runs of 689c0f5 at 0.5: 23 of 263 pairs were replays in one run only, chunked's
#: 7.4 ms call 4.5 % apart by that alone; docs/results.md)
HOST_BOUND_FRACTION = 0.2
HOST_SAMPLE_CALLS = 20  # calls, about 50 ms of them at most, whose median is the host side

#: median / minimum at or above which samples hold two populations (H100, two whole runs at
#: 0c407c4: three decode pairs read 1.5-2.4x their minimum in one run and 1.0x in the other;
#: no other pair of either run above 1.15, docs/results.md)
UNSTABLE_RATIO = 1.25
#: two batches in a row whose medians differ by at most this are steady (H200, two runs of
#: d20286f: fa4's 1.7 ms prefill read 1.68 ms in one, its samples moving within the one batch
#: to the other run's 1.77 ms as the clock fell under the power limit, docs/results.md)
STEADY_TOLERANCE = 0.01
MAX_BATCHES = 4  # batches (half the sampling time each) before a figure is "not steady"
#: timed calls at least in the first ``do_bench``, so that a long call's figure is a median of
#: several (each further batch then holds half as many): with 100 ms of samples a call of 130
#: ms gave one, 30 ms three (H200, 7c52fa5: 41 of 289 figures had fewer than six)
MIN_SAMPLES = 6
L2_FLUSH_BYTES = 256 * 1024 * 1024  # more than any GPU's L2 cache (as triton's do_bench)
#: samples kept with a figure (evenly spaced order statistics beyond this): what a regression
#: gate tests two figures' distributions with, at a few kilobytes per record
KEPT_SAMPLES = 200


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
    clock: str  # "perf_counter", "cuda_event" or "cuda_graph" (events around graph replays)
    note: str | None = None  # how it was timed when that is not the plain method
    #: the samples (sorted; at most :data:`KEPT_SAMPLES` order statistics of them)
    samples: tuple[float, ...] = ()
    #: medians of the batches taken in turn (two halves at least): the drift within the run
    batches: tuple[float, ...] = ()

    @classmethod
    def from_samples(
        cls,
        samples: list[float],
        clock: str,
        note: str | None = None,
        batches: list[list[float]] | None = None,
    ) -> TimingStats:
        """Stats of ``samples`` (in the order taken); ``batches`` (consecutive groups of them)
        give the drift; by default the two halves."""
        if not samples:
            raise ValueError("no timing samples")
        if batches is None:
            half = len(samples) // 2
            batches = [samples[:half], samples[half:]] if half else [samples]
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
            note=note,
            samples=_kept(s),
            batches=tuple(statistics.median(b) for b in batches if b),
        )

    @property
    def drift(self) -> float:
        """Largest relative gap between the medians of the batches: how far the figure moved
        while it was sampled (0 with one batch)."""
        if len(self.batches) < 2 or not self.median:
            return 0.0
        return (max(self.batches) - min(self.batches)) / self.median

    @property
    def unstable(self) -> bool:
        """Median at least :data:`UNSTABLE_RATIO` times the fastest sample (5 samples or more)."""
        return self.n >= 5 and self.median >= UNSTABLE_RATIO * self.min > 0

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return self.iqr / self.median if self.median else 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _kept(ordered: list[float]) -> tuple[float, ...]:
    """At most :data:`KEPT_SAMPLES` evenly spaced order statistics of sorted samples."""
    if len(ordered) <= KEPT_SAMPLES:
        return tuple(ordered)
    step = (len(ordered) - 1) / (KEPT_SAMPLES - 1)
    return tuple(ordered[round(i * step)] for i in range(KEPT_SAMPLES))


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


def _event_samples(fn: Callable[[], object], warmup_ms: float, rep_ms: float) -> list[float]:
    """Seconds per call: ``triton.testing.do_bench``, CUDA events, L2 cleared before each."""
    from triton.testing import do_bench

    return [t / 1e3 for t in do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="all")]


def _graph_replayer(fn: Callable[[], object]) -> Callable[[float], list[float]]:
    """``fn`` captured once in a CUDA graph; the returned function times replays of it for
    about ``rep_ms`` (seconds per replay, L2 cleared before each).

    ``fn`` must use the same (static) input tensors on every call, as a prepared case does."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    cache = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device="cuda")

    def replays(n: int) -> list[float]:
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(n)]  # fmt: skip
        for start, end in events:
            cache.zero_()
            start.record()
            graph.replay()
            end.record()
        torch.cuda.synchronize()
        return [s.elapsed_time(e) / 1e3 for s, e in events]

    def timed(rep_ms: float) -> list[float]:
        estimate = statistics.median(replays(5))
        return replays(max(10, min(10_000, int(rep_ms / 1e3 / max(estimate, 1e-7)))))

    return timed


def until_steady(first: list[float], more: Callable[[], list[float]], clock: str) -> TimingStats:
    """Stats of ``first`` (samples in the order taken) split in two halves, then of batches
    ``more()``, until two batches in a row have medians within :data:`STEADY_TOLERANCE` and
    together are not :attr:`TimingStats.unstable`: those two batches' samples, with a note when
    more were needed. None steady in :data:`MAX_BATCHES`: every batch's samples pooled, with a
    "not steady" note (the lowest batch, kept before, was most often the first, sampled before
    the clock fell under the power limit: docs/results.md). Under two samples (a call longer
    than half the sampling time): ``first`` as it is."""
    if len(first) < 2:
        return TimingStats.from_samples(first, clock)
    batches = [first[: len(first) // 2], first[len(first) // 2 :]]
    while True:
        a, b = (statistics.median(s) for s in batches[-2:])
        both = TimingStats.from_samples(batches[-2] + batches[-1], clock, batches=batches[-2:])
        if abs(b - a) <= STEADY_TOLERANCE * a and not both.unstable:
            if len(batches) == 2:
                return both
            return replace(both, note=f"steady after {len(batches)} batches ({_medians(batches)})")
        if len(batches) == MAX_BATCHES:
            break
        batches.append(more())
    kept = TimingStats.from_samples([t for b in batches for t in b], clock, batches=batches)
    note = f"not steady: {len(batches)} batches ({_medians(batches)}); all pooled"
    if kept.unstable:
        note += f", {kept.median / kept.min:.2f}x its minimum"
    return replace(kept, note=note)


def _medians(batches: list[list[float]]) -> str:
    return "medians " + ", ".join(f"{statistics.median(b) * 1e6:.1f}" for b in batches) + " us"


def _join(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def _host_seconds(fn: Callable[[], object], calls: int = 5) -> float:
    """Median wall time to enqueue one call on an idle GPU (its host side: Python, dispatch,
    launches; a call that synchronizes inside also counts its device time)."""
    samples = []
    for _ in range(calls):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    torch.cuda.synchronize()
    return statistics.median(samples)


def settle(fn: Callable[[], object], ms: float) -> float:
    """Call ``fn`` (synchronized) for ``ms`` milliseconds of wall time, once at least; the
    seconds per call."""
    calls, start = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() < start + ms / 1e3:
        fn()
        torch.cuda.synchronize()
        calls += 1
    return (time.perf_counter() - start) / calls


def time_cuda(
    fn: Callable[[], object],
    *,
    warmup_ms: float = 25,
    rep_ms: float = 100,
    graph: bool | None = None,
    settle_ms: float | None = None,
) -> TimingStats:
    """CUDA events around each call with the L2 cache cleared (``do_bench``); for a call
    under :data:`GRAPH_BELOW_S` or launch-bound (:data:`HOST_BOUND_FRACTION`), or with
    ``graph=True``, CUDA-graph replays of it instead. ``graph=False`` never captures. A failed
    capture keeps the plain timing, with a note. First the call runs for ``settle_ms``
    (default ``ATTNBENCH_SETTLE_MS``, 200 ms: the SM clock leaves its idle boost for the clock
    the call sustains before the first sample; once at least), untimed; a call so long that
    ``rep_ms`` would hold fewer than :data:`MIN_SAMPLES` is sampled for longer."""
    settle_ms = settings.settle_ms() if settle_ms is None else settle_ms
    per_call = settle(fn, settle_ms)
    rep_ms = max(rep_ms, 1.1 * MIN_SAMPLES * per_call * 1e3)  # do_bench: rep / its estimate
    plain = until_steady(
        _event_samples(fn, warmup_ms, rep_ms),
        lambda: _event_samples(fn, 0.0, rep_ms / 2),  # a further batch, as long as a half
        "cuda_event",
    )
    if graph is False:
        return plain
    plain_us = plain.median * 1e6
    why = "forced" if graph else f"plain median {plain_us:.1f} us"
    if graph is None and plain.median >= GRAPH_BELOW_S:
        calls = max(1, min(HOST_SAMPLE_CALLS, round(0.05 / plain.median)))  # a slow one: once
        host = _host_seconds(fn, calls=calls)
        if host < HOST_BOUND_FRACTION * plain.median:
            return plain
        why = f"launch-bound: enqueue {host * 1e6:.1f} us, plain median {plain_us:.1f} us"
    try:
        replay = _graph_replayer(fn)
        replays = until_steady(replay(rep_ms), lambda: replay(rep_ms / 2), "cuda_graph")
    except Exception as exc:
        text = " ".join(str(exc).split())[:200]
        failed = f"CUDA-graph capture failed ({type(exc).__name__}: {text}): plain timing"
        return replace(plain, note=_join(failed, plain.note))
    return replace(replays, note=_join(f"CUDA-graph replay ({why})", replays.note))


def time_call(fn: Callable[[], object], device: torch.device, **kwargs: float) -> TimingStats:
    """Time ``fn`` the right way for ``device``."""
    if device.type == "cuda":
        return time_cuda(fn, **kwargs)
    return time_cpu(fn, **kwargs)
