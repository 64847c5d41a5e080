"""The measuring code: timing statistics, memory peaks, rates, direction, errors."""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from attnbench import Workload, prepare
from attnbench.direction import higher_is_better, is_regression
from attnbench.impls.eager import Eager
from attnbench.measure.accuracy import ErrorStats, compare, is_deterministic
from attnbench.measure.memory import host_peak_rss, measure_memory, reset_host_peak
from attnbench.measure.rates import rates
from attnbench.measure.timing import TimingStats, time_call, time_cpu

from .conftest import CPU

MB = 1 << 20


# -- timing -------------------------------------------------------------------------------
def test_timing_stats_on_known_samples(seed):
    samples = [float(x) for x in range(1, 102)]  # 1..101
    random.Random(seed).shuffle(samples)
    s = TimingStats.from_samples(samples, "perf_counter")
    assert (s.n, s.min, s.max, s.median, s.mean) == (101, 1.0, 101.0, 51.0, 51.0)
    assert s.p50 == pytest.approx(51.0)
    assert s.p95 == pytest.approx(96.0)  # inclusive: 1 + 0.95 * 100
    assert s.p99 == pytest.approx(100.0)
    assert s.iqr == pytest.approx(76.0 - 26.0)
    assert s.spread == pytest.approx(50.0 / 51.0)
    assert s.stdev == pytest.approx(float(np.std(samples, ddof=1)))
    assert s.clock == "perf_counter"
    assert s.as_dict()["p95"] == s.p95


def test_timing_stats_match_numpy_percentiles(seed):
    rng = np.random.default_rng(seed)
    samples = list(rng.lognormal(mean=-6, sigma=0.5, size=37))
    s = TimingStats.from_samples(samples, "cuda_event")
    assert s.median == pytest.approx(float(np.median(samples)))
    assert s.mean == pytest.approx(float(np.mean(samples)))
    for attr, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert getattr(s, attr) == pytest.approx(float(np.percentile(samples, q))), attr
    assert s.iqr == pytest.approx(float(np.percentile(samples, 75) - np.percentile(samples, 25)))
    assert s.min == min(samples) and s.max == max(samples)


def test_timing_stats_single_and_empty():
    s = TimingStats.from_samples([0.25], "perf_counter")
    assert (s.median, s.p95, s.p99, s.stdev, s.iqr, s.n) == (0.25, 0.25, 0.25, 0.0, 0.0, 1)
    with pytest.raises(ValueError, match="no timing samples"):
        TimingStats.from_samples([], "perf_counter")


def test_time_cpu_counts_and_times():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.002)

    s = time_cpu(fn, warmup=3, min_time=0.0, min_runs=7)
    assert s.n >= 7
    assert len(calls) == s.n + 3  # warm-up calls are not timed
    assert s.min >= 0.002 * 0.9 and s.median > 0 and s.max < 1.0
    assert s.clock == "perf_counter"


def test_time_cpu_runs_for_min_time_and_stops_at_max_runs():
    s = time_cpu(lambda: time.sleep(0.005), warmup=0, min_time=0.1, min_runs=2)
    assert s.n * s.mean >= 0.1 * 0.9
    assert s.n >= 10 * 0.5
    capped = time_cpu(lambda: time.sleep(0.001), warmup=0, min_time=10.0, min_runs=1, max_runs=4)
    assert capped.n == 4


def test_time_call_on_cpu_and_case_time(seed):
    w = Workload(1, 4, 2, 64, 64, 32, dtype="fp32")
    case = prepare("eager", w, CPU, seed=seed)
    s = case.time(min_time=0.02, min_runs=5)
    assert s.n >= 5 and s.min > 0 and s.median >= s.min
    t = time_call(lambda: None, CPU, min_time=0.0, min_runs=3)
    assert t.n >= 3


# -- memory -------------------------------------------------------------------------------
def _current_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no /proc/self/status")


def test_measure_memory_on_cpu(seed):
    case = prepare("eager", Workload(1, 4, 2, 64, 64, 32, dtype="fp32"), CPU, seed=seed)
    m = case.memory()
    assert m.host_peak_rss > 0
    assert m.gpu_peak_allocated is None and m.gpu_extra_allocated is None


