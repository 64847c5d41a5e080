"""The glue between asv and attnbench: which parameters, and a case or a recorded skip.

``ATTNBENCH_SET`` picks the workloads (comma-separated sets, names or globs); by default the
``gpu`` set where CUDA is visible, else ``quick``. ``ATTNBENCH_IMPLS`` likewise picks
implementations (default: every benchmarked one, less those that compile when there is no GPU).
An implementation that can run nothing here (package missing or broken, wrong device) is left
out of the metric classes; ``availability.Availability`` records it with its reason. One that
cannot run a particular workload skips that parameter with its reason.

Two kinds of classes, so that asv's process per (benchmark, parameters) stays cheap:
- ``_Swept``: ``track_*`` figures, all measured once per class in ``setup_cache`` by
  :func:`attnbench.sweep.sweep` (CUDA events, L2 flushed), then read back per parameter. One
  class per scenario (prefill, masked prefill, decode, train), so that each class's sweep is a
  few minutes on an H100 and a killed run loses one class (``tools.ci.bench`` shards by class).
- ``_Timed``: ``time_*``/``peakmem_*``, asv's own clock and RSS around a prepared case. asv
  starts a process per parameter (CUDA start-up, imports, compilation: seconds each), so on a
  GPU these run on ``TIMED_WORKLOADS`` only, the first prefill workload (``ATTNBENCH_TIMED_SET``
  picks others, train ones included); on the CPU on every workload.

Every class has an explicit ``version``: asv hides results recorded under another version, so
a cosmetic edit of this file does not orphan a machine's history; bump it when what a figure
means changes. With ``ATTNBENCH_RECORDS=DIR``, each sweep also appends its full records (GPU
clock and temperature before and after, kernel config, wall seconds) as JSON lines to
``DIR/<commit>.jsonl``: asv keeps only the figures.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # no CUDA init before forkserver forks
# one allocator setting for every process: a sweep that met an OOM does not fragment the next case
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import torch
from asv_runner.benchmarks.mark import skip_benchmark_if

from attnbench import (
    UnsupportedError,
    impl_names,
    prepare,
    select_impls,
    select_workloads,
)
from attnbench.case import Case
from attnbench.sweep import sweep

HAS_CUDA = torch.cuda.is_available()


def _from_env(var: str, default: list[str]) -> list[str]:
    value = os.environ.get(var, "").strip()
    return [p.strip() for p in value.split(",") if p.strip()] if value else default


# asv runs this working tree's benchmarks/ against every commit's installed attnbench: use
# only API that older commits have too (catalogue.default_set is newer, hence spelled out).
# A set newer than the commit measured is spelled out here by workload names its catalogue
# has: ``history`` (catalogue._history, kept equal by a test) resolves this way on every
# commit since 3c5dbc8; the in-house kernels it is for exist since 7c4b034.
NEWER_SETS = {
    "history": [
        "mha32-d128/prefill/s4096/b4/causal/bf16",
        "mha32-d128/prefill/s4096/b4/full/bf16",
        "llama3-8b/prefill/s4096/b1/causal/bf16",
        "gpt2-small/prefill/s4096/b1/causal/bf16",
        "gemma-d256/prefill/s4096/b1/causal/bf16",
        "mla-192-128/prefill/s4096/b1/causal/bf16",
        "llama3-8b/decode/kv4096/b8/causal/bf16",
        "llama3-8b/decode/kv16384/b8/causal/bf16",
        "mha32-d128/train/s4096/b4/causal/bf16",
        "gpt2-small/train/s4096/b1/causal/bf16",
        "gemma-d256/train/s4096/b1/causal/bf16",
        "mla-192-128/train/s4096/b1/causal/bf16",
    ],
}


def _select_workloads(patterns: list[str]) -> list:
    """``select_workloads``, with a set the installed catalogue lacks taken from NEWER_SETS."""
    chosen: dict = {}
    for pattern in patterns:
        try:
            found = select_workloads([pattern])
        except Exception:  # UnknownNameError (named otherwise, or absent, in older commits)
            if pattern not in NEWER_SETS:
                raise
            found = select_workloads(NEWER_SETS[pattern])
        for w in found:
            chosen.setdefault(w.name, w)
    return list(chosen.values())


ALL_WORKLOADS = _select_workloads(_from_env("ATTNBENCH_SET", ["gpu" if HAS_CUDA else "quick"]))
WORKLOADS = [w.name for w in ALL_WORKLOADS]


def _masked(w) -> bool:
    """A mask beyond causal/full (window, documents, ALiBi); older commits have no MaskSpec."""
    return bool(getattr(getattr(w, "mask", None), "features", None))


def _of(scenario: str, masked: bool | None = None) -> list[str]:
    return [
        w.name
        for w in ALL_WORKLOADS
        if w.scenario == scenario and (masked is None or _masked(w) == masked)
    ]


PREFILL_WORKLOADS = _of("prefill", masked=False)
MASKED_WORKLOADS = _of("prefill", masked=True)
DECODE_WORKLOADS = _of("decode")
TRAIN_WORKLOADS = _of("train")
FORWARD_WORKLOADS = PREFILL_WORKLOADS + MASKED_WORKLOADS + DECODE_WORKLOADS


def _timed(names: list[str]) -> list[str]:
    if "ATTNBENCH_TIMED_SET" in os.environ:
        chosen = {w.name for w in _select_workloads(_from_env("ATTNBENCH_TIMED_SET", []))}
        return [n for n in names if n in chosen]
    if not HAS_CUDA:
        return names
    # decode is left out: a call of tens of microseconds, whose wall time is launch and
    # synchronization (its device time is track_seconds, from CUDA-graph replays); each
    # process here costs seconds (CUDA start-up, compiling the case again): train's too, 3.8 s
    # a process, 35 s of a commit's 319 s H200 run (ATTNBENCH_TIMED_SET brings it back)
    prefill = [w.name for w in ALL_WORKLOADS if w.name in names and w.scenario == "prefill"]
    return prefill[:1]


TIMED_WORKLOADS = _timed(FORWARD_WORKLOADS)  # wall-time classes: forward
TIMED_TRAIN_WORKLOADS = _timed(TRAIN_WORKLOADS)
_BENCHMARKED = select_impls(impl_names(benchmarked_only=True))


def _default_impls() -> list[str]:
    """Without a GPU, compiling implementations (flex, *-compiled) are left out unless named:
    each asv process would compile every shape again on the CPU (seconds to tens of seconds
    each). With one, the ``nightly_only`` ones (attribute absent before it existed: kept), so
    that one commit's run takes minutes; ``ATTNBENCH_IMPLS=all`` names every benchmarked one."""
    if HAS_CUDA:
        return [i.name for i in _BENCHMARKED if not getattr(i, "nightly_only", False)]
    return [i.name for i in _BENCHMARKED if not getattr(i, "compiles", False)]


