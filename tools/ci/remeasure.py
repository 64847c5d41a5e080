#!/usr/bin/env python3
"""Re-measure (implementation, workload, mode) pairs at given commits, each commit in its own
process, with that commit's own attnbench (a git worktree on ``PYTHONPATH``): what the gate
confirms a flagged regression with, base and head alternated (ABAB), and what ``bisect.py``
walks a range of commits with.

    python tools/ci/remeasure.py --base A --head B \\
        --pair chunked 'h8kv2d64/prefill/s256/b2/full/fp32' forward
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import ROOT, PipelineError, Project, log

Pair = tuple[str, str, str]  # implementation, workload, mode
MARK = "attnbench-remeasure:"

# Runs in the child, against the checked-out commit's attnbench: only long-standing API.
_CHILD = """
import json, sys
import attnbench
from attnbench.sweep import sweep

pairs, out = json.loads(sys.argv[1]), {"module": attnbench.__file__, "medians": {}}
for impl, workload, mode in pairs:
    try:
        records = sweep([impl], [workload], mode, baseline=None, errors=False)
    except TypeError:  # a commit whose sweep() has no ``errors``
        records = sweep([impl], [workload], mode, baseline=None)
    rec = records[-1]
    out["medians"]["|".join((impl, workload, mode))] = rec.time.median if rec.ok else None
print("MARK" + json.dumps(out), flush=True)
""".replace("MARK", MARK)


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


def measure(src: Path, pairs: list[Pair], env: dict | None = None) -> dict[Pair, float | None]:
    """Median seconds of each pair, measured in a fresh process importing ``src``'s attnbench
    (``None``: the pair could not run there)."""
    child_env = dict(os.environ if env is None else env)
    child_env.pop("ATTNBENCH_RECORDS", None)
    child_env["PYTHONPATH"] = os.pathsep.join([str(src), child_env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(pairs)],
        env=child_env,
        capture_output=True,
        text=True,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise PipelineError(f"re-measuring at {src} failed (exit {proc.returncode}):\n{tail}")
    out = json.loads(lines[-1][len(MARK) :])
    if not Path(out["module"]).resolve().is_relative_to(Path(src).resolve()):
        raise PipelineError(f"re-measuring imported {out['module']}, not the commit's {src}")
    return {tuple(k.split("|")): v for k, v in out["medians"].items()}  # type: ignore[misc]


def alternate(
    project: Project, base: str, head: str, pairs: list[Pair], rounds: int, env: dict | None = None
) -> dict[Pair, list[float | None]]:
    """head/base ratios of each pair, one per round; each round measures base, then head, in
    fresh processes (ABAB...), so a slow phase of the machine falls on both sides."""
    ratios: dict[Pair, list[float | None]] = {p: [] for p in pairs}
    with checkouts(project, [base, head]) as src:
        for r in range(rounds):
            b = measure(src[base], pairs, env)
            h = measure(src[head], pairs, env)
            for p in pairs:
                ok = b.get(p) and h.get(p)
                ratios[p].append(h[p] / b[p] if ok else None)  # type: ignore[operator]
            log(
                f"re-measured round {r + 1}/{rounds}: " + ", ".join(_said(ratios[p]) for p in pairs)
            )
    return ratios


def _said(values: list[float | None]) -> str:
    return "/".join("failed" if v is None else f"{v:.3f}" for v in values)


def confirmed(ratios: list[float | None], min_effect: float) -> bool:
    """A slowdown is confirmed when every round saw head slower by half the effect at least
    and their median by the whole effect."""
    if not ratios or any(r is None for r in ratios):
        return False
    return min(ratios) > 1 + min_effect / 2 and statistics.median(ratios) > 1 + min_effect  # type: ignore[type-var, operator]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--base", required=True)
    parser.add_argument("--head", required=True)
    parser.add_argument("--rounds", type=int, default=2)
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
