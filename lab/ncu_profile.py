"""Why one attention implementation is slower than another: Nsight Compute counters of one
steady-state call of each, side by side (H100; needs ``ncu`` and a CUDA device).

    python lab/ncu_profile.py                      # triton-flash, fa4, sdpa-cudnn; S=4096 forward
    python lab/ncu_profile.py --mode forward --mode forward_backward --json out.json
    python lab/ncu_profile.py --mode forward --mode forward_backward --with-timing --json out.json
    python lab/ncu_profile.py -i triton-flash -w h32d128/train/s4096/b4/causal/bf16 \\
        -m forward_backward
    python lab/ncu_profile.py --ncu /opt/nvidia/nsight-compute/2025.3.1/ncu --dry-run

For each ``--impl`` x ``--workload`` x ``--mode`` the script runs ``ncu`` on a child process of
itself (``--child``): the child prepares the case on CUDA (``attnbench.prepare``: inputs, JIT,
warm-up), calls the step twice more and synchronizes, then makes one call between
``torch.cuda.profiler.start()`` and ``stop()`` (cudaProfilerStart/Stop; synchronized before the
stop). ncu runs with ``--profile-from-start off``, so it profiles only the kernels launched in
that range: every kernel of one steady-state call. The range belongs to the CUDA context, not to
a thread, so it holds the backward's kernels too, which PyTorch launches from its autograd
thread. (An NVTX range filter matched no kernel at all on an H100 with Nsight Compute 2025.3.1.)
ncu runs with ``--clock-control none`` (the clock the card sustains, as attnbench's timings see
it) and the sections SpeedOfLight, ComputeWorkloadAnalysis, WarpStateStats, Occupancy,
LaunchStats and SchedulerStats, plus raw metrics (``--metrics``; default: tensor-pipe and XU-pipe
utilisation, local loads/stores, the warp-stall reasons per issued instruction), checked first
against ``ncu --query-metrics`` (a metric ncu still refuses is dropped: that case runs again
without the extra metrics). Output: ``--csv --page details --print-units base --log-file``,
parsed per kernel. ``--budget`` (default 520 s) stops starting new cases, so that a run fits a
10-minute slot; what was measured is kept.

A prefill workload under ``--mode forward_backward`` is profiled as its train twin (same shape,
``/train/``). Workload names: catalogue names (``python -m attnbench list``) or the generic
``h{Hq}[kv{Hkv}]d{D}/{prefill|train|decode}/s{S}/b{B}/{full|causal}/{dtype}``.

Prints, per case, one table (metrics x kernels) and, at the end, a comparison of the cases (their
longest kernel's figures and the kernels' summed duration; with ``--with-timing`` also
attnbench's own median of the same call for each profiled case, timed in a separate process
without ncu). Writes everything parsed (raw rows per kernel, the ncu command lines, versions) as
JSON to ``--json`` (default ``$OUT/ncu_profile.json`` where ``OUT`` is set). An implementation
that cannot run is reported as a skip; a failing ncu or timing prints its last lines; the exit
code is 1 only if nothing at all was profiled, 2 if ncu cannot be found.
"""

from __future__ import annotations

import argparse
import csv
import glob
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve()
#: what delimits the profiled call: the CUDA profiler API (per CUDA context, so every thread)
RANGE = "cudaProfilerStart/Stop"
SECTIONS = (
    "SpeedOfLight",
    "ComputeWorkloadAnalysis",
    "WarpStateStats",
    "Occupancy",
    "LaunchStats",
    "SchedulerStats",
)
DEFAULT_IMPLS = ("triton-flash", "fa4", "sdpa-cudnn")
DEFAULT_WORKLOAD = "h32d128/prefill/s4096/b4/full/bf16"
MODES = ("forward", "forward_backward")
#: where ncu is looked for after PATH: the newest Nsight Compute install, then the CUDA toolkit's
NCU_GLOBS = ("/opt/nvidia/nsight-compute/*/ncu", "/usr/local/cuda/bin/ncu")

TENSOR_ALL = "sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_active"
TENSOR_HMMA = "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active"
PIPE_XU = "sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active"
LOCAL_LD = "smsp__sass_inst_executed_op_local_ld.sum"
LOCAL_ST = "smsp__sass_inst_executed_op_local_st.sum"
STALL_PREFIX = "smsp__average_warps_issue_stalled_"
STALL_SUFFIX = "_per_issue_active.ratio"
#: Hopper's warp states (gmma and imc_miss exist on sm_90); "selected" is issuing, not a stall
STALL_REASONS = (
    "barrier",
    "branch_resolving",
    "dispatch_stall",
    "drain",
    "gmma",
    "imc_miss",
    "lg_throttle",
    "long_scoreboard",
    "math_pipe_throttle",
    "membar",
    "mio_throttle",
    "misc",
    "no_instruction",
    "not_selected",
    "selected",
    "short_scoreboard",
    "sleeping",
    "tex_throttle",
    "wait",
)
DEFAULT_METRICS = (
    TENSOR_ALL,
    TENSOR_HMMA,
    PIPE_XU,
    LOCAL_LD,
    LOCAL_ST,
    *(f"{STALL_PREFIX}{r}{STALL_SUFFIX}" for r in STALL_REASONS),
)

