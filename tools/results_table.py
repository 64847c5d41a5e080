#!/usr/bin/env python3
"""Print a Markdown table of one asv results file: per workload, per implementation,
the track_* figures of attnbench's suite.

    python3 tools/results_table.py results/h100-x1/e3521b4d-virtualenv-py3.12.json
    python3 tools/results_table.py --matrix FILE   # workloads x implementations, one figure each

``--matrix``: one row per workload and mode (every ``*Metrics`` class), one column per
implementation that ran somewhere; the cell is TFLOP/s (prefill, train: forward+backward FLOPs)
or GB/s of the fewest bytes (decode); ``–`` where the pair was skipped.

    python3 tools/results_table.py --count FILE    # benchmarks, values, values measured
    python3 tools/results_table.py --spread A B    # two runs' medians, pair by pair
    python3 tools/results_table.py --spread A B --records RA RB   # ... with what the records say
    python3 tools/results_table.py --spread-records RA RB  # the records' medians (a cut-short run)
    python3 tools/results_table.py --costs RECORDS [RECORDS_B]   # where a sweep's time went
    python3 tools/results_table.py --history R1 R2 ...  # median us per pair, a column per commit

``--spread``: the relative difference of every pair's median time (``track_seconds``) between
two result files (two whole runs), largest first, with how many of the pairs at or above
100 µs agree within 2 %. With ``--records`` (each run's ``ATTNBENCH_RECORDS`` file) each pair
also gets its minimum's difference and each run's median / minimum (two populations of samples
read well above 1; drift moves the minimum with the median), a pair outside the tolerance its
kind ("within a run": samples spread in either run; "offset": both steady, apart), and a table
per class gives each run's median GPU temperature at the start of a pair and SM clock at its
end.

``--costs``: from ``ATTNBENCH_RECORDS`` files (one run, or two side by side), each class's
pairs, the seconds its sweep spent on them (``extra.wall_seconds``) and of those the first
calls (``first_call_seconds``: binding, compiling, JIT), the same seconds by phase
(``phase_seconds``: prepare, timing, memory, error) where records have them, then the
first-call seconds per implementation and the slowest first calls.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
from collections import Counter
from pathlib import Path

COLUMNS = {  # method of each *Metrics class -> (header, format)
    "track_seconds": ("median", "time"),
    "track_tflops": ("TFLOP/s", "{:.1f}"),
    "track_gbps": ("GB/s", "{:.0f}"),
    "track_speedup_vs_eager": ("vs eager", "{:.2f}x"),
    "track_gpu_peak_memory": ("GPU peak", "bytes"),
    "track_max_error": ("max abs err", "{:.1e}"),
}


def _fmt(value: float | None, how: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if how == "time":
        return f"{value * 1e6:.0f} µs" if value < 1e-3 else f"{value * 1e3:.2f} ms"
    if how == "bytes":
        return f"{value / 2**30:.2f} GiB"
    return how.format(value)


FORWARD_SUITES = ("forward.ForwardMetrics", "forward.MaskedMetrics", "forward.DecodeMetrics")


def _entries(data: dict, name: str):
    entry = dict(zip(data["result_columns"], data["results"].get(name, []), strict=False))
    if not entry:
        return
    pairs = itertools.product(*entry["params"])
    for (impl, workload), value in zip(pairs, entry["result"], strict=True):
        yield json.loads(impl.replace("'", '"')), json.loads(workload.replace("'", '"')), value


def table(path: Path, mode: str = "forward") -> str:
    data = json.loads(path.read_text())
    suites = FORWARD_SUITES if mode == "forward" else ("train.ForwardBackwardMetrics",)
    figures: dict[tuple[str, str], dict[str, str]] = {}
    for suite in suites:
        for bench, (header, how) in COLUMNS.items():
            for impl, workload, value in _entries(data, f"{suite}.{bench}"):
                figures.setdefault((workload, impl), {})[header] = _fmt(value, how)
    headers = ["workload", "implementation", *(h for h, _ in COLUMNS.values())]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    order = {w: i for i, w in enumerate(dict.fromkeys(w for w, _ in figures))}
    for (workload, impl), row in sorted(figures.items(), key=lambda kv: order[kv[0][0]]):
        if all(v == "n/a" for v in row.values()):
            continue
        cells = [workload, impl, *(row.get(h, "") for h, _ in COLUMNS.values())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


SUITES = {**dict.fromkeys(FORWARD_SUITES, "forward"), "train.ForwardBackwardMetrics": "fwd+bwd"}


def matrix(path: Path) -> str:
    data = json.loads(path.read_text())
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for suite, mode in SUITES.items():
        metric = "track_gbps" if suite.endswith("DecodeMetrics") else "track_tflops"
        for impl, workload, value in _entries(data, f"{suite}.{metric}"):
            ok = value is not None and not (isinstance(value, float) and math.isnan(value))
            cells.setdefault((workload, mode), {})[impl] = f"{value:.0f}" if ok else "–"
    impls = list(dict.fromkeys(i for row in cells.values() for i in row))
    used = [i for i in impls if any(row.get(i, "–") != "–" for row in cells.values())]
    lines = ["| workload | mode | " + " | ".join(used) + " |", "|---|---|" + "---|" * len(used)]
    for (workload, mode), row in cells.items():
        lines.append(
            f"| `{workload}` | {mode} | " + " | ".join(row.get(i, "–") for i in used) + " |"
        )
    return "\n".join(lines)


def _measured(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def count(path: Path) -> str:
    """How many benchmarks, values (benchmark x parameters) and measured values a file holds."""
    data = json.loads(path.read_text())
    benchmarks = values = measured = 0
    for row in data["results"].values():
        results = dict(zip(data["result_columns"], row, strict=False))["result"] or []
        benchmarks += 1
        values += len(results)
        measured += sum(_measured(v) for v in results)
    return f"{path.name}: {benchmarks} benchmarks, {values} values, {measured} measured"


def _records(path: Path) -> dict[tuple[str, str, str], dict]:
    """{(class, implementation, workload): record} of one ``ATTNBENCH_RECORDS`` file."""
    out = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("workload") and rec.get("time"):
            out[(rec["suite"], rec["impl"], rec["workload"])] = rec
    return out


def _state(rec: dict, when: str, key: str):
    return (((rec.get("extra") or {}).get("gpu_state") or {}).get(when) or {}).get(key)


def _conditions(records: list[dict]) -> list[str]:
    """Per class, each run's median start temperature and end SM clock."""
    lines = ["", "| class | run | pairs | start °C (median) | end SM MHz (median, min) |",
             "|---|---|---|---|---|"]  # fmt: skip
    classes = sorted({k[0] for recs in records for k in recs})
    for cls in classes:
        for name, recs in zip("AB", records, strict=True):
            mine = [r for k, r in recs.items() if k[0] == cls]
            temps = [t for r in mine if (t := _state(r, "start", "temperature_c")) is not None]
            clocks = [c for r in mine if (c := _state(r, "end", "sm_clock_mhz")) is not None]
            if not temps or not clocks:
                continue
            lines.append(
                f"| {cls} | {name} | {len(mine)} | {statistics.median(temps):.0f} | "
                f"{statistics.median(clocks):.0f}, {min(clocks)} |"
            )
    return lines