_CHOSEN = _from_env("ATTNBENCH_IMPLS", _default_impls())
CANDIDATE_IMPLS = [i.name for i in (_BENCHMARKED if _CHOSEN == ["all"] else select_impls(_CHOSEN))]


def _can_probe() -> bool:
    """Whether availability is asked: not with ``ATTNBENCH_PROBE=0``, nor for a commit whose
    library has no :mod:`attnbench.availability` (older than 94e1345)."""
    if os.environ.get("ATTNBENCH_PROBE", "1") == "0":
        return False
    try:
        import attnbench.availability  # noqa: F401
    except ImportError:
        return False
    return True


def _availability(names: list[str]) -> dict[str, str | None]:
    """Why each implementation can run nothing here (``None``: it can), asked once in a child
    process and kept in a file for the run's other processes; unprobed, nothing is ruled out."""
    if not PROBED:
        return dict.fromkeys(names)
    from attnbench.availability import probe

    return probe(names, "cuda" if HAS_CUDA else "cpu")


PROBED = _can_probe()  # False: Availability reports n/a (unknown), not "can run"
AVAILABILITY = _availability(CANDIDATE_IMPLS)
# the metric classes' parameters: an implementation that can run nothing here would add only
# skipped processes (a third of them on the H100); Availability records why it is left out
IMPLS = [n for n in CANDIDATE_IMPLS if AVAILABILITY.get(n) is None]
# each sweep times this one too, for track_speedup_vs_eager; ATTNBENCH_BASELINE=none: no
# speedups, one implementation fewer to time (a history of many commits, say)
_BASELINE = os.environ.get("ATTNBENCH_BASELINE", "").strip() or "eager"
BASELINE = None if _BASELINE == "none" else _BASELINE
PARAM_NAMES = ["implementation", "workload"]


def skip(reason: str) -> None:
    """asv's skip, with the reason on stderr."""
    print(f"attnbench: skipped: {reason}", file=sys.stderr)
    raise NotImplementedError(reason)


_CASES: dict[tuple[str, str, str], Case] = {}  # asv re-runs setup() before every sample


def case_or_skip(impl: str, workload: str, mode: str = "forward") -> Case:
    """A prepared case (made once per process); if it cannot run here, asv's skip with the
    reason on stderr."""
    key = (impl, workload, mode)
    if key not in _CASES:
        try:
            _CASES[key] = prepare(impl, workload, mode=mode)
        except UnsupportedError as exc:
            skip(str(exc))
    return _CASES[key]