# -- units --------------------------------------------------------------------------------
TO_US = {
    "ns": 1e-3,
    "nsecond": 1e-3,
    "us": 1.0,
    "usecond": 1.0,
    "ms": 1e3,
    "msecond": 1e3,
    "s": 1e6,
    "second": 1e6,
}
TO_GHZ = {
    "hz": 1e-9,
    "khz": 1e-6,
    "mhz": 1e-3,
    "ghz": 1.0,
    "cycle/second": 1e-9,
    "cycle/msecond": 1e-6,
    "cycle/usecond": 1e-3,
    "cycle/nsecond": 1.0,
}
TO_BYTES = {
    "byte": 1.0,
    "kbyte": 1e3,
    "mbyte": 1e6,
    "gbyte": 1e9,
    "kib": 1024.0,
    "kibyte": 1024.0,
    "mib": 1024.0**2,
    "mibyte": 1024.0**2,
}


def parse_number(text: str | None) -> float | None:
    """``"1,234.5"`` -> 1234.5; ``""``, ``"n/a"`` and other non-numbers -> None."""
    if text is None:
        return None
    s = text.strip().replace(",", "").rstrip("%").strip()
    try:
        return float(s)
    except ValueError:
        return None


def _scaled(value: float | None, unit: str, table: dict[str, float]) -> float | None:
    if value is None:
        return None
    u = unit.strip().lower().removesuffix("/block").strip()
    if not u:
        return value
    return value * table[u] if u in table else None


def duration_us(value: float | None, unit: str) -> float | None:
    return _scaled(value, unit, TO_US)


def freq_ghz(value: float | None, unit: str) -> float | None:
    return _scaled(value, unit, TO_GHZ)


def kib(value: float | None, unit: str) -> float | None:
    b = _scaled(value, unit, TO_BYTES)
    return None if b is None else b / 1024


def plain(value: float | None, unit: str) -> float | None:
    return value


