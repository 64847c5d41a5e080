#!/usr/bin/env python3
"""Trials of the regression gate: how often it cries wolf, and what it catches.

In a scratch clone of HEAD, make a docs-only commit (A/A: nothing changed) and, for each
``--plant IMPL:FACTOR``, a commit that slows that implementation down by FACTOR (each call
takes FACTOR times its own time: after it, a busy wait of (FACTOR - 1) x its wall time in CPU
seconds, which a busy machine cannot shorten, on the CPU; on a GPU a sleep kernel after
it, calibrated once with ``triton.testing.do_bench`` as the suite times calls; a train step's
backward is not slowed). Then run the gate (tools.ci.gate, as a pull request gets it)
``--trials`` times on each, interleaved, and print: false failures of the A/A runs,
detections of each planted slowdown, and whether the figures the gate named as regressions
were the planted implementation's only.

    python -m tools.ci.gate_trial --machine cpu-2core-epyc --trials 10 --plant chunked:1.5
    python -m tools.ci.gate_trial --machine h200 --trials 3 --set gpu-inhouse \\
        --plant triton-flash:1.1 --plant triton-flash:1.05 --factor 1.05 --json trial.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from attnbench.atomic import write_text

from .pipeline import ROOT, PipelineError, log

# Appended to attnbench/impls/__init__.py in a planted commit (never merged anywhere).
PLANT = '''

def _planted_slowdown(name: str, factor: float) -> None:
    """gate trial: every call of ``name`` takes ``factor`` times its own time."""
    import time as _time

    import torch as _torch

    cls = type(get_impl(name))
    bind = cls.bind

    def slow_bind(self, workload, device):
        fn = bind(self, workload, device)
        cycles: list[int] = []

        def slow(*args):
            if device.type != "cuda":  # (factor - 1) x the call's time, in CPU seconds
                start = _time.perf_counter()
                out = fn(*args)
                end = _time.thread_time() + (factor - 1) * (_time.perf_counter() - start)
                while _time.thread_time() < end:
                    pass
                return out
            if not cycles:  # calibrated once, on the first (uncaptured) call, as timed
                from triton.testing import do_bench

                call_ms = do_bench(lambda: fn(*args), warmup=25, rep=100)
                per_million_ms = do_bench(lambda: _torch.cuda._sleep(1_000_000), rep=50)
                cycles.append(int((factor - 1) * call_ms / per_million_ms * 1e6))
            out = fn(*args)
            _torch.cuda._sleep(cycles[0])
            return out

        return slow

    cls.bind = slow_bind


_planted_slowdown({name!r}, {factor!r})
'''


#: the gate's options that name a path, which gate_trial passes on to it
PATH_OPTIONS = ("--comment", "--records")


@dataclass
class Outcome:
    """One gate run of one trial."""

    kind: str  # "A/A" or "IMPL xFACTOR"
    exit_code: int
    seconds: float
    regressions: list[str] = field(default_factory=list)  # "benchmark(params)" named failing
    unsure: int = 0


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=gate-trial", "-c", "user.email=t@t", *args]
    return subprocess.check_output(cmd, text=True).strip()


def scratch_clone(source: Path, into: Path) -> Path:
    """A clone of ``source``'s HEAD whose history asv can walk."""
    repo = into / "repo"
    subprocess.run(["git", "clone", "-q", str(source), str(repo)], check=True)
    return repo


def commit_docs_only(repo: Path) -> str:
    note = repo / "docs" / "gate-trial.md"
    note.write_text("A docs-only change made by tools.ci.gate_trial.\n")
    _git(repo, "add", str(note))
    _git(repo, "commit", "-q", "-m", "gate trial: docs only")
    return _git(repo, "rev-parse", "HEAD")


def commit_plant(repo: Path, base: str, impl: str, factor: float) -> str:
    _git(repo, "checkout", "-q", "--detach", base)
    init = repo / "src" / "attnbench" / "impls" / "__init__.py"
    init.write_text(init.read_text() + PLANT.format(name=impl, factor=factor))
    _git(repo, "commit", "-q", "-am", f"gate trial: {impl} {factor}x slower")
    return _git(repo, "rev-parse", "HEAD")


