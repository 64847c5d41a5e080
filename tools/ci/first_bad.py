#!/usr/bin/env python3
"""Name the commit that made a pair slower: binary search over ``good..bad`` on main's first
parents, each step measuring the commit and ``good`` in fresh processes, side by side
(tools/ci/remeasure.py), so that the machine's drift cancels.

A commit is taken as bad when its time is nearer the bad end's than the good end's (in ratio,
against good measured beside it). Used by the main-branch workflow when the gate finds a
confirmed regression between two measured commits with unmeasured ones in between.

    python tools/ci/first_bad.py --good A --bad B \\
        --pair chunked 'h8kv2d64/prefill/s256/b2/full/fp32' forward --summary "$GITHUB_STEP_SUMMARY"
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import remeasure
from pipeline import ROOT, PipelineError, Project, log

ROUNDS = 5


def ratio_to(src: dict[str, Path], good: str, commit: str, pair: remeasure.Pair) -> float:
    """``commit``'s time over ``good``'s: the median of :data:`ROUNDS` turns of each."""
    found = remeasure.ratios(src[good], src[commit], [pair], ROUNDS)[pair]
    if any(r is None for r in found):
        raise PipelineError(f"{' '.join(pair)} did not run at {good[:8]} or {commit[:8]}")
    return statistics.median(found)  # type: ignore[type-var]


def first_bad(project: Project, good: str, bad: str, pair: remeasure.Pair) -> tuple[str, list]:
    """The first commit of ``good..bad`` (first parents) whose time is nearer bad's, and the
    steps taken: (commit, ratio to good, verdict)."""
    commits = project.git("rev-list", "--first-parent", "--reverse", f"{good}..{bad}").split()
    if not commits:
        raise PipelineError(f"{bad[:8]} does not come after {good[:8]}")
    steps: list[tuple[str, float, str]] = []
    with remeasure.checkouts(project, [good, *commits]) as src:
        full = ratio_to(src, good, bad, pair)
        steps.append((bad, full, "bad end"))
        if full <= 1:
            raise PipelineError(f"{bad[:8]} is not slower than {good[:8]} here ({full:.3f}x)")
        lo, hi = 0, len(commits) - 1  # the answer is in commits[lo..hi]; commits[hi] is bad
        while lo < hi:
            mid = (lo + hi) // 2
            r = ratio_to(src, good, commits[mid], pair)
            is_bad = math.log(r) > math.log(full) / 2
            steps.append((commits[mid], r, "bad" if is_bad else "good"))
            log(f"bisect: {commits[mid][:8]} {r:.3f}x of good: {'bad' if is_bad else 'good'}")
            hi, lo = (mid, lo) if is_bad else (hi, mid + 1)
    return commits[lo], steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--good", required=True, help="a commit without the regression")
    parser.add_argument("--bad", required=True, help="a later commit with it")
    parser.add_argument("--pair", nargs=3, required=True, metavar=("IMPL", "WORKLOAD", "MODE"))
    parser.add_argument("--summary", type=Path, help="append the answer here (markdown)")
    args = parser.parse_args(argv)
    try:
        project = Project.load(args.repo)
        good, bad = project.resolve(args.good), project.resolve(args.bad)
        pair: remeasure.Pair = tuple(args.pair)  # type: ignore[assignment]
        found, steps = first_bad(project, good, bad, pair)
    except PipelineError as exc:
        print(f"first_bad: {exc}", file=sys.stderr)
        return 2
    subject = project.git("log", "-1", "--format=%h %s", found)
    lines = [f"**First slow commit for `{' '.join(pair)}`: {subject}**", ""]
    lines += [f"- `{c[:8]}`: {r:.3f}x of `{good[:8]}` ({what})" for c, r, what in steps]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.summary:
        with args.summary.open("a") as out:
            out.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