# -- ncu's CSV ----------------------------------------------------------------------------
def parse_ncu_csv(text: str) -> list[dict[str, str]]:
    """The rows of ``ncu --csv --page details`` output, one dict per row keyed by the header.

    Lines before the header (``"ID",...``) and ncu's own lines (``==PROF==``, ``==WARNING==``)
    are skipped. ncu ends a metric's row after its value (``...,"2618933446.07",``: the rule
    columns empty), so a shorter row is padded with empty cells; a longer one is dropped."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        return []
    body = [line for line in lines[start:] if line.strip() and not line.startswith("==")]
    reader = csv.reader(body)
    header = next(reader)
    n = len(header)
    return [
        dict(zip(header, row + [""] * (n - len(row)), strict=True))
        for row in reader
        if len(row) <= n
    ]


def group_kernels(rows: list[dict[str, str]]) -> list[dict]:
    """Rows grouped per profiled kernel launch (process, ID), in launch order."""
    kernels: dict[tuple[str, str], dict] = {}
    for row in rows:
        if not row.get("Metric Name", "").strip():
            continue  # a rule's row
        key = (row.get("Process ID", ""), row.get("ID", ""))
        k = kernels.setdefault(
            key,
            {
                "id": row.get("ID", ""),
                "name": row.get("Kernel Name", ""),
                "block": row.get("Block Size", ""),
                "grid": row.get("Grid Size", ""),
                "rows": [],
            },
        )
        k["rows"].append(
            {
                "section": row.get("Section Name", ""),
                "name": row["Metric Name"].strip(),
                "unit": row.get("Metric Unit", "").strip(),
                "value": row.get("Metric Value", ""),
            }
        )
    return sorted(kernels.values(), key=lambda k: (parse_number(k["id"]) or 0, k["id"]))


def short_name(name: str, width: int = 40) -> str:
    """A kernel's name without ``void``, its parameter list and cutlass's ``device_kernel<>``
    wrapper, cut to ``width`` characters."""
    s = " ".join(name.split())
    s = re.sub(r"^void\s+", "", s)
    if s.endswith(")"):
        depth = 0
        for i in range(len(s) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(s[i], 0)
            if depth == 0:
                s = s[:i].rstrip() if i > 0 else s
                break
    s = re.sub(r"^cutlass::device_kernel<(.*)>$", r"\1", s)
    return s if len(s) <= width else s[: width - 3] + "..."


# -- what is reported of a kernel ---------------------------------------------------------
#: key, label, metric names (first present wins; "~text" matches a name containing text), unit
FIELDS: tuple[tuple[str, str, tuple[str, ...], object], ...] = (
    ("duration_us", "Duration [us]", ("Duration", "gpu__time_duration.sum"), duration_us),
    ("sm_ghz", "SM Frequency [GHz]", ("SM Frequency",), freq_ghz),
    ("sm_pct", "Compute (SM) Throughput [%]", ("Compute (SM) Throughput", "SM Throughput"), plain),
    ("mem_pct", "Memory Throughput [%]", ("Memory Throughput",), plain),
    (
        "tensor_pct",
        "Tensor pipe active [% peak]",
        (TENSOR_ALL, "~Tensor", TENSOR_HMMA),
        plain,
    ),
    ("hmma_pct", "  HMMA-op cycles active [% peak]", (TENSOR_HMMA,), plain),
    ("xu_pct", "XU pipe (exp2, MUFU) [% peak]", (PIPE_XU,), plain),
    ("sm_busy_pct", "SM Busy (busiest pipe) [%]", ("SM Busy",), plain),
    ("issue_pct", "Issue Slots Busy [%]", ("Issue Slots Busy",), plain),
    ("issued_warp", "Issued Warp Per Scheduler", ("Issued Warp Per Scheduler",), plain),
    ("eligible", "Eligible Warps Per Scheduler", ("Eligible Warps Per Scheduler",), plain),
    ("no_eligible_pct", "No Eligible [%]", ("No Eligible",), plain),
    ("cpi", "Warp Cycles Per Issued Instr.", ("Warp Cycles Per Issued Instruction",), plain),
    ("regs", "Registers Per Thread", ("Registers Per Thread",), plain),
    ("local_ld", "Local loads (spills) [inst]", (LOCAL_LD,), plain),
    ("local_st", "Local stores (spills) [inst]", (LOCAL_ST,), plain),
    ("occ_pct", "Achieved Occupancy [%]", ("Achieved Occupancy",), plain),
    ("occ_theory_pct", "Theoretical Occupancy [%]", ("Theoretical Occupancy",), plain),
    ("smem_dyn_kib", "Dynamic Shared Mem/Block [KiB]", ("Dynamic Shared Memory Per Block",), kib),
    ("smem_static_kib", "Static Shared Mem/Block [KiB]", ("Static Shared Memory Per Block",), kib),
    ("block", "Block Size", ("Block Size",), plain),
    ("grid", "Grid Size", ("Grid Size",), plain),
    ("waves", "Waves Per SM", ("Waves Per SM",), plain),
)


def _lookup(rows: list[dict], names: tuple[str, ...]) -> dict | None:
    by_name = {}
    for r in rows:
        by_name.setdefault(r["name"], r)
    for n in names:
        if n.startswith("~"):
            hit = next(
                (
                    r
                    for r in rows
                    if n[1:].lower() in r["name"].lower() and parse_number(r["value"]) is not None
                ),
                None,
            )
        else:
            hit = by_name.get(n)
        if hit is not None and parse_number(hit["value"]) is not None:
            return hit
    return None


def stalls(rows: list[dict], cpi: float | None = None) -> list[dict]:
    """Warp-stall reasons, largest first: raw ``smsp__average_warps_issue_stalled_*`` metrics
    (warp cycles per issued instruction) or, where the section shows them, "Stall ..." rows.
    ``share`` = the reason's part of the warp cycles per issued instruction."""
    out: dict[str, float] = {}
    for r in rows:
        value, name = parse_number(r["value"]), r["name"]
        if value is None:
            continue
        if name.startswith(STALL_PREFIX) and name.endswith(STALL_SUFFIX):
            reason = name[len(STALL_PREFIX) : -len(STALL_SUFFIX)]
        elif name.lower().startswith("stall "):
            reason = name[6:].strip().lower().replace(" ", "_")
        else:
            continue
        if reason != "selected":
            out.setdefault(reason, value)
    ranked = sorted(out.items(), key=lambda kv: -kv[1])
    return [
        {"reason": k, "cycles_per_issue": v, "share": v / cpi if cpi else None} for k, v in ranked
    ]


def summarize(kernel: dict) -> dict:
    """One kernel's reported figures (FIELDS' keys, normalized units), its top stalls, and
    ``sources``: which ncu metric each figure was read from."""
    rows = kernel["rows"]
    out: dict = {"sources": {}}
    for key, _label, names, convert in FIELDS:
        hit = _lookup(rows, names)
        out[key] = convert(parse_number(hit["value"]), hit["unit"]) if hit else None
        if hit:
            out["sources"][key] = f"{hit['name']} [{hit['unit']}]"
    if out["block"] is None and kernel.get("block"):
        out["block"] = kernel["block"]
    if out["grid"] is None and kernel.get("grid"):
        out["grid"] = kernel["grid"]
    out["stalls"] = stalls(rows, out["cpi"])
    return out


