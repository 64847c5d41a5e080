#!/usr/bin/env python3
"""Name the commit that made a pair slower: binary search over ``good..bad`` on main's first
parents, each step measuring the commit and ``good`` in fresh processes, side by side
(tools.ci.remeasure), so that the machine's drift cancels.

A commit is bad when the gate's own rule confirms it slower than good by the effect (every
turn slower by half of it, the median turn by all of it: ``remeasure.direction``). The gate
calls it (``--bisect``) on main when it confirms a regression between two measured commits
with unmeasured ones in between.

    python -m tools.ci.first_bad --good A --bad B \\
        --pair chunked 'h8kv2d64/prefill/s256/b2/full/fp32' forward --summary "$GITHUB_STEP_SUMMARY"
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from . import remeasure
from .pipeline import ROOT, PipelineError, Project, log

ROUNDS = 5


def ratios_to(src: dict[str, Path], good: str, commit: str, pair: remeasure.Pair) -> list:
    """``commit``'s time over ``good``'s, one ratio per turn (:data:`ROUNDS` turns each)."""
    found = remeasure.ratios(src[good], src[commit], [pair], ROUNDS)[pair]
    if any(r is None for r in found):
        raise PipelineError(f"{' '.join(pair)} did not run at {good[:8]} or {commit[:8]}")
    return found


def first_bad(
    project: Project, good: str, bad: str, pair: remeasure.Pair, min_effect: float = 0.1
) -> tuple[str, list]:
    """The first commit of ``good..bad`` (first parents) that is confirmed slower than
    ``good`` by ``min_effect`` (the gate's rule, :func:`remeasure.direction`), and the steps
    taken: (commit, median ratio to good, verdict)."""
    commits = project.git("rev-list", "--first-parent", "--reverse", f"{good}..{bad}").split()
    if not commits:
        raise PipelineError(f"{bad[:8]} does not come after {good[:8]}")
    steps: list[tuple[str, float, str]] = []
    with remeasure.checkouts(project, [good, *commits]) as src:

        def slower(commit: str, what: str) -> bool:
            found = ratios_to(src, good, commit, pair)
            is_bad = remeasure.direction(found, min_effect) == 1
            steps.append((commit, statistics.median(found), what if is_bad else "good"))
            log(f"first_bad: {commit[:8]} {remeasure._said(found)} of good: {steps[-1][2]}")
            return is_bad

        if not slower(bad, "bad end"):
            raise PipelineError(f"{bad[:8]} is not confirmed slower than {good[:8]} here")
        lo, hi = 0, len(commits) - 1  # the answer is in commits[lo..hi]; commits[hi] is bad
        while lo < hi:
            mid = (lo + hi) // 2
            hi, lo = (mid, lo) if slower(commits[mid], "bad") else (hi, mid + 1)
    return commits[lo], steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--good", required=True, help="a commit without the regression")
    parser.add_argument("--bad", required=True, help="a later commit with it")
    parser.add_argument("--pair", nargs=3, required=True, metavar=("IMPL", "WORKLOAD", "MODE"))
    parser.add_argument("--factor", type=float, default=1.1, help="smallest slowdown (1.1)")
    parser.add_argument("--summary", type=Path, help="append the answer here (markdown)")
    args = parser.parse_args(argv)
    try:
        project = Project.load(args.repo)
        good, bad = project.resolve(args.good), project.resolve(args.bad)
        pair: remeasure.Pair = tuple(args.pair)  # type: ignore[assignment]
        found, steps = first_bad(project, good, bad, pair, args.factor - 1)
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
