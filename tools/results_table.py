#!/usr/bin/env python3
"""Print a Markdown table of one asv results file: per workload, per implementation,
the track_* figures of attnbench's suite.

    python3 tools/results_table.py results/h100-x1/e3521b4d-virtualenv-py3.12.json
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


def table(path: Path, mode: str = "forward") -> str:
    data = json.loads(path.read_text())
    cols = data["result_columns"]
    suites = FORWARD_SUITES if mode == "forward" else ("train.ForwardBackwardMetrics",)
    figures: dict[tuple[str, str], dict[str, str]] = {}
    for suite in suites:
        for bench, (header, how) in COLUMNS.items():
            name = f"{suite}.{bench}"
            if name not in data["results"]:
                continue
            entry = dict(zip(cols, data["results"][name], strict=False))
            pairs = itertools.product(*entry["params"])
            for (impl, workload), value in zip(pairs, entry["result"], strict=True):
                key = (json.loads(workload.replace("'", '"')), json.loads(impl.replace("'", '"')))
                figures.setdefault(key, {})[header] = _fmt(value, how)
    headers = ["workload", "implementation", *(h for h, _ in COLUMNS.values())]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    order = {w: i for i, w in enumerate(dict.fromkeys(w for w, _ in figures))}
    for (workload, impl), row in sorted(figures.items(), key=lambda kv: order[kv[0][0]]):
        if all(v == "n/a" for v in row.values()):
            continue
        cells = [workload, impl, *(row.get(h, "") for h, _ in COLUMNS.values())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(table(Path(arg)))