def build_kernels(rows: list[dict[str, str]]) -> list[dict]:
    """Parsed CSV rows -> per kernel: id, name, short name, summary, raw rows."""
    kernels = group_kernels(rows)
    for k in kernels:
        k["short"] = short_name(k["name"])
        k["summary"] = summarize(k)
    return kernels


# -- tables -------------------------------------------------------------------------------
def fmt(x: object) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x == int(x) and abs(x) >= 1:
            return f"{int(x):,}" if abs(x) >= 1e5 else str(int(x))
        return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"
    return str(x)


def stall_text(s: dict) -> str:
    share = f" ({s['share']:.0%})" if s.get("share") is not None else ""
    return f"{s['reason']} {s['cycles_per_issue']:.2f}{share}"


def table(rows: list[list], headers: list[str]) -> str:
    """``tabulate`` where importable, else plain aligned columns."""
    try:
        from tabulate import tabulate

        return tabulate(rows, headers=headers, disable_numparse=True)
    except ImportError:
        cells = [headers, *[[str(c) for c in r] for r in rows]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(line.rstrip() for line in lines)


def case_table(case: dict, n_stalls: int = 3) -> str:
    """Metrics (rows) x kernels (columns) of one case, the kernels' names under it."""
    kernels = case["kernels"]
    headers = ["metric", *(f"k{i + 1}" for i in range(len(kernels)))]
    rows = [
        [label, *(fmt(k["summary"][key]) for k in kernels)] for key, label, _names, _conv in FIELDS
    ]
    for i in range(n_stalls):
        rows.append(
            [
                f"Stall #{i + 1} [cyc/issue (share)]",
                *(
                    stall_text(k["summary"]["stalls"][i])
                    if len(k["summary"]["stalls"]) > i
                    else "-"
                    for k in kernels
                ),
            ]
        )
    names = [f"  k{i + 1} = #{k['id']} {k['short']}" for i, k in enumerate(kernels)]
    return "\n".join([table(rows, headers), *names])


def main_kernel(case: dict) -> dict | None:
    """The case's longest kernel."""
    ks = [k for k in case.get("kernels", []) if k["summary"]["duration_us"] is not None]
    return max(ks, key=lambda k: k["summary"]["duration_us"]) if ks else None


SUMMARY_HEADERS = (
    "workload",
    "mode",
    "impl",
    "kernels",
    "sum ms (ncu)",
    "timed ms",
    "vs best",
    "longest kernel",
    "GHz",
    "tensor %",
    "issue %",
    "occ %",
    "regs",
    "top stall",
)


def summary_table(cases: list[dict]) -> str:
    """One row per case: summed kernel time, attnbench's time, the longest kernel's figures."""
    rows = []
    best: dict[tuple[str, str], float] = {}
    for c in cases:
        if c.get("sum_duration_us"):
            key = (c["profiled_workload"], c["mode"])
            best[key] = min(best.get(key, float("inf")), c["sum_duration_us"])
    for c in cases:
        k = main_kernel(c)
        if k is None:
            note = f"{c['status']}: {c.get('reason') or ''}"[:40]
            rows.append(
                [c["profiled_workload"], c["mode"], c["impl"], *["-"] * 4, note, *["-"] * 6]
            )
            continue
        s, total = k["summary"], c["sum_duration_us"]
        timing = c.get("timing") or {}
        t_ms = f"{timing['median_s'] * 1e3:.3f}" if timing.get("median_s") else "-"
        top = stall_text(s["stalls"][0]) if s["stalls"] else "-"
        best_us = best[(c["profiled_workload"], c["mode"])]
        rows.append([
            c["profiled_workload"], c["mode"], c["impl"], str(len(c["kernels"])),
            f"{total / 1e3:.3f}", t_ms, f"{total / best_us:.2f}", k["short"][:28],
            *(fmt(s[key]) for key in ("sm_ghz", "tensor_pct", "issue_pct", "occ_pct", "regs")),
            top,
        ])  # fmt: skip
    return table(rows, list(SUMMARY_HEADERS))


# -- finding and running ncu --------------------------------------------------------------
def _version_key(path: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path)]


def find_ncu(explicit: str | None = None) -> str | None:
    """``explicit`` if it is an executable file, else ``ncu`` on PATH, else the newest
    ``/opt/nvidia/nsight-compute/*/ncu``, else ``/usr/local/cuda/bin/ncu``; None if none is."""
    if explicit:
        found = shutil.which(explicit)
        return found if found and os.path.isfile(found) else None
    on_path = shutil.which("ncu")
    if on_path:
        return on_path
    for pattern in NCU_GLOBS:
        hits = [p for p in glob.glob(pattern) if os.path.isfile(p) and os.access(p, os.X_OK)]
        if hits:
            return max(hits, key=_version_key)
    return None


