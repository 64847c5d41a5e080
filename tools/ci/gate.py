#!/usr/bin/env python3
"""The pull-request gate: measure base and head with ``asv continuous``, compare them in each
figure's own direction, write a markdown comment, exit 1 on a significant regression.

asv calls every rise a regression and ``asv compare`` exits 0 whatever it shows; here a drop
of a higher-is-better figure (speedup, TFLOP/s, GB/s, tokens/s: :mod:`attnbench.direction`) is
the regression and its rise the improvement. Significance is asv's own test (its statistics
where both sides have samples, else the factor alone).

A change in a figure whose attnbench record, of base or head, carries a caution (samples that
never settled, "not steady", or "timed twice" in older records; another program on the GPU:
:func:`attnbench.sweep.cautions`) is ``unsure``, with the reason, and does not fail the gate:
the comment asks for a re-run instead of blocking on a figure the runner itself spoiled. The
records come from ``ATTNBENCH_RECORDS``, which the gate points at a fresh folder for its own
``asv continuous`` (``--records DIR`` reads stored ones, e.g. with ``--no-run``).

    python tools/ci/gate.py --machine h100-x1 --base origin/main --head HEAD --factor 1.1 \\
        --comment gate.md                 # exit 0: no regression; 1: regression; 2: error
    python tools/ci/gate.py --machine cpu --base A --head B --no-run   # compare stored results
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import (
    ROOT,
    PipelineError,
    Project,
    asv_env,
    asv_executable,
    log,
    register_machine,
    sh,
)

MARKER = "<!-- attnbench-benchmark-gate -->"  # finds the comment to update, not duplicate
COMMENT_LIMIT = 60_000  # characters; GitHub takes at most 65,536 in a comment
VERDICTS = ("regression", "failed", "improvement", "fixed", "unsure", "unchanged", "n/a")


@dataclass(frozen=True)
class Row:
    benchmark: str  # e.g. forward.ForwardMetrics.track_tflops
    params: str  # e.g. 'chunked', 'h8kv2d64/prefill/s256/b2/full/fp32' (empty if none)
    unit: str
    before: float | None
    after: float | None
    verdict: str
    why: str = ""  # an unsure verdict's reason

    @property
    def ratio(self) -> float | None:
        """after / before, as asv prints it (>1: the figure rose)."""
        if _missing(self.before) or _missing(self.after) or self.before == 0:
            return None
        return self.after / self.before


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _higher_is_better(name: str) -> bool:
    from attnbench.direction import higher_is_better

    return higher_is_better(name)


def _load(project: Project, machine: str, commit: str) -> dict[str, tuple]:
    """{name(params): (value, (stats, samples), version)} of one commit on one machine."""
    from asv.commands.compare import unroll_result
    from asv.results import iter_results_for_machine_and_hash

    out: dict[str, tuple] = {}
    for result in iter_results_for_machine_and_hash(str(project.results), machine, commit):
        for key in result.get_all_result_keys():
            params = result.get_result_params(key)
            version = result.benchmark_version.get(key)
            for name, value, stats, samples in unroll_result(
                key,
                params,
                result.get_result_value(key, params),
                result.get_result_stats(key, params),
                result.get_result_samples(key, params),
            ):
                out[name] = (value, (stats, samples), version)
    if not out:
        raise PipelineError(f"no results of {commit[:8]} for machine {machine!r}")
    return out


def _units(project: Project) -> dict[str, str]:
    path = project.results / "benchmarks.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {k: v.get("unit") or "" for k, v in data.items() if isinstance(v, dict)}


def verdict(name: str, before: tuple | None, after: tuple | None, factor: float) -> str:
    """``regression``/``improvement`` in the figure's direction, as asv's compare decides
    significance; ``failed`` where head lost a value base had, ``fixed`` the other way."""
    from asv.commands.compare import _is_result_better  # asv==0.6.6 is pinned

    b, b_ss, b_ver = before if before else (None, None, None)
    a, a_ss, a_ver = after if after else (None, None, None)
    if b_ver is not None and a_ver is not None and b_ver != a_ver:
        return "n/a"  # the benchmark's code changed: not comparable
    if b is not None and a is None:
        return "failed"
    if b is None and a is not None:
        return "fixed" if before else "n/a"
    if _missing(b) or _missing(a):
        return "n/a"
    lower, higher = (b, a) if not _higher_is_better(name) else (a, b)
    lower_ss, higher_ss = (b_ss, a_ss) if not _higher_is_better(name) else (a_ss, b_ss)
    if _is_result_better(lower, higher, lower_ss, higher_ss, factor):
        return "regression"
    if _is_result_better(higher, lower, higher_ss, lower_ss, factor):
        return "improvement"
    return "unchanged"


Cautions = dict[tuple[str, str, str], str]  # (class, implementation, workload) -> why


def load_cautions(folder: Path | None, commit: str) -> Cautions:
    """The cautions of one commit's attnbench records in ``folder/<commit[:8]>.jsonl``
    (``{}`` without the file): the suite class, the pair, and why its time is not trusted."""
    from attnbench.sweep import cautions

    path = Path(folder or "") / f"{commit[:8]}.jsonl"
    if folder is None or not path.exists():
        return {}
    found: Cautions = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        why = cautions(rec) if rec.get("workload") else []
        if why:
            found[(rec["suite"], rec["impl"], rec["workload"])] = "; ".join(why)
    return found


def _caution(row: Row, before: Cautions, after: Cautions) -> str:
    """Why this row's figure is not trusted in base or head ("" if it is)."""
    cls = row.benchmark.split(".")[-2] if row.benchmark.count(".") >= 2 else ""
    pair = re.findall(r"'([^']*)'", row.params)
    if len(pair) != 2:
        return ""
    key = (cls, *pair)
    said = [f"{side}: {c[key]}" for side, c in (("base", before), ("head", after)) if key in c]
    return "; ".join(said)