def costs(*paths: Path, top: int = 6) -> str:
    """Where the sweeps' time went, per class and per implementation, for one or more runs."""
    runs = [[json.loads(x) for x in p.read_text().splitlines()] for p in paths]
    runs = [[r for r in recs if r.get("workload")] for recs in runs]
    names = "AB"[: len(runs)] if len(runs) <= 2 else [str(i) for i in range(len(runs))]

    def extra(r: dict, key: str) -> float:
        return float((r.get("extra") or {}).get(key) or 0.0)

    lines = ["| class | run | pairs | sweep s | first calls s |", "|---|---|---|---|---|"]
    for cls in sorted({r["suite"] for recs in runs for r in recs}):
        for name, recs in zip(names, runs, strict=True):
            mine = [r for r in recs if r["suite"] == cls]
            wall = sum(extra(r, "wall_seconds") for r in mine)
            first = sum(extra(r, "first_call_seconds") for r in mine)
            lines.append(f"| {cls} | {name} | {len(mine)} | {wall:.1f} | {first:.1f} |")
    for name, recs in zip(names, runs, strict=True):
        wall = sum(extra(r, "wall_seconds") for r in recs)
        first = sum(extra(r, "first_call_seconds") for r in recs)
        lines.append(f"| all | {name} | {len(recs)} | {wall:.1f} | {first:.1f} |")
    lines += _phases(runs, names)
    per_impl: dict[str, list[float]] = {}
    for i, recs in enumerate(runs):
        for r in recs:
            per_impl.setdefault(r["impl"], [0.0] * len(runs))[i] += extra(r, "first_call_seconds")
    ranked = sorted(per_impl.items(), key=lambda kv: -max(kv[1]))[:top]
    lines += ["", "| implementation | " + " | ".join(f"first calls s, {n}" for n in names) + " |",
              "|---" * (len(runs) + 1) + "|"]  # fmt: skip
    lines += [f"| {impl} | " + " | ".join(f"{x:.1f}" for x in xs) + " |" for impl, xs in ranked]
    every = [(name, r) for name, recs in zip(names, runs, strict=True) for r in recs]
    slow = sorted(every, key=lambda nr: -extra(nr[1], "first_call_seconds"))[:top]
    lines += ["", "| run | class | implementation | workload | first call s |", "|---" * 5 + "|"]
    lines += [
        f"| {n} | {r['suite']} | {r['impl']} | `{r['workload']}` | "
        f"{extra(r, 'first_call_seconds'):.1f} |"
        for n, r in slow
    ]
    return "\n".join(lines)