def _run_text(cmd: list[str], timeout: float = 60) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout + proc.stderr if proc.returncode == 0 else None


def ncu_version(ncu: str) -> str | None:
    text = _run_text([ncu, "--version"])
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return next((line for line in reversed(lines) if "version" in line.lower()), None) or (
        lines[-1] if lines else None
    )


def parse_metric_names(text: str) -> set[str]:
    """Base metric names of ``ncu --query-metrics [--csv]`` output (first column)."""
    names = set()
    for line in text.splitlines():
        first = line.strip().split(",")[0].split()[0] if line.strip() else ""
        first = first.strip('"')
        if re.fullmatch(r"[a-z0-9_]+__[a-z0-9_]+", first):
            names.add(first)
    return names


def usable_metrics(requested: list[str], available: set[str] | None) -> tuple[list, list]:
    """(kept, dropped): a metric is kept if its base name (before the first '.') is available.
    Without a usable list (None, or too short to be ncu's), everything is kept."""
    if not available or len(available) < 50:
        return list(requested), []
    kept = [m for m in requested if m.split(".")[0] in available]
    return kept, [m for m in requested if m not in kept]


def ncu_command(ncu: str, child: list[str], log_file: str, metrics: list[str]) -> list[str]:
    """The ncu command line that profiles the kernels ``child`` launches between
    cudaProfilerStart and cudaProfilerStop (in any of its processes)."""
    cmd = [ncu, *"--clock-control none --target-processes all --profile-from-start off".split()]
    for s in SECTIONS:
        cmd += ["--section", s]
    cmd += ["--csv", "--page", "details", "--print-units", "base", "--log-file", log_file]
    if metrics:
        cmd += ["--metrics", ",".join(metrics)]
    return [*cmd, *child]


def child_command(
    kind: str, impl: str, workload: str, mode: str, status: str, device: str
) -> list[str]:
    cmd = [sys.executable, str(SCRIPT), kind, "--impl", impl, "--workload", workload]
    cmd += ["--mode", mode, "--status", status]
    return cmd + (["--device", device] if device != "cuda" else [])


def _tail(*texts: str, n: int = 15) -> list[str]:
    lines = [
        line
        for t in texts
        for line in (t or "").splitlines()
        if line.strip() and not line.startswith('"')
    ]
    return lines[-n:]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def ncu_env() -> dict[str, str]:
    """The environment with C number formatting: ncu writes numbers in the user's locale
    ("2,75" for 2.75 in some), and the parser reads ',' as a thousands separator."""
    env = dict(os.environ)
    if env.get("LC_ALL"):  # it would override LC_NUMERIC; the other categories keep it
        env["LANG"] = env.pop("LC_ALL")
    env["LC_NUMERIC"] = "C"
    return env