def test_big_allocation_raises_the_host_peak(seed):
    size = 200 * MB

    def allocate():
        t = torch.empty(size // 4, dtype=torch.float32)
        t.uniform_(generator=torch.Generator().manual_seed(seed))  # touch every page
        return float(t[:: 4096 // 4].sum())

    rss_before = _current_rss()
    baseline = measure_memory(lambda: None, CPU).host_peak_rss
    peak = measure_memory(allocate, CPU).host_peak_rss
    assert peak >= rss_before + 150 * MB
    if reset_host_peak():  # Linux >= 4.0: the peak is per call, not per process lifetime
        assert peak - baseline >= 150 * MB, (peak, baseline)
        after = measure_memory(lambda: None, CPU).host_peak_rss
        assert after < peak - 150 * MB  # the peak was reset: the next call does not see it
        assert host_peak_rss() < peak


# -- rates --------------------------------------------------------------------------------
def test_rates_on_a_known_workload():
    w = Workload(1, 4, 4, 100, 200, 32, causal=False, dtype="fp16")
    # 2 * B * H * Sq * Skv * (D + Dv) = 2 * 4 * 100 * 200 * 64
    flops = 10_240_000
    # fp16 bytes of q (4*100*32) + k (4*200*32) + v (4*200*32) + o (4*100*32)
    moved = 2 * (12_800 + 25_600 + 25_600 + 12_800)
    r = rates(w, 0.002)
    assert r.tflops == pytest.approx(flops / 0.002 / 1e12)
    assert r.tflops == pytest.approx(5.12e-3)
    assert r.gbps == pytest.approx(moved / 0.002 / 1e9)
    assert r.tokens_per_s == pytest.approx(100 / 0.002)

    t = w.with_(scenario="train")
    rt = rates(t, 0.004, mode="forward_backward")
    assert rt.tflops == pytest.approx(flops * 3.5 / 0.004 / 1e12)
    assert rt.gbps == pytest.approx(t.bytes / 0.004 / 1e9)
    assert rates(t, 0.004).tflops == pytest.approx(flops / 0.004 / 1e12)  # forward alone


def test_rates_of_a_decode_step():
    w = Workload(8, 32, 8, 1, 4096, 128, dtype="bf16", scenario="decode")
    r = rates(w, 1e-4)
    assert r.tokens_per_s == pytest.approx(8 / 1e-4)
    kv = 2 * 8 * 8 * 4096 * 128 * 2  # K and V, bf16
    qo = 2 * 8 * 32 * 1 * 128 * 2
    assert r.gbps == pytest.approx((kv + qo) / 1e-4 / 1e9)


# -- direction ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "higher"),
    [
        ("forward.Forward.track_tflops", True),
        ("forward.ForwardSpeedup.track_speedup_vs_eager", True),
        ("forward.ForwardSpeedup.track_speedup_vs_eager('chunked', 'h8d64/prefill/s512')", True),
        ("train.ForwardBackward.track_gbps", True),
        ("train.ForwardBackward.track_gbps('eager', 'x/train/s256/b1/causal/fp32')", True),
        ("forward.Forward.track_tokens_per_s", True),
        ("forward.Forward.time_forward", False),
        ("forward.Forward.time_forward('eager', 'h8d64/prefill/s512/b1/causal/fp32')", False),
        ("forward.Forward.peakmem_forward", False),
        ("forward.Forward.track_max_error", False),
        ("forward.Forward.track_rel_error", False),
        ("forward.Forward.track_gpu_peak_memory", False),
        ("train.ForwardBackward.time_forward_backward", False),
        ("forward.Forward.time_tflops", False),
    ],
)
def test_higher_is_better(name, higher):
    assert higher_is_better(name) is higher


def test_is_regression_in_both_directions():
    tflops, time_ = "forward.Forward.track_tflops", "forward.Forward.time_forward"
    assert is_regression(tflops, 600.0, 300.0)
    assert not is_regression(tflops, 300.0, 600.0)
    assert is_regression(time_, 1.0, 2.0)
    assert not is_regression(time_, 2.0, 1.0)
    # within the factor (default 1.1): not a regression either way
    assert not is_regression(tflops, 600.0, 560.0)
    assert not is_regression(time_, 1.0, 1.05)
    assert is_regression(time_, 1.0, 1.05, factor=1.01)
    assert is_regression("forward.ForwardSpeedup.track_speedup_vs_eager('a', 'b')", 3.0, 2.0)


# -- accuracy helpers ---------------------------------------------------------------------
def test_eager_is_deterministic_on_cpu(seed):
    case = prepare("eager", Workload(2, 8, 2, 96, 96, 64, dtype="fp32"), CPU, seed=seed)
    assert case.deterministic() is True


def test_is_deterministic_can_say_no(seed):
    gen = torch.Generator().manual_seed(seed)
    assert is_deterministic(lambda: torch.randn(16, generator=gen)) is False

    class Noisy(Eager):
        name = "test-noisy"

        def forward(self, q, k, v, *, causal, scale):
            out = super().forward(q, k, v, causal=causal, scale=scale)
            return out + 1e-6 * torch.randn(out.shape, generator=gen)

    case = prepare(Noisy(), Workload(1, 2, 2, 8, 8, 16, dtype="fp32"), CPU, seed=seed)
    assert case.deterministic() is False


def test_compare_counts_nonfinite_and_fails_within(seed):
    gen = torch.Generator().manual_seed(seed)
    expected = torch.randn(2, 4, 8, 16, generator=gen, dtype=torch.float64)
    good = expected.float()
    stats = compare(good, expected)
    assert stats.nonfinite == 0 and stats.within("fp32")
    assert stats.max_abs < 1e-6

    bad = good.clone()
    bad[0, 0, 0, 0] = float("nan")
    bad[1, 2, 3, 4] = float("inf")
    bad[1, 3, 7, 15] = float("-inf")
    stats = compare(bad, expected)
    assert stats.nonfinite == 3
    assert not stats.within("fp32") and not stats.within("bf16", factor=1e9)
    assert stats.max_abs == float("inf")


def test_compare_counts_an_infinity_as_an_infinite_error(seed):
    gen = torch.Generator().manual_seed(seed)
    expected = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    bad = expected.clone()
    bad[1, 2] = float("inf")
    stats = compare(bad, expected)
    assert stats.nonfinite == 1
    assert stats.max_abs == float("inf") and stats.rel_norm == float("inf")
    assert not stats.within("bf16", factor=1e300)


def test_compare_errors_and_tolerance_factor(seed):
    gen = torch.Generator().manual_seed(seed)
    expected = torch.randn(64, 64, generator=gen, dtype=torch.float64)
    noise = torch.randn(64, 64, generator=gen, dtype=torch.float64)
    actual = expected + 1e-3 * noise
    stats = compare(actual, expected)
    assert stats.max_abs == pytest.approx(float((1e-3 * noise).abs().max()))
    assert stats.rel_norm == pytest.approx(
        float(torch.linalg.norm(1e-3 * noise) / torch.linalg.norm(expected))
    )
    assert not stats.within("fp32")
    assert stats.within("fp32", factor=1000)
    assert ErrorStats(0.0, 0.0, 0).within("fp64")
    with pytest.raises(ValueError, match="shape"):
        compare(actual[:, :3], expected)


# -- sweep --------------------------------------------------------------------------------
def test_sweep_records_every_pair_with_reasons():
    from attnbench.sweep import sweep

    w = Workload(1, 4, 2, 64, 96, 32, dtype="fp32")
    seen = []
    records = sweep(["chunked", "sdpa-cudnn"], [w], device=CPU, on_record=seen.append)
    assert [(r.impl, r.workload) for r in records] == [("chunked", w.name), ("sdpa-cudnn", w.name)]
    assert seen == records  # the baseline (eager) is measured, not recorded
    ok, skipped = records
    assert ok.ok and ok.reason is None
    assert ok.time.n >= 5 and ok.time.median > 0
    assert ok.tflops == pytest.approx(rates(w, ok.time.median).tflops)
    assert ok.speedup is not None and ok.speedup > 0
    assert ok.max_abs_error < 2e-4 and ok.nonfinite == 0
    assert ok.host_peak_rss > 0 and ok.gpu_peak_allocated is None
    # where the pair's seconds went, each phase timed, together within the pair's wall time
    phases = ok.extra["phase_seconds"]
    assert set(phases) == {"prepare", "timing", "memory", "error"}
    assert all(v >= 0 for v in phases.values()), phases
    assert phases["timing"] > 0.05  # time_cpu samples for at least its minimum time
    assert sum(phases.values()) <= ok.extra["wall_seconds"] + 0.005
    assert not skipped.ok and "needs a CUDA device" in skipped.reason
    assert skipped.time is None and skipped.speedup is None
    assert skipped.as_dict()["reason"] == skipped.reason


def test_sweep_survives_a_crashing_implementation(monkeypatch):
    from attnbench.sweep import sweep

    def crash(q, k, v, *, causal, scale):
        raise ZeroDivisionError("tile count")

    # chunked's math, which its forward (and the bind derived from it) calls; undone after
    monkeypatch.setattr("attnbench.impls.chunked.chunked_attention", crash)
    w = Workload(1, 2, 2, 16, 16, 16, dtype="fp32")
    records = sweep(["chunked", "eager"], [w], device=CPU, baseline=None)
    assert [r.impl for r in records] == ["chunked", "eager"]
    assert "ZeroDivisionError: tile count" in records[0].reason
    assert records[1].ok and records[1].speedup is None  # no baseline asked for


def test_sweep_collects_each_pair_s_cycles_and_unfreezes(monkeypatch):
    """Between pairs only what the sweep made is collected (the rest frozen: fast), yet a
    case's reference cycle is gone before the next pair; afterwards nothing stays frozen."""
    import gc
    import weakref

    from attnbench import sweep as sweep_mod

    class Node:
        pass

    alive, frozen = [], []

    def fake_measure(case, mode, *, errors, reference):
        frozen.append(gc.get_freeze_count())
        alive.append(None if not refs else refs[-1]() is not None)
        node = Node()
        node.self = node  # a cycle: refcounting alone never frees it
        refs.append(weakref.ref(node))
        return sweep_mod.Record(case.impl.name, case.workload.name, mode, "cpu")

    refs: list = []
    monkeypatch.setattr(sweep_mod, "measure_case", fake_measure)
    before = gc.get_freeze_count()
    w = Workload(1, 2, 2, 16, 16, 16, dtype="fp32")
    sweep_mod.sweep(["chunked", "eager"], [w], device=CPU, baseline=None)
    assert all(n > 0 for n in frozen)  # the sweep's start froze the process's objects
    assert alive == [None, False]  # the first pair's cycle was collected before the second
    assert gc.get_freeze_count() == before


# -- GPU timing method, GPU state, plausibility (logic only: no GPU here) ------------------
def _fake_cuda_timers(monkeypatch, plain_s: float, graph=None, host_s: float = 0.0):
    """time_cuda with do_bench and graph replay faked: plain calls take ``plain_s`` each and
    ``host_s`` to enqueue; ``graph`` is a list of replay times, or an exception raised by the
    capture."""
    from attnbench.measure import timing

    seen = {"graph": 0, "settle_ms": [], "host_calls": [], "rep_ms": []}

    def settle(fn, ms):
        seen["settle_ms"].append(ms)
        return plain_s

    def events(fn, warmup_ms, rep_ms):
        seen["rep_ms"].append(rep_ms)
        return [plain_s] * 9

    def replayer(fn):
        seen["graph"] += 1
        if isinstance(graph, Exception):
            raise graph
        return lambda rep_ms: graph

    def host(fn, calls):
        seen["host_calls"].append(calls)
        return host_s

    monkeypatch.setattr(timing, "settle", settle)
    monkeypatch.setattr(timing, "_event_samples", events)
    monkeypatch.setattr(timing, "_graph_replayer", replayer)
    monkeypatch.setattr(timing, "_host_seconds", host)
    return seen


def test_short_calls_are_timed_as_graph_replays(monkeypatch):
    from attnbench.measure.timing import GRAPH_BELOW_S, time_cuda

    seen = _fake_cuda_timers(monkeypatch, 20e-6, graph=[9e-6, 9e-6, 9e-6])
    s = time_cuda(lambda: None)
    assert (s.clock, s.median, s.n, seen["graph"]) == ("cuda_graph", 9e-6, 3, 1)
    assert "CUDA-graph replay (plain median 20.0 us)" == s.note
    seen = _fake_cuda_timers(monkeypatch, GRAPH_BELOW_S * 2, graph=[1e-6])
    long = time_cuda(lambda: None)
    assert (long.clock, long.median, long.note, seen["graph"]) == (
        "cuda_event", GRAPH_BELOW_S * 2, None, 0)  # fmt: skip
    assert time_cuda(lambda: None, graph=True).clock == "cuda_graph"  # forced
    _fake_cuda_timers(monkeypatch, 1e-6, graph=[1e-7])
    assert time_cuda(lambda: None, graph=False).clock == "cuda_event"  # never


def test_launch_bound_calls_are_timed_as_graph_replays(monkeypatch):
    """A call whose host side is HOST_BOUND_FRACTION of its plain median or more is timed as
    replays; the host side is the median of up to 20 calls, about 50 ms of them."""
    from attnbench.measure.timing import HOST_BOUND_FRACTION, HOST_SAMPLE_CALLS, time_cuda

    plain = 200e-6
    seen = _fake_cuda_timers(monkeypatch, plain, graph=[60e-6] * 3, host_s=plain * 0.9)
    s = time_cuda(lambda: None)
    assert (s.clock, s.median, seen["graph"]) == ("cuda_graph", 60e-6, 1)
    assert s.note == "CUDA-graph replay (launch-bound: enqueue 180.0 us, plain median 200.0 us)"
    assert seen["host_calls"] == [HOST_SAMPLE_CALLS] and HOST_SAMPLE_CALLS >= 10
    assert HOST_BOUND_FRACTION <= 0.25  # a method flip is harmless only where the GPU never waits
    at = plain * HOST_BOUND_FRACTION  # a fifth of the device time: replays already
    _fake_cuda_timers(monkeypatch, plain, graph=[190e-6] * 3, host_s=at)
    assert time_cuda(lambda: None).clock == "cuda_graph"
    below = plain * HOST_BOUND_FRACTION * 0.99  # kernel-bound: the events time the kernels
    seen = _fake_cuda_timers(monkeypatch, plain, graph=[60e-6], host_s=below)
    assert (time_cuda(lambda: None).clock, seen["graph"]) == ("cuda_event", 0)
    seen = _fake_cuda_timers(monkeypatch, 20e-3, host_s=0.0)  # a slow call: a few times
    time_cuda(lambda: None)
    assert seen["host_calls"] == [2]


def test_the_clock_settles_before_timing(monkeypatch):
    """The call runs untimed for ATTNBENCH_SETTLE_MS first (the SM clock leaves its idle boost)."""
    from attnbench.measure.timing import time_cuda
    from attnbench.settings import settle_ms

    seen = _fake_cuda_timers(monkeypatch, 1e-3)
    time_cuda(lambda: None)
    time_cuda(lambda: None, settle_ms=0)  # still one call: how long one takes
    time_cuda(lambda: None, settle_ms=50)
    assert settle_ms() > 0 and seen["settle_ms"] == [settle_ms(), 0, 50]


def test_a_long_call_is_sampled_long_enough_for_several_samples(monkeypatch):
    """do_bench's 100 ms would hold one sample of a 130 ms call: the sampling time grows to
    MIN_SAMPLES calls (and each further batch to half of that); a short call keeps 100 ms."""
    from attnbench.measure.timing import MIN_SAMPLES, time_cuda

    seen = _fake_cuda_timers(monkeypatch, 1e-3)
    time_cuda(lambda: None, rep_ms=100)
    assert seen["rep_ms"] == [100]
    seen = _fake_cuda_timers(monkeypatch, 0.130)
    time_cuda(lambda: None, rep_ms=100)
    first = seen["rep_ms"][0]
    assert first / 130 >= MIN_SAMPLES >= 4, seen["rep_ms"]


def test_failed_capture_keeps_plain_timing_with_a_note(monkeypatch):
    from attnbench.measure.timing import time_cuda

    err = RuntimeError("operation not permitted when stream is capturing")
    _fake_cuda_timers(monkeypatch, 10e-6, graph=err)
    s = time_cuda(lambda: None)
    assert (s.clock, s.median) == ("cuda_event", 10e-6)
    assert s.note == (
        "CUDA-graph capture failed (RuntimeError: operation not permitted when stream is "
        "capturing): plain timing"
    )
    assert s.as_dict()["note"] == s.note


def test_samples_are_two_halves_then_batches_until_two_in_a_row_agree(monkeypatch):
    """One do_bench's samples, in order, are two batches; further batches of half the
    sampling time follow until two in a row have medians within STEADY_TOLERANCE and are one
    population together: those two are the figure."""
    from attnbench.measure import timing

    asked = []

    def batches(*samples):
        it = iter(samples)

        def events(fn, warmup_ms, rep_ms):
            asked.append((warmup_ms, rep_ms))
            return next(it)

        return events

    _fake_cuda_timers(monkeypatch, 0.0)
    halves = [1.000e-3] * 9 + [1.009e-3] * 9  # within 1 %: steady, one do_bench only
    monkeypatch.setattr(timing, "_event_samples", batches(halves))
    s = timing.time_cuda(lambda: None, warmup_ms=25, rep_ms=100)
    assert (s.n, s.note, s.min, s.max) == (18, None, 1.000e-3, 1.009e-3)
    assert asked == [(25, 100)]
    # the halves disagree: one batch more (no warm-up, half the sampling time), which agrees
    asked.clear()
    first = [1.68e-3] * 9 + [1.76e-3] * 9
    monkeypatch.setattr(timing, "_event_samples", batches(first, [1.77e-3] * 9))
    s = timing.time_cuda(lambda: None, warmup_ms=25, rep_ms=100)
    assert (s.median, s.n) == (pytest.approx(1.765e-3), 18)
    assert s.note == "steady after 3 batches (medians 1680.0, 1760.0, 1770.0 us)"
    assert asked == [(25, 100), (0.0, 50)]
    # a call longer than half the sampling time gives one sample: taken as it is
    monkeypatch.setattr(timing, "_event_samples", batches([0.6]))
    assert timing.time_cuda(lambda: None).n == 1
    assert not timing.TimingStats.from_samples([1.0, 9.0, 9.0], "x").unstable  # too few


def test_samples_that_never_settle_are_pooled_and_say_not_steady(monkeypatch):
    """Four batches with no two in a row agreeing (another process on the GPU, a clock
    swinging under the power limit): every batch's samples pooled, noted "not steady"; a
    record with that note carries a caution."""
    from attnbench.measure import timing
    from attnbench.sweep import cautions

    two = [1.8e-3] * 3 + [4.3e-3] * 22  # H100, sdpa-math decode kv4096, one whole run
    it = iter([two + [3.0e-3] * 25, two, [2.5e-3] * 9])
    _fake_cuda_timers(monkeypatch, 0.0)
    monkeypatch.setattr(timing, "_event_samples", lambda fn, w, r: next(it))
    s = timing.time_cuda(lambda: None)
    assert s.n == 25 + 25 + 25 + 9 and s.min == 1.8e-3 and s.max == 4.3e-3
    assert s.median == statistics.median(two + [3.0e-3] * 25 + two + [2.5e-3] * 9) == 4.3e-3
    assert s.note == ("not steady: 4 batches (medians 4300.0, 3000.0, 4300.0, 2500.0 us); "
                      "all pooled, 2.39x its minimum")  # fmt: skip
    assert cautions({"time": {"note": s.note}}) == [s.note]
    # two batches that agree but are two populations together are not steady either
    it = iter([two + two, two, two])
    s = timing.time_cuda(lambda: None)
    assert s.note.startswith("not steady: 4 batches") and s.note.endswith(", 2.39x its minimum")
    # H200, triton-flash prefill (689c0f5, run A): a first batch before the clock fell under
    # the power limit, then three swinging by 1 %; the lowest batch would be the first
    first, *rest = [[m * 1e-6] * 10 for m in (452.2, 483.3, 477.9, 472.7)]
    it = iter([first + rest[0], *rest[1:]])
    s = timing.time_cuda(lambda: None)
    assert s.note.startswith("not steady: 4 batches") and s.median == pytest.approx(475.3e-6)
    # older records said "timed twice": still a caution
    old = "CUDA-graph replay (x); timed twice: median 4300.0 us was 2.39x"
    assert cautions({"time": {"note": old}}) == ["timed twice: median 4300.0 us was 2.39x"]


def test_graph_replays_are_captured_once_and_sampled_until_steady(monkeypatch):
    from attnbench.measure import timing

    seen = _fake_cuda_timers(monkeypatch, 20e-6)
    runs = iter([[5e-6] + [15e-6] * 9 + [10e-6] * 10, [10e-6] * 10])
    monkeypatch.setattr(timing, "_graph_replayer",
                        lambda fn: seen.__setitem__("graph", seen["graph"] + 1) or
                        (lambda rep_ms: next(runs)))  # fmt: skip
    s = timing.time_cuda(lambda: None)
    assert (s.clock, s.median, seen["graph"]) == ("cuda_graph", 10e-6, 1)
    assert s.note == ("CUDA-graph replay (plain median 20.0 us); steady after 3 batches "
                      "(medians 15.0, 10.0, 10.0 us)")  # fmt: skip


def test_nvidia_smi_parsing():
    from attnbench.measure.gpu_state import gpu_state, parse_smi

    assert parse_smi("1980, 45\n") == {"sm_clock_mhz": 1980, "temperature_c": 45,
                                       "source": "nvidia-smi"}  # fmt: skip
    assert parse_smi("[N/A], 45") is None and parse_smi("") is None
    assert gpu_state(CPU) is None  # nothing GPU-ish on the CPU


def test_compute_processes_from_nvidia_smi_and_nvml(monkeypatch):
    """The processes holding a CUDA context on the GPU: above 1, another program shared it."""
    import types

    from attnbench.measure import gpu_state as gs

    assert gs.parse_smi_apps("4242, 81000\n977, 512\n") == {
        "compute_processes": 2, "process_mib": [81000, 512]}  # fmt: skip
    assert gs.parse_smi_apps("") == {"compute_processes": 0, "process_mib": []}
    assert gs.parse_smi_apps("4242, [N/A]") == {"compute_processes": 1, "process_mib": [None]}
    assert gs.parse_smi_apps("No running processes found") == {}
    assert gs.shared_with_others({"compute_processes": 2})
    assert not gs.shared_with_others({"compute_processes": 1})
    assert not gs.shared_with_others({"sm_clock_mhz": 1980}) and not gs.shared_with_others(None)

    procs = [types.SimpleNamespace(pid=1, usedGpuMemory=3 * 2**30),
             types.SimpleNamespace(pid=2, usedGpuMemory=None)]  # fmt: skip
    fake = types.SimpleNamespace(
        NVML_CLOCK_SM=0, NVML_TEMPERATURE_GPU=0, nvmlInit=lambda: None,
        nvmlDeviceGetHandleByPciBusId=lambda pci: "h", nvmlDeviceGetHandleByIndex=lambda i: "h",
        nvmlDeviceGetClockInfo=lambda h, c: 1980, nvmlDeviceGetTemperature=lambda h, t: 50,
        nvmlDeviceGetComputeRunningProcesses=lambda h: procs,
    )  # fmt: skip
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(gs.torch.cuda, "get_device_properties", lambda d: types.SimpleNamespace())
    monkeypatch.setattr(gs.torch.cuda, "current_device", lambda: 0)
    cuda = torch.device("cuda", 0)
    assert gs._pynvml(cuda) == {"sm_clock_mhz": 1980, "temperature_c": 50, "source": "nvml",
                                "compute_processes": 2, "process_mib": [3072, None]}  # fmt: skip

    def refused(handle):
        raise RuntimeError("NVML_ERROR_NO_PERMISSION")

    fake.nvmlDeviceGetComputeRunningProcesses = refused  # clock and temperature still read
    assert gs._pynvml(cuda) == {"sm_clock_mhz": 1980, "temperature_c": 50, "source": "nvml"}


def test_clock_limits_name_nvml_s_reason_bits(monkeypatch):
    """Why the SM clock is held down, read at the end of a measurement (NVML's reason mask)."""
    import types

    from attnbench.measure import gpu_state as gs

    assert gs.clock_limit_names(0x1 | 0x4) == ["sw_power_cap"]  # idle is not a limit
    assert gs.clock_limit_names(0x4 | 0x20 | 0x40) == ["sw_power_cap", "sw_thermal", "hw_thermal"]
    assert gs.clock_limit_names(0) == []
    old_driver = types.SimpleNamespace(nvmlDeviceGetCurrentClocksThrottleReasons=lambda h: 0x8)
    assert gs._clock_limits(old_driver, "h") == ["hw_slowdown"]  # the pre-12.2 name
    new = types.SimpleNamespace(nvmlDeviceGetCurrentClocksEventReasons=lambda h: 0x4)
    assert gs._clock_limits(new, "h") == ["sw_power_cap"]
    assert gs._clock_limits(types.SimpleNamespace(), "h") is None  # NVML cannot say


def _tiny_case():
    return prepare("eager", Workload(1, 2, 2, 32, 32, 16, dtype="fp32"), CPU)


def test_measure_case_records_gpu_state_and_checks_rates(monkeypatch):
    import attnbench.sweep as sweep_mod
    from attnbench.measure.rates import Rates

    readings = iter([{"sm_clock_mhz": 1980, "temperature_c": 40, "source": "fake"},
                     {"sm_clock_mhz": 1755, "temperature_c": 61, "source": "fake"}])  # fmt: skip
    monkeypatch.setattr(sweep_mod, "gpu_state", lambda device: next(readings))
    monkeypatch.setattr(sweep_mod, "device_name", lambda device: "NVIDIA H100 80GB HBM3")
    rec = sweep_mod.measure_case(_tiny_case(), errors=False)
    assert rec.ok and rec.extra["gpu_state"]["start"]["sm_clock_mhz"] == 1980
    assert rec.extra["gpu_state"]["end"]["temperature_c"] == 61
    assert "plausibility" not in rec.extra  # a known card, rates below its peak
    assert "shared_gpu" not in rec.extra  # no process count: nothing said
    # another program on the GPU at the end: said in the record and on stderr
    readings = iter([{"sm_clock_mhz": 1980, "compute_processes": 1},
                     {"sm_clock_mhz": 1980, "compute_processes": 2}])  # fmt: skip
    shared = sweep_mod.measure_case(_tiny_case(), errors=False)
    assert shared.ok and shared.extra["shared_gpu"].startswith(
        "1 processes on the GPU at the start, 2 at the end"
    )
    # a rate above the H100's bf16/fp32 peak: the record fails, with the reason, no figure
    monkeypatch.setattr(sweep_mod, "gpu_state", lambda device: None)
    monkeypatch.setattr(sweep_mod, "rates", lambda w, s, mode: Rates(5000.0, 1.0, 1.0))
    bad = sweep_mod.measure_case(_tiny_case(), errors=False)
    assert not bad.ok and bad.time is None and bad.tflops is None
    assert bad.reason.startswith("implausible rate, not published: 5000.0 TFLOP/s exceeds")
    assert bad.extra["rejected_median_seconds"] > 0
    # an unknown card: measured, with a note that nothing was checked
    monkeypatch.setattr(sweep_mod, "device_name", lambda device: "Mystery GPU")
    unknown = sweep_mod.measure_case(_tiny_case(), errors=False)
    assert unknown.ok and "rates not checked" in unknown.extra["plausibility"]
    # the CPU: no name, nothing checked, no note
    monkeypatch.setattr(sweep_mod, "device_name", lambda device: None)
    cpu = sweep_mod.measure_case(_tiny_case(), errors=False)
    assert cpu.ok and "plausibility" not in cpu.extra and "gpu_state" not in cpu.extra


def test_system_lists_backend_packages():
    from attnbench.system import OPTIONAL_PACKAGES

    for pkg in ("flash-attn", "flash-attn-4", "xformers", "triton", "nvidia-ml-py"):
        assert pkg in OPTIONAL_PACKAGES


def _modelled_clock(monkeypatch, ms_per_call):
    """time_cuda's samples from a model: a call at ``t`` ms of sampling takes
    ``ms_per_call(t)`` ms; returns the fake do_bench (``rewind()`` on it starts at 0 again)."""
    from attnbench.measure import timing

    clock = {"ms": 0.0}

    def events(fn, warmup_ms, rep_ms):
        out, end = [], clock["ms"] + warmup_ms + rep_ms
        while clock["ms"] < end:
            t = ms_per_call(clock["ms"])
            clock["ms"] += t
            if clock["ms"] > end - rep_ms:
                out.append(t / 1e3)
        return out

    events.rewind = lambda: clock.update(ms=0.0)
    _fake_cuda_timers(monkeypatch, 0.0)
    monkeypatch.setattr(timing, "_event_samples", events)
    return events


def test_a_clock_that_steps_down_while_sampled_is_sampled_until_it_has_settled(monkeypatch):
    """A model of H200 fa4 S=4096 in one run: 1.68 ms per call, then 1.77 ms once the clock
    steps down under the power limit, 55 ms into the sampling. One 100 ms batch (the rule
    before) read the faster clock; batches until steady read the settled one."""
    from attnbench.measure import timing

    events = _modelled_clock(monkeypatch, lambda ms: 1.68 if ms < 80 else 1.77)
    once = timing.TimingStats.from_samples(events(None, 25, 100), "x")
    assert once.median == pytest.approx(1.68e-3)
    events.rewind()
    s = timing.time_cuda(lambda: None)
    assert s.median == pytest.approx(1.77e-3), s
    assert s.note == "steady after 3 batches (medians 1680.0, 1770.0, 1770.0 us)"


def test_a_slow_drift_passes_as_steady(monkeypatch):
    """The rule's limit, kept in view: a clock that falls slowly (time constant 300 ms, under
    1 % per 50 ms batch) passes as steady after two batches, some 4 % from where it ends."""
    import math

    from attnbench.measure import timing

    _modelled_clock(monkeypatch, lambda ms: 1.68 + 0.09 * (1 - math.exp(-ms / 300)))
    s = timing.time_cuda(lambda: None)
    assert s.note is None and s.median < 0.97 * 1.77e-3, s


def test_sampled_error_of_packed_documents():
    """A workload large enough that its error is checked on a sample of the last query rows
    works with packed documents (the sample has fewer query rows than keys)."""
    from attnbench import Workload, prepare
    from attnbench.case import FULL_CHECK_PAIRS

    w = Workload(
        batch=1, q_heads=1, kv_heads=1, q_len=4224, kv_len=4224, head_dim=16, causal=True,
        dtype="fp32", scenario="prefill", documents=3,
    )  # fmt: skip
    assert w.q_len * w.kv_len > FULL_CHECK_PAIRS  # the sampled path
    err = prepare("eager", w, "cpu", seed=3).forward_error()
    assert err.within("fp32"), err
