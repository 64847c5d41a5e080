"""The glue between asv and attnbench: which parameters, and a case or a recorded skip.

``ATTNBENCH_SET`` picks the workloads (comma-separated sets, names or globs); by default the
``gpu`` set where CUDA is visible, else ``quick``. ``ATTNBENCH_IMPLS`` likewise picks
implementations (default: every benchmarked one; those that cannot run here skip with a reason).
"""

from __future__ import annotations

import os
import sys

import torch
from asv_runner.benchmarks.mark import skip_benchmark_if

from attnbench import UnsupportedError, impl_names, prepare, select_impls, select_workloads
from attnbench.case import Case
from attnbench.measure.rates import rates


def _from_env(var: str, default: list[str]) -> list[str]:
    value = os.environ.get(var, "").strip()
    return [p.strip() for p in value.split(",") if p.strip()] if value else default


WORKLOAD_SET = _from_env("ATTNBENCH_SET", ["gpu" if torch.cuda.is_available() else "quick"])
ALL_WORKLOADS = select_workloads(WORKLOAD_SET)
WORKLOADS = [w.name for w in ALL_WORKLOADS]
TRAIN_WORKLOADS = [w.name for w in ALL_WORKLOADS if w.has_backward]
IMPLS = [i.name for i in select_impls(_from_env("ATTNBENCH_IMPLS", impl_names(benchmarked_only=True)))]
BASELINE = "eager"
PARAM_NAMES = ["implementation", "workload"]


def case_or_skip(impl: str, workload: str, mode: str = "forward") -> Case:
    """A prepared case; if it cannot run here, the reason on stderr and asv's skip."""
    try:
        return prepare(impl, workload, mode=mode)
    except UnsupportedError as exc:
        print(f"attnbench: skipped: {exc}", file=sys.stderr)
        raise NotImplementedError(str(exc)) from None


def _label(method, text: str, unit: str | None = None):  # noqa: ANN001, ANN202
    method.pretty_name = text
    if unit:
        method.unit = unit
    return method


class _CaseBenchmarks:
    """Shared by the suite's classes: one prepared case per (implementation, workload).

    ``time_*`` (asv's host clock around a synchronized call) is the end-to-end wall time; the
    ``track_*`` figures come from attnbench's own timing (CUDA events with L2 flushed on a GPU).
    """

    mode = "forward"
    param_names = PARAM_NAMES
    number = 1  # one call per sample, so setup (inputs, warm-up) is not re-run per sample
    repeat = (5, 50, 3.0)
    warmup_time = 0.1
    rounds = 1
    timeout = 300

    def setup(self, impl, workload):
        self.case = case_or_skip(impl, workload, self.mode)

    def _rates(self):
        return rates(self.case.workload, self.case.time(self.mode).median, self.mode)

    def track_tflops(self, impl, workload):
        return self._rates().tflops

    def track_gbps(self, impl, workload):
        return self._rates().gbps

    @skip_benchmark_if(not torch.cuda.is_available())
    def track_gpu_peak_memory(self, impl, workload):
        return self.case.memory(self.mode).gpu_peak_allocated

    _label(track_tflops, "TFLOP/s (higher is better)", "TFLOP/s")
    _label(track_gbps, "GB/s over the fewest bytes to move (higher is better)", "GB/s")
    _label(track_gpu_peak_memory, "GPU peak allocated, inputs included", "bytes")


class _SpeedupBenchmarks:
    """Baseline time over implementation time, both measured in this one process."""

    mode = "forward"
    param_names = PARAM_NAMES
    rounds = 1
    timeout = 300

    def setup(self, impl, workload):
        self.case = case_or_skip(impl, workload, self.mode)
        self.baseline = case_or_skip(BASELINE, workload, self.mode)

    def track_speedup_vs_eager(self, impl, workload):
        return self.baseline.time(self.mode).median / self.case.time(self.mode).median

    _label(track_speedup_vs_eager, "speedup vs eager (higher is better)", "x")