class _RecordsLog:
    """Appends each record, as a JSON line, to ``$ATTNBENCH_RECORDS/<commit>.jsonl``."""

    def __init__(self, path: str, suite: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.file = open(path, "a")
        self.suite, self.start = suite, time.monotonic()
        self.age = _process_age()  # seconds this process lived before its sweep began

    def __call__(self, rec) -> None:
        fields = rec if isinstance(rec, dict) else rec.as_dict()
        line = {"suite": self.suite, "t": round(time.monotonic() - self.start, 2)}
        line = {**line, "process_age": self.age, **fields}
        self.file.write(json.dumps(line, default=str) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _process_age() -> float | None:
    """Seconds since this process started (Linux; None elsewhere): with ``t``, where the time
    between asv starting a class's process and its first pair went."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return round(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 2)


def _records_log(suite: str) -> _RecordsLog | None:
    folder = os.environ.get("ATTNBENCH_RECORDS", "").strip()
    if not folder:
        return None
    commit = os.environ.get("ASV_COMMIT", "worktree")[:8]
    return _RecordsLog(os.path.join(folder, f"{commit}.jsonl"), suite)


def _label(method, text: str, unit: str | None = None):
    method.pretty_name = text
    if unit:
        method.unit = unit
    return method


class _Timed:
    """End-to-end wall time of a synchronized call (asv's clock), and host peak RSS."""

    version = "attnbench-timed-1"
    mode = "forward"
    param_names = PARAM_NAMES
    number = 1  # one call per sample (setup runs before each: case_or_skip caches the case)
    # wall time is the secondary figure (device-event medians are the track_* ones): a few
    # samples, at most 1 s, keep asv's process per parameter cheap across a 25 x 20 GPU grid
    repeat = (3, 20, 1.0)
    warmup_time = 0.1
    rounds = 1
    timeout = 300

    def setup(self, impl, workload):
        self.case = case_or_skip(impl, workload, self.mode)


class _Swept:
    """Figures from attnbench's own timing, all pairs measured once per class.

    Each concrete class defines its own ``setup_cache`` calling :meth:`measure`: asv keys the
    cache by the source location of ``setup_cache``, so one inherited method would be shared
    by every subclass (train figures would be read from the forward sweep).
    """

    version = "attnbench-swept-1"
    mode = "forward"
    param_names = PARAM_NAMES
    rounds = 1
    timeout = 3600  # setup_cache measures the whole class

    def measure(self):
        impls, workloads = self.params
        log = _records_log(type(self).__name__)
        try:
            records = sweep(impls, workloads, self.mode, baseline=BASELINE, on_record=log)
        finally:
            if log is not None:
                log.close()
        return {(r.impl, r.workload): r.as_dict() for r in records}

    def setup(self, cache, impl, workload):
        self.rec = cache[(impl, workload)]
        if self.rec["reason"]:
            skip(self.rec["reason"])

    def track_seconds(self, cache, impl, workload):
        return self.rec["time"]["median"]

    def track_tflops(self, cache, impl, workload):
        return self.rec["tflops"]

    def track_gbps(self, cache, impl, workload):
        return self.rec["gbps"]

    def track_speedup_vs_eager(self, cache, impl, workload):
        speedup = self.rec["speedup"]
        return float("nan") if speedup is None else speedup

    @skip_benchmark_if(not HAS_CUDA)
    def track_gpu_peak_memory(self, cache, impl, workload):
        return self.rec["gpu_peak_allocated"]

    def track_max_error(self, cache, impl, workload):
        return self.rec["max_abs_error"]

    def track_rel_error(self, cache, impl, workload):
        return self.rec["rel_error"]

    def track_compile_seconds(self, cache, impl, workload):
        seconds = (self.rec.get("extra") or {}).get("first_call_seconds")
        # NaN (asv's n/a) where a commit does not record it: asv counts an exception raised
        # in the benchmark itself (not in setup) as a failure, not a skip
        return float("nan") if seconds is None else seconds

    _label(track_seconds, "median time (CUDA events, L2 flushed / CPU clock)", "seconds")
    _label(track_tflops, "TFLOP/s (higher is better)", "TFLOP/s")
    _label(track_gbps, "GB/s over the fewest bytes to move (higher is better)", "GB/s")
    _label(track_speedup_vs_eager, "speedup vs eager, same process (higher is better)", "x")
    _label(track_gpu_peak_memory, "GPU peak allocated, inputs included", "bytes")
    _label(track_max_error, "forward max abs error vs float64 reference", "abs error")
    _label(track_rel_error, "forward relative norm error vs float64 reference", "rel error")
    _label(track_compile_seconds, "first call: bind + compile/JIT (not in timings)", "seconds")
