#!/usr/bin/env python3
"""Re-measure (implementation, workload, mode) pairs at given commits, each commit in its own
process, with that commit's own attnbench (a git worktree on ``PYTHONPATH``), the two processes
taking turns (ABAB...): what the gate confirms a flagged change with, and what ``first_bad.py``
walks a range of commits with.

    python -m tools.ci.remeasure --base A --head B \\
        --pair chunked 'h8kv2d64/prefill/s256/b2/full/fp32' forward
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .pipeline import ROOT, PipelineError, Project, log

Pair = tuple[str, str, str]  # implementation, workload, mode
MARK = "attnbench-remeasure:"
ROUNDS = 5  # turns each, by default
BURST_SECONDS = 0.05  # sampling per pair and turn, on the CPU: short, so both sides share a phase

# Before torch, the child fixes glibc's malloc thresholds: by default a freed block above the
# (dynamic) mmap threshold goes back to the kernel and the next call faults it in again, in CPU
# seconds counted to the process. Whether a process is in that regime depends on its heap's
# history: on the 2-core CPU machine one process read eager's 4 ms call (h8kv2d64 s256) at 7-9
# ms for its first seconds, another at 3.5 from the start, and turns of identical code read
# 0.36-2.7x; with the thresholds fixed, 0.82-1.11x in three A/A runs of 10 turns (two pairs)
# and in a fourth all but one turn, which read 1.29-1.36x for both pairs (the machine).
# Runs in the child, against the checked-out commit's attnbench (only long-standing API): one
# line of pairs in, one line of medians out, the prepared cases kept between turns. On the CPU
# one thread's worth of work is timed in process CPU seconds, which another program on the
# machine does not inflate, on one core for both sides; on a GPU, attnbench's own device timing.
_CHILD = """
import ctypes, json, os, statistics, sys, time
try:  # glibc: blocks up to 32 MiB stay in the heap, which is never trimmed
    _libc = ctypes.CDLL("libc.so.6")
    _libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
    _libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
except (OSError, AttributeError):  # not glibc
    pass
import torch
import attnbench
from attnbench.case import prepare

if not torch.cuda.is_available():
    torch.set_num_threads(1)
    os.sched_setaffinity(0, {CPU})
print("MARK" + json.dumps({"module": attnbench.__file__}), flush=True)
cases = {}