def compare(
    project: Project,
    machine: str,
    base: str,
    head: str,
    factor: float,
    records: Path | None = None,
) -> list[Row]:
    """Every figure of base and head on this machine, with its verdict; a change in a figure
    whose record (in ``records``) carries a caution is ``unsure``."""
    if factor <= 1:
        raise PipelineError(f"--factor must be above 1 (e.g. 1.1), not {factor}")
    before, after = _load(project, machine, base), _load(project, machine, head)
    warned = load_cautions(records, base), load_cautions(records, head)
    units = _units(project)
    rows = []
    for name in sorted(before.keys() | after.keys()):
        benchmark, _, params = name.partition("(")
        row = Row(
            benchmark=benchmark,
            params=params[:-1] if params else "",
            unit=units.get(benchmark, ""),
            before=before[name][0] if name in before else None,
            after=after[name][0] if name in after else None,
            verdict=verdict(name, before.get(name), after.get(name), factor),
        )
        if row.verdict in ("regression", "improvement"):
            why = _caution(row, *warned)
            if why:
                row = replace(row, verdict="unsure", why=why)
        rows.append(row)
    return rows


def _fmt(value: float | None, unit: str) -> str:
    from asv.util import human_value

    if _missing(value):
        return "n/a" if value is not None else "failed"
    if unit in ("seconds", "bytes"):
        return human_value(value, unit)
    return f"{value:.3g} {unit}".rstrip()


def markdown(rows: list[Row], base: str, head: str, machine: str, factor: float) -> str:
    """The PR comment: a verdict line, then the changed figures, then the rest folded away."""
    bad = [r for r in rows if r.verdict in ("regression", "failed")]
    good = [r for r in rows if r.verdict in ("improvement", "fixed")]
    unsure = [r for r in rows if r.verdict == "unsure"]
    head_line = (f"**{len(bad)} regression(s)**" if bad else "**No significant regression.**") + (
        f" {len(good)} improvement(s)." if good else ""
    )
    if unsure:
        head_line += f" {len(unsure)} change(s) unsure (their records carry a caution: re-run)."
    lines = [
        MARKER,
        f"### attnbench: `{base[:8]}` (base) → `{head[:8]}` (head) on `{machine}`",
        "",
        f"{head_line} Factor {factor:g}; higher is better for speedup, TFLOP/s, GB/s and "
        "tokens/s, lower for the rest; ratio = after / before.",
        "",
    ]

    def table(selected: list[Row]) -> list[str]:
        out = ["| benchmark | params | before | after | ratio | verdict |", "|---" * 6 + "|"]
        for r in selected:
            ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
            mark = {"regression": "❌ ", "failed": "❌ ", "improvement": "✅ ", "fixed": "✅ ",
                    "unsure": "⚠️ "}  # fmt: skip
            out.append(
                f"| `{r.benchmark}` | {r.params.replace('|', '/')} | {_fmt(r.before, r.unit)} "
                f"| {_fmt(r.after, r.unit)} | {ratio} | {mark.get(r.verdict, '')}{r.verdict} |"
            )
        return out

    changed = bad + good + unsure
    rest = [r for r in rows if r not in changed]
    if changed:
        lines += table(changed)
    if unsure:
        lines += ["", "Unsure, and why:", ""]
        lines += [f"- `{r.benchmark}` {r.params.replace('|', '/')}: {r.why}" for r in unsure]
    folded = ["", f"<details><summary>{len(rest)} other figure(s)</summary>", ""]
    folded += [*table(rest), "", "</details>"]
    if rest and sum(map(len, lines + folded)) > COMMENT_LIMIT:
        folded = ["", f"{len(rest)} other figure(s) without a significant change (not listed)."]
    text = "\n".join(lines + (folded if rest else [])) + "\n"
    return text[:COMMENT_LIMIT]


