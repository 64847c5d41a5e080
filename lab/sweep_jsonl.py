#!/usr/bin/env python3
"""Sweep a workload set (forward, then train) over every registered implementation, one JSON
line per record, written as each record is made: a run cut short keeps what it measured.

    python lab/sweep_jsonl.py gpu records/h100-x1/sweep/COMMIT-gpu.jsonl
    python lab/sweep_jsonl.py --table records/h100-x1/sweep/COMMIT-gpu.jsonl   # Markdown

Measures through attnbench.sweep.sweep (the asv suite's path): CUDA events with the L2 cache
flushed, speedup against eager timed in the same process, error against the float64 reference.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path


def run(set_name: str, out: Path) -> None:
    from attnbench import impl_names, select_workloads
    from attnbench.sweep import sweep

    workloads = select_workloads([set_name])
    impls = impl_names(benchmarked_only=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with out.open("a") as f:

        def write(rec) -> None:
            d = rec.as_dict()
            d["t"] = round(time.monotonic() - start, 1)
            f.write(json.dumps(d, default=str) + "\n")
            f.flush()
            print(f"{d['t']:7.1f}s {rec.impl:15s} {rec.workload:46s} {rec.mode:16s} "
                  + ("ok" if rec.ok else f"skip: {rec.reason[:100]}"), flush=True)  # fmt: skip

        sweep(impls, workloads, "forward", baseline="eager", on_record=write)
        train = [w for w in workloads if w.has_backward]
        sweep(impls, train, "forward_backward", baseline="eager", on_record=write)


def table(path: Path) -> str:
    """Workloads x implementations: TFLOP/s (prefill, train) or GB/s (decode); '–' = skipped."""
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    impls = list(dict.fromkeys(r["impl"] for r in recs))
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for r in recs:
        cell = "–"
        if not r["reason"]:
            decode = "/decode/" in r["workload"]
            value = r["gbps"] if decode else r["tflops"]
            cell = "–" if value is None or math.isnan(value) else f"{value:.0f}"
        rows.setdefault((r["workload"], r["mode"]), {})[r["impl"]] = cell
    used = [i for i in impls if any(row.get(i, "–") != "–" for row in rows.values())]
    lines = ["| workload | mode | " + " | ".join(used) + " |", "|---|---|" + "---|" * len(used)]
    for (workload, mode), row in rows.items():
        cells = " | ".join(row.get(i, "") for i in used)
        lines.append(f"| `{workload}` | {mode} | {cells} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--table"]:
        print(table(Path(sys.argv[2])))
    else:
        run(sys.argv[1], Path(sys.argv[2]))