def run_gate(repo: Path, machine: str, base: str, head: str, gate_args: list[str], kind: str,
             out: Path) -> Outcome:  # fmt: skip
    rows_file = out / f"rows-{len(list(out.glob('rows-*')))}.json"
    # the scratch clone's own gate (python -m in its root, which is then searched first) and
    # library: edits to this checkout during a trial stay out
    path = os.pathsep.join(p for p in (str(repo / "src"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}  # what the caller's PYTHONPATH held stays found
    cmd = [sys.executable, "-m", "tools.ci.gate", "--repo", str(repo),
           "--machine", machine, "--base", base, "--head", head, "--json", str(rows_file),
           *gate_args]  # fmt: skip
    log(f"trial {kind}: " + " ".join(cmd[3:]))
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=repo)
    seconds = time.monotonic() - start
    (out / f"{rows_file.stem}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode not in (0, 1) or not rows_file.exists():
        raise PipelineError(f"the gate exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    rows = json.loads(rows_file.read_text())
    failing = [f"{r['benchmark']}({r['params']})" for r in rows if r["verdict"] in
               ("regression", "failed")]  # fmt: skip
    unsure = sum(r["verdict"] == "unsure" for r in rows)
    return Outcome(kind, proc.returncode, round(seconds, 1), failing, unsure)


def absolute_paths(gate_args: list[str]) -> list[str]:
    """``gate_args`` with the gate's path options (``--comment``, ``--records``) made absolute:
    the gate runs with the scratch clone as its working directory, the paths were given here."""
    out, path_next = [], False
    for arg in gate_args:
        name, eq, value = arg.partition("=")
        if path_next:
            arg = str(Path(arg).resolve())
        elif eq and name in PATH_OPTIONS:
            arg = f"{name}={Path(value).resolve()}"
        path_next = arg in PATH_OPTIONS
        out.append(arg)
    return out


def summarize(outcomes: list[Outcome], plants: list[tuple[str, float]]) -> list[str]:
    lines = ["| trial | runs | failed the job | named only the planted rows | unsure (median) "
             "| seconds (median) |", "|---|---|---|---|---|---|"]  # fmt: skip
    kinds = ["A/A"] + [f"{impl} x{factor:g}" for impl, factor in plants]
    for kind, (impl, _) in zip(kinds, [("", 0.0), *plants], strict=True):
        runs = [o for o in outcomes if o.kind == kind]
        if not runs:
            continue
        failed = sum(o.exit_code == 1 for o in runs)
        only = "" if kind == "A/A" else str(sum(
            o.exit_code == 1 and all(f"'{impl}'" in r for r in o.regressions) for o in runs
        ))  # fmt: skip
        unsure = sorted(o.unsure for o in runs)[len(runs) // 2]
        secs = sorted(o.seconds for o in runs)[len(runs) // 2]
        lines.append(f"| {kind} | {len(runs)} | {failed} | {only} | {unsure} | {secs:.0f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=ROOT, help="the project (its HEAD)")
    parser.add_argument("--machine", required=True, help="asv machine name")
    parser.add_argument("--trials", type=int, default=3, help="gate runs of each kind")
    parser.add_argument("--plant", action="append", default=[], metavar="IMPL:FACTOR",
                        help="a planted slowdown (repeatable)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write every outcome here")
    parser.add_argument("--keep", type=Path, help="scratch folder to keep (default: a temp one)")
    args, gate_args = parser.parse_known_args(argv)
    gate_args = absolute_paths(gate_args)  # the gate runs in the scratch clone
    plants = []
    for text in args.plant:
        impl, _, factor = text.partition(":")
        plants.append((impl, float(factor or 1.5)))
    scratch = (args.keep or Path(tempfile.mkdtemp(prefix="gate-trial-"))).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    try:
        repo = scratch_clone(args.repo.resolve(), scratch)
        base = _git(repo, "rev-parse", "HEAD")
        same = commit_docs_only(repo)
        planted = [commit_plant(repo, base, impl, f) for impl, f in plants]
        _git(repo, "checkout", "-q", same)
        for trial in range(args.trials):
            heads = [("A/A", same)] + [
                (f"{impl} x{f:g}", c) for (impl, f), c in zip(plants, planted, strict=True)
            ]
            for kind, head in heads:
                o = run_gate(repo, args.machine, base, head, gate_args, kind, scratch)
                outcomes.append(o)
                if args.json:  # after each run: a trial cut short keeps what it measured
                    write_text(args.json, json.dumps([asdict(x) for x in outcomes], indent=1))
                said = f"named {len(o.regressions)}, unsure {o.unsure}"
                log(f"trial {trial + 1}/{args.trials} {kind}: exit {o.exit_code}, {said}")
    except (PipelineError, subprocess.CalledProcessError) as exc:
        print(f"gate_trial: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.json:
            write_text(args.json, json.dumps([asdict(o) for o in outcomes], indent=1) + "\n")
    print("\n".join(summarize(outcomes, plants)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