def run_continuous(
    project: Project, machine: str, base: str, head: str, factor: float, env: dict, extra: list
) -> int:
    """``asv continuous`` base head: measures both (rounds interleaved) and saves the results.
    Its exit status is not the verdict: 1 is asv's direction-blind "regression" (or an asv
    error), 2 some benchmark failed (it then skips its own comparison). What was saved is
    compared either way; a commit with no results at all is the gate's error."""
    proc = sh(
        asv_executable(),
        "continuous",
        "--machine",
        machine,
        "--factor",
        str(factor),
        *extra,
        base,
        head,
        cwd=project.repo,
        env=env,
        check=False,
    )
    if proc.returncode not in (0, 1):
        log(f"asv continuous exited {proc.returncode}: comparing what it saved")
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=ROOT, help="project root (default: this one)")
    parser.add_argument("--machine", required=True, help="asv machine name")
    parser.add_argument("--base", required=True, help="base commit (e.g. origin/main)")
    parser.add_argument("--head", default="HEAD", help="head commit (default: HEAD)")
    parser.add_argument("--factor", type=float, default=1.1, help="significant ratio (1.1)")
    parser.add_argument("--comment", type=Path, help="write the markdown comment here")
    parser.add_argument("--no-run", action="store_true", help="compare stored results only")
    parser.add_argument("--launch", default="forkserver", help="asv --launch-method")
    parser.add_argument("--bench", help="asv --bench regex (default: the whole suite)")
    parser.add_argument("--set", help="ATTNBENCH_SET for the suite (default: the suite's)")
    parser.add_argument(
        "--records",
        type=Path,
        help="attnbench records folder (<commit8>.jsonl) for cautions; default: a fresh one "
        "for this run's asv continuous, none with --no-run",
    )
    parser.add_argument("asv_args", nargs="*", help="extra arguments for asv continuous")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as scratch:
        try:
            project = Project.load(args.repo)
            base, head = project.resolve(args.base), project.resolve(args.head)
            rc = 0
            records = args.records
            if not args.no_run:
                env = asv_env()
                if records is None:  # this run's records, removed when the gate ends
                    records = Path(
                        scratch.enter_context(tempfile.TemporaryDirectory(prefix="gate-"))
                    )
                env["ATTNBENCH_RECORDS"] = str(records)
                if args.set:
                    env["ATTNBENCH_SET"] = args.set
                register_machine(args.machine, project.repo, env)
                extra = ["--launch-method", args.launch, *args.asv_args]
                extra += ["--bench", args.bench] if args.bench else []
                rc = run_continuous(project, args.machine, base, head, args.factor, env, extra)
            try:
                rows = compare(project, args.machine, base, head, args.factor, records)
            except PipelineError as exc:
                raise PipelineError(
                    f"{exc} (asv continuous exited {rc})" if rc else str(exc)
                ) from None
        except PipelineError as exc:
            print(f"gate: {exc}", file=sys.stderr)
            if args.comment:
                args.comment.write_text(
                    f"{MARKER}\n### attnbench: the gate could not run\n\n{exc}\n"
                )
            return 2
    text = markdown(rows, base, head, args.machine, args.factor)
    print(text)
    if args.comment:
        args.comment.write_text(text)
        log(f"comment written to {args.comment}")
    regressed = [r for r in rows if r.verdict in ("regression", "failed")]
    return 1 if regressed else 0


if __name__ == "__main__":
    sys.exit(main())
