"""Measure many (implementation, workload) pairs in one process: the record every consumer
reads (asv's ``track_*`` figures via ``setup_cache``, the CLI's tables, the tests).

A pair that cannot run is recorded with its reason; a failure never loses the other records.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch

from .case import Case, prepare
from .devices import resolve_device
from .errors import AttnbenchError, UnsupportedError
from .impls import Implementation
from .measure.gpu_state import device_name, gpu_state, shared_with_others
from .measure.peaks import ImplausibleRateError, check_plausible
from .measure.rates import rates
from .measure.timing import TimingStats
from .workload import Workload


@dataclass
class Record:
    """What was measured for one implementation on one workload, or why nothing was."""

    impl: str
    workload: str
    mode: str
    device: str
    reason: str | None = None  # set when skipped
    time: TimingStats | None = None
    tflops: float | None = None
    gbps: float | None = None
    tokens_per_s: float | None = None
    gpu_peak_allocated: int | None = None
    host_peak_rss: int | None = None
    host_extra_rss: int | None = None  # host peak above the resident set before the call
    max_abs_error: float | None = None
    rel_error: float | None = None
    nonfinite: int | None = None
    speedup: float | None = None  # baseline median time / this median time
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason is None

    def as_dict(self) -> dict:
        return asdict(self)


def cautions(rec: Record | dict) -> list[str]:
    """What a reader should know before trusting a record's time (a :class:`Record` or its
    JSON form): its samples never settled ("not steady"; records before batches were taken
    until steady say "timed twice"), or another program held the GPU meanwhile."""
    if isinstance(rec, Record):
        rec = {"time": rec.time.as_dict() if rec.time else None, "extra": rec.extra}
    found = []
    note = (rec.get("time") or {}).get("note") or ""
    for mark in ("not steady", "timed twice"):
        if mark in note:
            found.append(note[note.index(mark) :])
    if (rec.get("extra") or {}).get("shared_gpu"):
        found.append(rec["extra"]["shared_gpu"])
    return found


def measure_case(
    case: Case, mode: str = "forward", *, errors: bool = True, reference: dict | None = None
) -> Record:
    """Time (device-correct), rates, memory and (forward) error of a prepared case.

    The GPU's SM clock, temperature and compute processes are read before and after timing
    (``extra``; ``shared_gpu`` says when another program held the GPU meanwhile); a rate above
    the card's peak makes the record a failure whose reason says so."""
    clock = time.perf_counter
    t0 = clock()
    start = gpu_state(case.device)
    stats = case.time(mode)
    end = gpu_state(case.device)
    phases = {"timing": clock() - t0}
    r = rates(case.workload, stats.median, mode)
    name = device_name(case.device)
    if name is not None:
        try:
            note = check_plausible(name, case.workload.dtype, r.tflops, r.gbps)
        except ImplausibleRateError as exc:
            bad = Record(case.impl.name, case.workload.name, mode, case.device.type)
            bad.reason = f"implausible rate, not published: {exc}"
            bad.extra["rejected_median_seconds"] = stats.median
            bad.extra["gpu_state"] = {"start": start, "end": end}
            return bad
    t0 = clock()
    mem = case.memory(mode)
    phases["memory"] = clock() - t0
    rec = Record(
        case.impl.name,
        case.workload.name,
        mode,
        case.device.type,
        time=stats,
        tflops=r.tflops,
        gbps=r.gbps,
        tokens_per_s=r.tokens_per_s,
        gpu_peak_allocated=mem.gpu_peak_allocated,
        host_peak_rss=mem.host_peak_rss,
        host_extra_rss=mem.host_extra_rss,
    )
    rec.extra["first_call_seconds"] = case.first_call_seconds
    if start or end:
        rec.extra["gpu_state"] = {"start": start, "end": end}
    if shared_with_others(start) or shared_with_others(end):
        counts = [(r or {}).get("compute_processes", "?") for r in (start, end)]
        rec.extra["shared_gpu"] = (
            f"{counts[0]} processes on the GPU at the start, {counts[1]} at the end (this one "
            "included): another program may have slowed this figure"
        )
        print(f"attnbench: {rec.impl} {rec.workload}: {rec.extra['shared_gpu']}", file=sys.stderr)
    if name is not None and note:
        rec.extra["plausibility"] = note
    if case.config:
        rec.extra["config"] = case.config
    if errors:
        t0 = clock()
        err = case.forward_error(reference)
        rec.max_abs_error, rec.rel_error, rec.nonfinite = err.max_abs, err.rel_norm, err.nonfinite
        phases["error"] = clock() - t0
    # where this pair's seconds went (with the sweep's "prepare"): what a faster suite cuts
    rec.extra["phase_seconds"] = {k: round(v, 4) for k, v in phases.items()}
    return rec


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextmanager
def _collect_young_only() -> Iterator[None]:
    """Leave the objects alive when the sweep starts (modules, compile caches) out of the
    collections between pairs: a full ``gc.collect()`` in a process with torch and Inductor
    loaded takes about 0.2 s (CPU machine: 215 ms, then 6 ms frozen), once per pair."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()  # collectable again for the caller


def sweep(
    impls: Iterable[Implementation | str],
    workloads: Iterable[Workload | str],
    mode: str = "forward",
    device: str | torch.device | None = None,
    *,
    baseline: str | None = "eager",
    errors: bool = True,
    on_record: Callable[[Record], None] | None = None,
) -> list[Record]:
    """Measure every pair, workload by workload; ``speedup`` is against ``baseline``, timed
    in this same process (``None`` where the baseline cannot run the workload)."""
    device = resolve_device(device)
    by_name = {(i if isinstance(i, str) else i.name): i for i in impls}
    names = list(by_name)
    records: list[Record] = []
    with _collect_young_only():
        for workload in workloads:
            wname = workload if isinstance(workload, str) else workload.name
            row: dict[str, Record] = {}
            reference: dict = {}  # the float64 reference output, computed once per workload
            order = ([baseline] if baseline and baseline not in names else []) + names
            for name in order:
                start = time.perf_counter()
                try:
                    case = prepare(by_name.get(name, name), workload, device, mode=mode)
                    prepared = time.perf_counter() - start  # inputs, bind, first call
                    rec = measure_case(case, mode, errors=errors, reference=reference)
                    rec.extra.setdefault("phase_seconds", {})["prepare"] = round(prepared, 4)
                except (UnsupportedError, AttnbenchError) as exc:
                    rec = Record(name, wname, mode, device.type, reason=str(exc))
                except Exception as exc:
                    why = f"{type(exc).__name__}: {exc}"
                    rec = Record(name, wname, mode, device.type, reason=why)
                finally:
                    case = None
                    _free(device)
                # what this pair cost the run (set-up, compile, timing, memory, error)
                rec.extra["wall_seconds"] = round(time.perf_counter() - start, 3)
                row[name] = rec
            base = row.get(baseline) if baseline else None
            for name in names:
                rec = row[name]
                if rec.ok and base is not None and base.ok:
                    rec.speedup = base.time.median / rec.time.median
                records.append(rec)
                if on_record:
                    on_record(rec)
    return records