def burst(case, mode):
    if case.device.type == "cuda":
        return case.time(mode).median
    for _ in range(2):
        case.step(mode)
    samples, deadline = [], time.perf_counter() + BURST
    while len(samples) < 5 or (time.perf_counter() < deadline and len(samples) < 500):
        start = time.process_time()
        case.step(mode)
        samples.append(time.process_time() - start)
    return sorted(samples)[len(samples) // 10]  # the 10th percentile: the least disturbed

for line in sys.stdin:
    out = {}
    for impl, workload, mode in json.loads(line):
        key = "|".join((impl, workload, mode))
        try:
            if key not in cases:
                cases[key] = prepare(impl, workload, mode=mode)
            out[key] = burst(cases[key], mode)
        except Exception as exc:
            print(f"{key}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            out[key] = None
    print("MARK" + json.dumps(out), flush=True)
os._exit(0)  # answers are flushed: no interpreter teardown (a second with torch, per process)
""".replace("MARK", MARK).replace("BURST", repr(BURST_SECONDS))
#: the CPU both sides are held to on a machine without a GPU: they never run at once, and two
#: cores of one machine can differ (a busy hyperthread sibling, interrupts) by 2x
CPU = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0


@contextlib.contextmanager
def checkouts(project: Project, commits: list[str]) -> Iterator[dict[str, Path]]:
    """A detached git worktree of each commit (removed afterwards): {commit: its src/}."""
    scratch = Path(tempfile.mkdtemp(prefix="attnbench-remeasure-"))
    made: dict[str, Path] = {}
    try:
        for commit in dict.fromkeys(commits):
            tree = scratch / commit[:12]
            project.git("worktree", "add", "--detach", "--force", str(tree), commit)
            made[commit] = tree / "src"
        yield made
    finally:
        for commit in made:
            with contextlib.suppress(subprocess.CalledProcessError):
                project.git("worktree", "remove", "--force", str(scratch / commit[:12]))
        with contextlib.suppress(subprocess.CalledProcessError):
            project.git("worktree", "prune")


class Child:
    """A process that imports one commit's attnbench (``src`` first on ``PYTHONPATH``) and
    measures pairs on request, keeping them prepared between turns."""

    def __init__(self, src: Path, env: dict | None = None) -> None:
        child_env = dict(os.environ if env is None else env)
        child_env.pop("ATTNBENCH_RECORDS", None)
        child_env["PYTHONPATH"] = os.pathsep.join([str(src), child_env.get("PYTHONPATH", "")])
        self.src = src
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD.replace("{CPU}", f"{{{CPU}}}")],
            env=child_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ready(self) -> Child:
        """Wait until the child has imported attnbench (seconds: torch), and check that it is
        the commit's (the constructor does not wait: two children import at once)."""
        module = self._answer()["module"]
        if not Path(module).resolve().is_relative_to(Path(self.src).resolve()):
            self.close()
            raise PipelineError(f"re-measuring imported {module}, not the commit's {self.src}")
        return self

    def _answer(self) -> dict:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :])
        raise PipelineError(f"re-measuring at {self.src} stopped (exit {self.proc.wait()})")

    def measure(self, pairs: list[Pair]) -> dict[Pair, float | None]:
        """Median seconds of each pair now (``None``: it could not run)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(pairs) + "\n")
        self.proc.stdin.flush()
        return {tuple(k.split("|")): t for k, t in self._answer().items()}  # type: ignore[misc]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ratios(a: Path, b: Path, pairs: list[Pair], rounds: int, env: dict | None = None,
           ) -> dict[Pair, list[float | None]]:  # fmt: skip
    """b/a time ratios of each pair, one per round. Each round starts a fresh process for each
    side (one process can be slower than another running the same code for its whole life:
    1.06-1.35x in every turn of one A/A pair seen on a busy 2-core machine), warms both up,
    then times them in turn, in alternating order (AB, BA, ...), so that neither a process nor
    a slow phase of the machine, nor going first, falls on one side only."""
    out: dict[Pair, list[float | None]] = {p: [] for p in pairs}
    for r in range(rounds):
        # both import at once (seconds each, on two cores), then they take turns, one at a time
        with Child(a, env) as first, Child(b, env) as second:
            first.ready()
            second.ready()
            first.measure(pairs), second.measure(pairs)  # warm-up, not counted
            if r % 2:
                tb, ta = second.measure(pairs), first.measure(pairs)
            else:
                ta, tb = first.measure(pairs), second.measure(pairs)
        for p in pairs:
            ok = ta.get(p) and tb.get(p)
            out[p].append(tb[p] / ta[p] if ok else None)  # type: ignore[operator]
        log(f"re-measured round {r + 1}/{rounds}: " + ", ".join(_said(out[p]) for p in pairs))
    return out


def alternate(
    project: Project, base: str, head: str, pairs: list[Pair], rounds: int, env: dict | None = None
) -> dict[Pair, list[float | None]]:
    """head/base ratios of each pair, one per round (see :func:`ratios`)."""
    with checkouts(project, [base, head]) as src:
        return ratios(src[base], src[head], pairs, rounds, env)


def _said(values: list[float | None]) -> str:
    return "/".join("failed" if v is None else f"{v:.3f}" for v in values)


def _votes(values: list[float | None], min_effect: float) -> tuple[float, int, int] | None:
    """(median log ratio, turns slower by half the effect, turns faster by half the effect)."""
    if not values or any(r is None for r in values):
        return None
    logs = [math.log(r) for r in values]  # type: ignore[arg-type]
    half = math.log1p(min_effect / 2)
    return statistics.median(logs), sum(x > half for x in logs), sum(x < -half for x in logs)


def direction(values: list[float | None], min_effect: float) -> int:
    """+1 when the re-measure confirms a slowdown, -1 a speedup, 0 neither: the median turn
    moved by the whole effect and every turn the same way by half of it (one turn may
    disagree once there are twice the default turns: a burst of load on a busy machine)."""
    votes = _votes(values, min_effect)
    if votes is None:
        return 0
    mid, slower, faster = votes
    whole, spare = math.log1p(min_effect), int(len(values) >= 2 * ROUNDS)
    if mid > whole and slower >= len(values) - spare:
        return 1
    if mid < -whole and faster >= len(values) - spare:
        return -1
    return 0


def worth_more_turns(values: list[float | None], min_effect: float) -> bool:
    """Undecided, but the median turn moved by the whole effect and one turn alone disagrees."""
    votes = _votes(values, min_effect)
    if votes is None or direction(values, min_effect) or len(values) >= 2 * ROUNDS:
        return False
    mid, slower, faster = votes
    agreeing = slower if mid > 0 else faster
    return abs(mid) > math.log1p(min_effect) and agreeing == len(values) - 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--base", required=True)
    parser.add_argument("--head", required=True)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--pair", nargs=3, action="append", required=True,
                        metavar=("IMPL", "WORKLOAD", "MODE"))  # fmt: skip
    args = parser.parse_args(argv)
    try:
        project = Project.load(args.repo)
        base, head = project.resolve(args.base), project.resolve(args.head)
        pairs = [tuple(p) for p in args.pair]
        ratios = alternate(project, base, head, pairs, args.rounds)  # type: ignore[arg-type]
    except PipelineError as exc:
        print(f"remeasure: {exc}", file=sys.stderr)
        return 2
    for pair, values in ratios.items():
        print(" ".join(pair), "head/base:", _said(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