PHASES = ("prepare", "timing", "memory", "error")


def _phases(runs: list[list[dict]], names) -> list[str]:
    """Per class and run, the sweep's seconds by phase (``extra.phase_seconds``: records of
    commits that write it); nothing when no record has them."""
    if not any((r.get("extra") or {}).get("phase_seconds") for recs in runs for r in recs):
        return []
    lines = ["", "| class | run | " + " | ".join(f"{p} s" for p in PHASES) + " |",
             "|---" * (len(PHASES) + 2) + "|"]  # fmt: skip
    for cls in sorted({r["suite"] for recs in runs for r in recs}):
        for name, recs in zip(names, runs, strict=True):
            got = [(r.get("extra") or {}).get("phase_seconds") or {} for r in recs
                   if r["suite"] == cls]  # fmt: skip
            sums = (sum(float(g.get(p) or 0.0) for g in got) for p in PHASES)
            lines.append(f"| {cls} | {name} | " + " | ".join(f"{x:.1f}" for x in sums) + " |")
    return lines


#: median / minimum at or above which a run's samples of a pair count as spread within the run
#: (H200, two runs of d20286f: each pair outside 2 % read 1.025 or more in one run, or 1.01 or
#: less in both, a steady offset between the runs)
WITHIN_RUN = 1.025


def _asv_medians(path: Path) -> dict[tuple[str, str, str], float]:
    """{(class, implementation, workload): measured ``track_seconds``} of one asv result file."""
    data = json.loads(path.read_text())
    return {
        (suite.split(".")[-1], impl, workload): value
        for suite in SUITES
        for impl, workload, value in _entries(data, f"{suite}.track_seconds")
        if _measured(value)
    }