def run_group(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None
) -> tuple[int | None, str]:
    """(exit code, or None on time-out; stdout + stderr). The command runs in its own process
    group, all of which is killed on time-out (ncu's target process with it)."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                text=True, errors="replace", start_new_session=True)  # fmt: skip
    except OSError as exc:
        return 127, str(exc)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out or ""
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out or ""


def run_ncu(cmd: list[str], log: Path, timeout: float) -> tuple[int | None, str, str]:
    """(exit code or None on time-out, the log's text, stdout + stderr)."""
    log.unlink(missing_ok=True)
    rc, out = run_group(cmd, timeout, ncu_env())
    text = log.read_text(errors="replace") if log.exists() else ""
    return rc, text, out


@dataclass
class Runner:
    """What the cases of one parent run share: ncu, its extra metrics, the limits."""

    ncu: str
    metrics: list[str]
    tmp: Path
    device: str = "cuda"
    timeout: float = 300.0
    budget: float = 520.0
    start: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        """Seconds of the budget left."""
        return self.budget - (time.perf_counter() - self.start)

    def _files(self, kind: str, impl: str, workload: str, mode: str) -> tuple[Path, Path]:
        tag = re.sub(r"[^A-Za-z0-9]+", "_", f"{kind}_{impl}_{workload}_{mode}")
        return self.tmp / f"{tag}.status.json", self.tmp / f"{tag}.ncu.csv"

    def profile(self, impl: str, workload: str, mode: str) -> dict:
        """One (impl, workload, mode) under ncu: the case's JSON record. Extra metrics that
        ncu refuses are dropped, for this case (ncu runs again) and the later ones."""
        status_path, log = self._files("ncu", impl, workload, mode)
        child = child_command("--child", impl, workload, mode, str(status_path), self.device)
        case: dict = {"impl": impl, "workload": workload, "mode": mode, "commands": []}
        t0 = time.perf_counter()
        for attempt in range(2):  # a retry gives up the extra metrics for good
            timeout = min(self.timeout, self.left())
            if attempt and timeout < 10:
                break
            status_path.unlink(missing_ok=True)
            cmd = ncu_command(self.ncu, child, str(log), self.metrics)
            case["commands"].append(cmd)
            rc, text, out = run_ncu(cmd, log, timeout)
            status = _read_json(status_path)
            kernels = build_kernels(parse_ncu_csv(text))
            case.update(child=status, ncu_exit=rc, metrics=self.metrics, kernels=kernels)
            case["ncu_tail"] = tail = _tail(text, out)
            if kernels or rc is None or status.get("status") in ("skip", "error"):
                break
            if not self.metrics or not _metrics_refused(tail) or _no_permission(tail):
                break
            print(f"  ncu refused the extra metrics: again without them ({rc=})", flush=True)
            self.metrics = []
        case["seconds"] = time.perf_counter() - t0
        case["profiled_workload"] = status.get("profiled_workload", workload)
        if status.get("status") == "skip":
            case.update(status="skip", reason=status.get("reason"))
        elif case["kernels"]:
            durations = [k["summary"]["duration_us"] for k in case["kernels"]]
            case.update(status="ok", sum_duration_us=sum(d for d in durations if d is not None))
        else:
            why = f"timed out after {timeout:.0f} s" if rc is None else f"ncu exit code {rc}"
            reason = f"child: {status['reason']}" if status.get("reason") else "no kernels profiled"
            case.update(status="error", reason=f"{reason} ({why})")
        return case

    def time_call(self, impl: str, workload: str, mode: str) -> dict:
        """attnbench's own timing of the same call, in a child without ncu."""
        status_path, _ = self._files("time", impl, workload, mode)
        cmd = child_command("--time-child", impl, workload, mode, str(status_path), self.device)
        if self.left() < 20:
            return {"status": "skip", "reason": f"budget of {self.budget:.0f} s spent"}
        rc, out = run_group(cmd, min(self.timeout, self.left()))
        status = _read_json(status_path)
        if rc is None:
            status.update(status="error", reason="timed out")
        elif not status.get("status"):  # it died before writing its status
            status.update(status="error", reason=f"time child exit code {rc}")
        return {**status, "command": cmd, "tail": _tail(out, n=5) if rc != 0 else []}

    def case(self, impl: str, workload: str, mode: str) -> dict:
        """Profiled, or skipped once the budget is spent."""
        if self.left() < 10:
            reason = f"budget of {self.budget:.0f} s spent"
            return {"impl": impl, "workload": workload, "mode": mode, "status": "skip",
                    "profiled_workload": workload, "reason": reason, "kernels": []}  # fmt: skip
        print(f"-- profiling {impl} | {workload} | {mode}", flush=True)
        return self.profile(impl, workload, mode)


def _metrics_refused(tail: list[str]) -> bool:
    """Do ncu's last lines blame a metric?"""
    return "metric" in " ".join(tail).lower()


def _no_permission(tail: list[str]) -> bool:
    """ncu may not read the counters (ERR_NVGPUCTRPERM): running again will not help."""
    return "ERR_NVGPUCTRPERM" in " ".join(tail)


# -- workloads ----------------------------------------------------------------------------
_NAME = re.compile(
    r"(?P<model>[^/]+)/(?P<scenario>prefill|decode|train)/"
    r"(?:s(?P<s>\d+)|q(?P<q>\d+)-kv(?P<qkv>\d+)|kv(?P<kv>\d+))/b(?P<b>\d+)/"
    r"(?P<mask>causal|full)(?:-win(?P<win>\d+))?(?:-docs(?P<docs>\d+))?(?P<alibi>-alibi)?/"
    r"(?P<dtype>\w+)"
)
_HEADS = re.compile(r"h(?P<hq>\d+)(?:kv(?P<hkv>\d+))?d(?P<d>\d+)(?:v(?P<dv>\d+))?")


def parse_workload(name: str):
    """A workload from its name: a catalogue name, or a generic ``h32d128/...`` one."""
    from attnbench import Workload, get_workload
    from attnbench.catalogue import MODELS
    from attnbench.errors import UnknownNameError

    try:
        return get_workload(name)
    except UnknownNameError:
        m = _NAME.fullmatch(name)
        heads = _HEADS.fullmatch(m["model"]) if m else None
        if not m or not (heads or m["model"] in MODELS):
            raise
    if heads:
        hq, d = int(heads["hq"]), int(heads["d"])
        hkv, dv = int(heads["hkv"] or hq), int(heads["dv"]) if heads["dv"] else None
        model = ""
    else:
        shape = MODELS[m["model"]]
        hq, hkv, d, dv, model = (
            shape.q_heads,
            shape.kv_heads,
            shape.head_dim,
            shape.v_head_dim,
            m["model"],
        )
    q = int(m["s"] or m["q"] or 1)
    kv = int(m["s"] or m["qkv"] or m["kv"])
    return Workload(
        int(m["b"]),
        hq,
        hkv,
        q,
        kv,
        d,
        causal=m["mask"] == "causal",
        dtype=m["dtype"],
        scenario=m["scenario"],
        v_head_dim=dv,
        window=int(m["win"]) if m["win"] else None,
        documents=int(m["docs"] or 1),
        alibi=bool(m["alibi"]),
        model=model,
    )


def resolve_workload(name: str, mode: str):
    """The workload profiled for ``name`` in ``mode``: a prefill workload's train twin under
    forward_backward."""
    w = parse_workload(name)
    if mode == "forward_backward" and w.scenario == "prefill":
        w = replace(w, scenario="train")
    return w


# -- the children -------------------------------------------------------------------------
def _versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for mod in ("torch", "triton"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception as exc:  # not installed, or broken
            out[mod] = f"unavailable ({type(exc).__name__})"
    return out


def _prepare(args, status: dict):
    """The prepared case, or None with status "skip"/"error" set."""
    import torch

    status.update(_versions())
    try:
        from attnbench import UnsupportedError, prepare

        w = resolve_workload(args.workload[0], args.mode[0])
        status["profiled_workload"] = w.name
        if args.device == "cuda":
            if not torch.cuda.is_available():
                status.update(status="skip", reason="no CUDA device visible")
                return None
            status["device"] = torch.cuda.get_device_name()
            status["capability"] = list(torch.cuda.get_device_capability())
        case = prepare(args.impl[0], w, args.device, mode=args.mode[0])
    except (UnsupportedError, ImportError) as exc:
        status.update(status="skip", reason=f"{type(exc).__name__}: {exc}")
        return None
    except Exception as exc:
        status.update(status="error", reason=f"{type(exc).__name__}: {str(exc)[:500]}")
        return None
    status["config"] = case.config
    return case


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def child_main(args) -> int:
    """Under ncu: prepare, two more calls, then one call between cudaProfilerStart and
    cudaProfilerStop (ncu's ``--profile-from-start off`` profiles only that range)."""
    import torch

    status: dict = {"impl": args.impl[0], "workload": args.workload[0], "mode": args.mode[0]}
    case = _prepare(args, status)
    if case is not None:
        mode, cuda = args.mode[0], args.device == "cuda"
        try:
            for _ in range(2):
                case.step(mode)
            _sync(args.device)
            if cuda:  # the context's launches from here on, the autograd thread's included
                torch.cuda.profiler.start()
            case.step(mode)
            _sync(args.device)
            if cuda:
                torch.cuda.profiler.stop()
            status["status"] = "ok"
        except Exception as exc:
            status.update(status="error", reason=f"{type(exc).__name__}: {str(exc)[:500]}")
    Path(args.status).write_text(json.dumps(status, default=str))
    return {"ok": 0, "skip": 3}.get(status["status"], 1)


def time_child_main(args) -> int:
    """attnbench's median of the call (``Case.time``), without ncu."""
    status: dict = {"impl": args.impl[0], "workload": args.workload[0], "mode": args.mode[0]}
    case = _prepare(args, status)
    if case is not None:
        try:
            stats = case.time(args.mode[0])
            status.update(status="ok", median_s=stats.median, clock=stats.clock, n=stats.n)
        except Exception as exc:
            status.update(status="error", reason=f"{type(exc).__name__}: {str(exc)[:500]}")
    Path(args.status).write_text(json.dumps(status, default=str))
    return 0 if status["status"] == "ok" else 1


# -- the parent ---------------------------------------------------------------------------
def write_json(path: Path | None, data: object) -> None:
    """``data`` as JSON to ``path``, else to ``$OUT/ncu_profile.json`` where OUT is set."""
    target = path or (Path(os.environ["OUT"]) / "ncu_profile.json" if "OUT" in os.environ else None)
    if target:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=1, default=str))


