#!/usr/bin/env python3
"""Print a Markdown table of one asv results file: per workload, per implementation,
the track_* figures of attnbench's suite.

    python3 tools/results_table.py results/h100-x1/e3521b4d-virtualenv-py3.12.json
    python3 tools/results_table.py --matrix FILE   # workloads x implementations, one figure each

``--matrix``: one row per workload and mode (every ``*Metrics`` class), one column per
implementation that ran somewhere; the cell is TFLOP/s (prefill, train: forward+backward FLOPs)
or GB/s of the fewest bytes (decode); ``–`` where the pair was skipped.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
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


if __name__ == "__main__":
    args = sys.argv[1:]
    as_matrix = "--matrix" in args
    for arg in (a for a in args if a != "--matrix"):
        print(matrix(Path(arg)) if as_matrix else table(Path(arg)))