def spread(
    path_a: Path | None,
    path_b: Path | None,
    min_seconds: float = 1e-4,
    tolerance: float = 0.02,
    records: tuple[Path, Path] | None = None,
) -> str:
    """Pair by pair, the relative difference of the median times of two runs, largest first;
    with ``records`` (each run's records file), minima and conditions too. With no asv files
    (``None``), the records' own medians: a run cut short leaves records but no asv file."""
    recs = [_records(p) for p in records] if records else None
    if path_a is not None and path_b is not None:
        a, b = _asv_medians(path_a), _asv_medians(path_b)
    elif recs:
        a, b = ({k: r["time"]["median"] for k, r in run.items()} for run in recs)
    else:
        raise ValueError("spread needs two asv result files or two records files")
    pairs = ((*key, a[key], b[key], b[key] / a[key] - 1) for key in a.keys() & b.keys())
    rows = sorted(pairs, key=lambda r: (-abs(r[-1]), r[:3]))  # ties by name: the same every time
    long = [r for r in rows if min(r[3], r[4]) >= min_seconds]
    within = sum(abs(r[-1]) <= tolerance for r in long)
    short = [r for r in rows if r not in long]
    header = "| class | implementation | workload | run A | run B | B/A − 1 |"
    if recs:
        header += " min B/A − 1 | A median/min | B median/min | kind |"
    lines = [
        f"{len(long)} pairs at or above {min_seconds * 1e6:.0f} µs in both runs: {within} within "
        f"{tolerance:.0%}" + (f", largest {long[0][-1]:+.1%}" if long else ""),
        f"{len(short)} shorter pairs" + (f": largest {short[0][-1]:+.1%}" if short else ""),
        "",
        header,
        "|---" * header.count(" | ") + "|---|",
    ]
    kinds: Counter[str] = Counter()
    for suite, impl, workload, ta, tb, rel in rows:
        line = (
            f"| {suite} | {impl} | `{workload}` | {_fmt(ta, 'time')} | {_fmt(tb, 'time')} "
            f"| {rel:+.1%} |"
        )
        if recs:
            ra, rb = (r.get((suite, impl, workload), {}).get("time") or {} for r in recs)
            if ra.get("min") and rb.get("min"):
                spread_a, spread_b = ra["median"] / ra["min"], rb["median"] / rb["min"]
                kind = ""
                if abs(rel) > tolerance and min(ta, tb) >= min_seconds:
                    kind = "within a run" if max(spread_a, spread_b) >= WITHIN_RUN else "offset"
                    kinds[kind] += 1
                line += (
                    f" {rb['min'] / ra['min'] - 1:+.1%} | {spread_a:.2f} | {spread_b:.2f} "
                    f"| {kind} |"
                )
            else:
                line += " | | | |"
        lines.append(line)
    if kinds:
        lines[0] += "; outside it: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    if recs:
        lines += _conditions(recs)
    return "\n".join(lines)


def history(*paths: Path) -> str:
    """Median time (us) per (implementation, workload, mode) across records files, one column
    per file in the order given (a commit each: the file name's stem); '-' where not measured."""
    runs = [{(r, w, m): rec for (_, r, w), rec in _records(p).items() for m in [rec["mode"]]}
            for p in paths]  # fmt: skip
    keys = sorted({k for run in runs for k in run})
    head = "| implementation | workload | " + " | ".join(p.stem[:7] for p in paths) + " |"
    lines = [head, "|---|---|" + "---|" * len(paths)]
    for impl, workload, mode in keys:
        cells = [f"{run[(impl, workload, mode)]['time']['median'] * 1e6:.0f}"
                 if (impl, workload, mode) in run else "-" for run in runs]  # fmt: skip
        lines.append(f"| {impl} | `{workload}` {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """The command line (the module docstring's forms): what to print."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--matrix", action="store_true", help="workloads x implementations")
    how.add_argument("--count", action="store_true", help="benchmarks, values, values measured")
    how.add_argument("--spread", action="store_true", help="two asv files (runs A, B) compared")
    how.add_argument("--spread-records", action="store_true", help="two records files compared")
    how.add_argument("--costs", action="store_true", help="records files: where time went")
    how.add_argument("--history", action="store_true", help="records files: medians by commit")
    parser.add_argument("--records", nargs=2, type=Path, metavar=("RA", "RB"),
                        help="with --spread: each run's ATTNBENCH_RECORDS file")  # fmt: skip
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.records and not args.spread:
        parser.error("--records goes with --spread")
    if args.spread or args.spread_records:
        if len(args.files) != 2:
            parser.error("two files: run A's and run B's")
        if args.spread:
            return spread(*args.files, records=tuple(args.records) if args.records else None)
        return spread(None, None, records=tuple(args.files))
    if args.costs:
        return costs(*args.files)
    if args.history:
        return history(*args.files)
    show = count if args.count else matrix if args.matrix else table
    return "\n".join(show(path) for path in args.files)


if __name__ == "__main__":
    print(main())