def print_case(case: dict) -> None:
    """The case's header line and table; a skip's reason; a failure's last ncu lines."""
    head = f"== {case['impl']} | {case['profiled_workload']} | {case['mode']}"
    if case["status"] != "ok":
        print(f"{head}: {case['status'].upper()}: {case.get('reason')}", flush=True)
        tail = case.get("ncu_tail") if case["status"] == "error" else None
        for line in tail or []:
            print(f"   | {line}")
        return
    total, n = case["sum_duration_us"] / 1e3, len(case["kernels"])
    print(f"{head}: {n} kernel(s), {total:.3f} ms summed under ncu ({case['seconds']:.0f} s)")
    print(case_table(case), flush=True)


def _package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-i", "--impl", action="append", help=f"default: {' '.join(DEFAULT_IMPLS)}")
    p.add_argument("-w", "--workload", action="append", help=f"default: {DEFAULT_WORKLOAD}")
    p.add_argument("-m", "--mode", action="append", choices=MODES, help="default: forward")
    p.add_argument("--ncu", help="the ncu executable (default: PATH, then /opt/nvidia/...)")
    p.add_argument(
        "--metrics",
        action="append",
        help="raw metrics beside the sections, comma-"
        "separated (repeatable; replaces the default list; 'none' for none)",
    )
    p.add_argument(
        "--no-metric-check",
        action="store_true",
        help="pass --metrics as given, without checking ncu --query-metrics",
    )
    p.add_argument(
        "--with-timing",
        action="store_true",
        help="also time each call with attnbench (a child without ncu)",
    )
    p.add_argument("--json", type=Path, help="where to write the JSON (default $OUT/...)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per ncu child")
    p.add_argument(
        "--budget",
        type=float,
        default=520.0,
        help="seconds: no new case starts after this (partial results are kept)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the ncu command lines only")
    p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # tests: cpu
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--time-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--status", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.impl = args.impl or list(DEFAULT_IMPLS)
    args.workload = args.workload or [DEFAULT_WORKLOAD]
    args.mode = list(dict.fromkeys(args.mode or ["forward"]))
    return args


def requested_metrics(args) -> list[str]:
    if not args.metrics:
        return list(DEFAULT_METRICS)
    items = [m.strip() for text in args.metrics for m in text.split(",") if m.strip()]
    return [] if items == ["none"] else list(dict.fromkeys(items))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    if args.time_child:
        return time_child_main(args)
    ncu = find_ncu(args.ncu)
    if ncu is None and not args.dry_run:
        where = args.ncu or f"ncu on PATH, {', '.join(NCU_GLOBS)}"
        print(
            f"ncu_profile: Nsight Compute's ncu not found ({where}); give it with --ncu PATH",
            file=sys.stderr,
        )
        return 2
    ncu = ncu or "ncu"
    try:
        from attnbench import get_impl

        for name in args.workload:
            resolve_workload(name, "forward")
        for name in args.impl:
            get_impl(name)  # registered even where it cannot run (that is a skip, later)
    except Exception as exc:  # an unknown or malformed name: say so before any profiling
        print(f"ncu_profile: {exc}", file=sys.stderr)
        return 2
    metrics = requested_metrics(args)
    dropped: list[str] = []
    if metrics and not args.no_metric_check and not args.dry_run:
        available = _run_text([ncu, "--query-metrics", "--csv"], timeout=120)
        metrics, dropped = usable_metrics(metrics, parse_metric_names(available or ""))
        if dropped:
            print(f"ncu_profile: not on this GPU/ncu, left out: {', '.join(dropped)}")
    result: dict = {
        "tool": "lab/ncu_profile.py",
        "argv": sys.argv if argv is None else argv,
        "ncu": {"path": ncu, "version": None if args.dry_run else ncu_version(ncu)},
        "sections": list(SECTIONS),
        "range": RANGE,
        "metrics_requested": requested_metrics(args),
        "metrics_used": metrics,
        "metrics_dropped": dropped,
        "torch": _package_version("torch"),
        "triton": _package_version("triton"),
        "flash_attn_4": _package_version("flash-attn-4"),
        "cases": [],
    }
    print(
        f"ncu: {ncu} ({result['ncu']['version']}); torch {result['torch']}, triton "
        f"{result['triton']}",
        flush=True,
    )
    if args.dry_run:
        for workload, mode, impl in itertools.product(args.workload, args.mode, args.impl):
            child = child_command("--child", impl, workload, mode, "STATUS.json", args.device)
            print(" ".join(ncu_command(ncu, child, "LOG.csv", metrics)))
        return 0
    with tempfile.TemporaryDirectory(prefix="ncu_profile_") as tmp:
        runner = Runner(ncu, metrics, Path(tmp), args.device, args.timeout, args.budget)
        for workload, mode, impl in itertools.product(args.workload, args.mode, args.impl):
            case = runner.case(impl, workload, mode)
            result["cases"].append(case)
            print_case(case)
            result["seconds"] = time.perf_counter() - runner.start
            write_json(args.json, result)
        if args.with_timing:  # after every profile: the counters come first
            for case in (c for c in result["cases"] if c["status"] == "ok"):
                print(f"-- timing {case['impl']} | {case['workload']} | {case['mode']}", flush=True)
                timing = runner.time_call(case["impl"], case["workload"], case["mode"])
                case["timing"] = timing
                if timing["status"] != "ok":
                    print(f"   {timing['status'].upper()}: {timing.get('reason')}", flush=True)
                    for line in timing.get("tail") or []:
                        print(f"   | {line}")
                result["seconds"] = time.perf_counter() - runner.start
                write_json(args.json, result)
    print("\nsummary (longest kernel of each call; sum ms = the call's kernels under ncu)")
    print(summary_table(result["cases"]))
    print(f"total {result.get('seconds', 0):.0f} s")
    return 0 if any(c["status"] == "ok" for c in result["cases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
