#!/usr/bin/env python3
"""The pull-request gate: measure base and head with ``asv continuous``, judge every figure
from its samples and measured noise (tools.ci.verdict), re-measure what looks like a
change with base and head taking turns in two fresh processes (tools.ci.remeasure), write a
markdown comment, and exit 1 only on a confirmed regression.

Verdicts: ``regression`` (confirmed; fails), ``failed`` (ran at base, fails at head; fails),
``improvement``, ``fixed``, ``unsure`` (a change the samples or the re-measure do not back: never
fails, the comment says what to re-run), ``unchanged``, ``gone`` (in base, not in head), ``new``,
``n/a``. Derived figures (TFLOP/s, GB/s, speedup vs eager) follow their pair's own time; first
calls (compile seconds) have their own section and never fail the gate.

The samples of attnbench's ``track_*`` figures come from its records (``ATTNBENCH_RECORDS``,
which the gate points at a fresh folder for its own ``asv continuous``; ``--records DIR`` reads
stored ones, e.g. with ``--no-run``); asv keeps the samples of its own ``time_*`` figures.

    python -m tools.ci.gate --machine h100-x1 --base origin/main --head HEAD \\
        --comment gate.md                 # exit 0: no regression; 1: regression; 2: error
    python -m tools.ci.gate --machine cpu --base A --head B --no-run   # compare stored results
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from attnbench.atomic import write_text

from . import first_bad, remeasure
from . import verdict as v
from .pipeline import (
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
MARKS = {"regression": "❌ ", "failed": "❌ ", "improvement": "✅ ", "fixed": "✅ ", "unsure": "⚠️ ",
         "slower first call": "🐢 "}  # fmt: skip


@dataclass(frozen=True)
class Row:
    benchmark: str  # e.g. forward.ForwardMetrics.track_tflops
    params: str  # e.g. 'chunked', 'h8kv2d64/prefill/s256/b2/full/fp32' (empty if none)
    unit: str
    before: float | None
    after: float | None
    verdict: str
    why: str = ""

    @property
    def ratio(self) -> float | None:
        """after / before, as asv prints it (>1: the figure rose)."""
        if _missing(self.before) or _missing(self.after) or self.before == 0:
            return None
        return self.after / self.before

    @property
    def kind(self) -> str:
        return v.kind_of(self.benchmark)

    @property
    def pair(self) -> remeasure.Pair | None:
        """(implementation, workload, mode) of an attnbench figure, else ``None``."""
        names = re.findall(r"'([^']*)'", self.params)
        if len(names) != 2:
            return None
        cls_method = self.benchmark.split(".")[-2:]
        mode = "forward_backward" if "backward" in ".".join(cls_method).lower() else "forward"
        return names[0], names[1], mode


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _load(project: Project, machine: str, commit: str) -> dict[str, tuple]:
    """{name(params): (value, samples, version)} of one commit on one machine (asv's API); a
    file asv cannot read stops the gate, naming it."""
    from asv.commands.compare import unroll_result

    from attnbench.asv_results import Skipped, load_results_file

    out: dict[str, tuple] = {}
    for path in sorted((project.results / machine).glob(f"{commit[:8]}-*.json")):
        result = load_results_file(path, machine)  # the leaderboard's reader too
        if isinstance(result, Skipped):
            raise PipelineError(str(result))
        for key in result.get_all_result_keys():
            params = result.get_result_params(key)
            version = result.benchmark_version.get(key)
            for name, value, _stats, samples in unroll_result(
                key,
                params,
                result.get_result_value(key, params),
                result.get_result_stats(key, params),
                result.get_result_samples(key, params),
            ):
                out[name] = (value, samples, version)
    if not out:
        raise PipelineError(f"no results of {commit[:8]} for machine {machine!r}")
    return out


def _units(project: Project) -> dict[str, str]:
    path = project.results / "benchmarks.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {k: v.get("unit") or "" for k, v in data.items() if isinstance(v, dict)}


Records = dict[tuple[str, str, str], dict]  # (class, implementation, workload) -> record


def load_records(folder: Path | None, commit: str) -> Records:
    """One commit's attnbench records in ``folder/<commit[:8]>.jsonl`` (``{}`` without the
    file); a pair recorded twice keeps its last record."""
    path = Path(folder or "") / f"{commit[:8]}.jsonl"
    if folder is None or not path.exists():
        return {}
    found: Records = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("workload"):
            found[(rec["suite"], rec["impl"], rec["workload"])] = rec
    return found


def _record_of(name: str, records: Records) -> dict | None:
    benchmark, _, params = name.partition("(")
    cls = benchmark.split(".")[-2] if benchmark.count(".") >= 2 else ""
    pair = re.findall(r"'([^']*)'", params)
    return records.get((cls, *pair)) if len(pair) == 2 else None


def side(name: str, entry: tuple | None, records: Records) -> v.Side | None:
    """One commit's figure with its samples (asv's for ``time_*``, the record's for attnbench's
    ``track_seconds``), noise and caution."""
    from attnbench.sweep import cautions

    if entry is None:
        return None
    value, samples, _version = entry
    rec = _record_of(name, records)
    caution = "; ".join(cautions(rec)) if rec else ""
    timing = (rec or {}).get("time") or {}
    if name.split("(")[0].endswith(".track_seconds") and timing.get("samples"):
        batches = timing.get("batches") or []
        noise = (max(batches) - min(batches)) / timing["median"] if len(batches) > 1 else 0.0
        return v.Side(value, tuple(timing["samples"]), noise, caution)
    if samples:
        return v.Side(value, tuple(samples), v.drift(samples), caution)
    return v.Side(value, None, 0.0, caution)


def _tolerance(params: str) -> float | None:
    """The relative-error tolerance of the workload's dtype (its name's last part)."""
    from attnbench.measure.accuracy import TOLERANCES

    names = re.findall(r"'([^']*)'", params)
    dtype = names[-1].rsplit("/", 1)[-1] if names else ""
    return TOLERANCES[dtype][0] if dtype in TOLERANCES else None


def judge(name: str, base: v.Side | None, head: v.Side | None, factor: float,
          memory_factor: float) -> v.Judgement:  # fmt: skip
    """The first verdict on one figure (derived figures are settled afterwards)."""
    found = v.presence(base, head)
    if found is not None:
        return found
    kind = v.kind_of(name.split("(")[0])
    if kind == "time":
        return v.judge_time(base, head, factor - 1)  # type: ignore[arg-type]
    if kind == "memory":
        if ".peakmem_" in name:  # host RSS: the interpreter's and allocator's own share moves
            memory_factor = max(memory_factor, v.RSS_FACTOR)
        return v.judge_memory(base, head, memory_factor)  # type: ignore[arg-type]
    if kind == "error":
        metric = name.split("(")[0].rsplit(".", 1)[-1]
        tol = _tolerance(name.partition("(")[2]) if metric == "track_rel_error" else None
        if metric == "track_max_error":
            return v.Judgement("unchanged", "judged by the relative error")
        return v.judge_error(base, head, tol)  # type: ignore[arg-type]
    if kind == "first-call":
        return v.judge_first_call(base, head)  # type: ignore[arg-type]
    return v.Judgement("unchanged" if kind == "derived" else "info")


def compare(
    project: Project | None,
    machine: str,
    base: str,
    head: str,
    factor: float,
    records: Path | None = None,
    *,
    memory_factor: float = 1.1,
    loaded: tuple[dict, dict] | None = None,
) -> list[Row]:
    """Every figure of base and head on this machine with its first verdict (regressions are
    still candidates: :func:`confirm` settles them)."""
    if factor <= 1 or memory_factor <= 1:
        raise PipelineError(f"factors must be above 1 (e.g. 1.1), not {factor}/{memory_factor}")
    before, after = loaded or (_load(project, machine, base), _load(project, machine, head))
    recs = load_records(records, base), load_records(records, head)
    units = _units(project) if project else {}
    rows = []
    for name in sorted(before.keys() | after.keys()):
        b_entry, a_entry = before.get(name), after.get(name)
        if (
            b_entry
            and a_entry
            and None not in (b_entry[2], a_entry[2])
            and b_entry[2] != a_entry[2]
        ):
            judged = v.Judgement("n/a", "the benchmark's version changed")
        else:
            b, a = side(name, b_entry, recs[0]), side(name, a_entry, recs[1])
            judged = judge(name, b, a, factor, memory_factor)
        benchmark, _, params = name.partition("(")
        rows.append(
            Row(
                benchmark=benchmark,
                params=params[:-1] if params else "",
                unit=units.get(benchmark, ""),
                before=b_entry[0] if b_entry else None,
                after=a_entry[0] if a_entry else None,
                verdict=judged.verdict,
                why=judged.why,
            )
        )
    return follow_times(rows)


def _primary(row: Row) -> tuple[str, str]:
    """The time figure a derived one is computed from: same class, ``track_seconds``."""
    return row.benchmark.rsplit(".", 1)[0] + ".track_seconds", row.params


def follow_times(rows: list[Row]) -> list[Row]:
    """Derived figures take the verdict of their pair's time."""
    times = {(r.benchmark, r.params): r for r in rows if r.kind == "time"}
    out = []
    for row in rows:
        primary = times.get(_primary(row)) if row.kind == "derived" else None
        if primary is not None and row.verdict == "unchanged" and primary.verdict != "unchanged":
            row = replace(row, verdict=primary.verdict, why="follows track_seconds")
        out.append(row)
    return out


def confirm(
    project: Project,
    base: str,
    head: str,
    rows: list[Row],
    factor: float,
    rounds: int,
    env: dict | None = None,
) -> tuple[list[Row], list[str]]:
    """Re-measure each change of a time beyond the factor (regression, improvement, or unsure:
    the run's own samples too noisy to tell), base and head in two fresh processes taking turns
    ``rounds`` times: the re-measure's direction stands (the first measurement, base and head
    minutes apart, can read a busy phase as the change, or drown a real one); one it does not
    confirm either way is ``unsure``. Returns the rows and what was re-measured."""
    moved = ("regression", "improvement")
    candidates = [r for r in rows if r.verdict in (*moved, "unsure") and r.kind == "time"]
    pairs = list(dict.fromkeys(r.pair for r in candidates if r.pair))
    if not candidates:
        return rows, []
    ratios: dict = {}
    if pairs and rounds > 0:
        log(f"gate: re-measuring {len(pairs)} pair(s), base and head taking turns, {rounds}x")
        ratios = remeasure.alternate(project, base, head, pairs, rounds, env)  # type: ignore[arg-type]
        again = [p for p in pairs if remeasure.worth_more_turns(ratios[p], factor - 1)]
        if again:  # one turn disagreed: as many turns again for those pairs
            log(f"gate: {len(again)} pair(s) with one turn against: {rounds} more turns")
            more = remeasure.alternate(project, base, head, again, rounds, env)
            for p in again:
                ratios[p] = ratios[p] + more[p]
    effect = factor - 1
    said = [
        f"`{' '.join(p)}`: head/base {remeasure._said(ratios[p])} → "
        + {1: "slower", -1: "faster", 0: "not confirmed"}[remeasure.direction(ratios[p], effect)]
        for p in pairs
        if p in ratios
    ]
    out = []
    for row in rows:
        if row.kind == "derived" and row.why == "follows track_seconds":
            row = replace(row, verdict="unchanged", why="")  # follows again below
        elif row.verdict in (*moved, "unsure") and row.kind == "time":
            found = ratios.get(row.pair) if row.pair else None  # type: ignore[arg-type]
            if found is None:
                row = replace(row, verdict="unsure", why=row.why + "; not re-measured")
                out.append(row)
                continue
            again = remeasure._said(found)
            way = remeasure.direction(found, effect)
            if not way:
                row = replace(
                    row, verdict="unsure", why=f"{row.why}; re-measured {again}: not confirmed"
                )
            else:  # the paired re-measure is the stronger test: its direction stands
                settled = "regression" if way > 0 else "improvement"
                flipped = {
                    settled: "",
                    "unsure": " (the run's own samples could not tell)",
                }.get(row.verdict, " (the first measurement read the other way)")
                row = replace(row, verdict=settled, why=f"{row.why}; re-measured {again}{flipped}")
        out.append(row)
    return follow_times(out), said


def name_first_bad(
    project: Project, base: str, head: str, rows: list[Row], factor: float
) -> list[str]:
    """For each confirmed slower pair, the first commit of ``base..head`` that made it slower
    (tools.ci.first_bad), when more than one commit lies between them."""
    between = project.git("rev-list", "--first-parent", f"{base}..{head}").split()
    if len(between) < 2:
        return []
    pairs = dict.fromkeys(
        r.pair for r in rows if r.verdict == "regression" and r.kind == "time" and r.pair
    )
    found = []
    for pair in pairs:
        try:
            commit, _steps = first_bad.first_bad(project, base, head, pair, factor - 1)  # type: ignore[arg-type]
            subject = project.git("log", "-1", "--format=%h %s", commit)
            found.append(f"`{' '.join(pair)}` (of {len(between)} commits): first slow at {subject}")
        except PipelineError as exc:
            found.append(f"`{' '.join(pair)}`: could not bisect ({exc})")
    return found


def last_measured(repo: Path, results: Path, machine: str, head: str) -> str:
    """The newest first-parent ancestor of ``head`` (``head`` left out) with results on this
    machine: where the main-branch run compares from (git and file names only: no asv)."""
    measured = {p.name.split("-")[0] for p in (results / machine).glob("*-*.json")}
    commits = subprocess.check_output(
        ["git", "-C", str(repo), "rev-list", "--first-parent", head], text=True
    ).split()
    for commit in commits[1:]:
        if commit[:8] in measured:
            return commit
    raise PipelineError(f"no commit before {head[:8]} has results for machine {machine!r}")


def _fmt(value: float | None, unit: str) -> str:
    from asv.util import human_value

    if _missing(value):
        return "n/a" if value is not None else "failed"
    if unit in ("seconds", "bytes"):
        return human_value(value, unit)
    return f"{value:.3g} {unit}".rstrip()


def _table(selected: list[Row], why: bool = False) -> list[str]:
    head = "| benchmark | params | before | after | ratio | verdict |" + (" why |" if why else "")
    out = [head, "|---" * (7 if why else 6) + "|"]
    for r in selected:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        line = (
            f"| `{r.benchmark}` | {r.params.replace('|', '/')} | {_fmt(r.before, r.unit)} "
            f"| {_fmt(r.after, r.unit)} | {ratio} | {MARKS.get(r.verdict, '')}{r.verdict} |"
        )
        out.append(line + (f" {r.why.replace('|', '/')} |" if why else ""))
    return out


def rerun_hint(rows: list[Row], machine: str, base: str, head: str) -> str:
    """The command that measures the unsure figures' classes again."""
    classes = sorted({r.benchmark.rsplit(".", 1)[0] for r in rows})
    regex = "|".join("^" + re.escape(c) + r"\." for c in classes)
    return (
        f"python3 tools/dev.py gate --machine {machine} --base {base[:12]} --head {head[:12]} "
        f"--bench '{regex}'"
    )


def markdown(
    rows: list[Row],
    base: str,
    head: str,
    machine: str,
    factor: float,
    remeasured: list[str] | None = None,
    cost: str = "",
    culprits: list[str] | None = None,
) -> str:
    """The PR comment: a verdict line, the failing and improved figures, the unsure ones with
    what to re-run, first calls apart, then the rest folded away."""
    bad = [r for r in rows if r.verdict in v.FAILING]
    good = [r for r in rows if r.verdict in v.GOOD]
    unsure = [r for r in rows if r.verdict == "unsure"]
    first = [r for r in rows if r.verdict == "slower first call"]
    gone = [r for r in rows if r.verdict in ("gone", "new")]
    judged = [r for r in rows if r.kind != "derived"]

    def count(selected: list[Row]) -> int:  # derived figures repeat their time's verdict
        return sum(r.kind != "derived" for r in selected)

    head_line = (f"**{count(bad)} regression(s)**" if bad else "**No significant regression.**") + (
        f" {count(good)} improvement(s)." if good else ""
    )
    if unsure:
        head_line += f" {count(unsure)} change(s) unsure (not failing: re-run to settle them)."
    lines = [
        MARKER,
        f"### attnbench: `{base[:8]}` (base) → `{head[:8]}` (head) on `{machine}`",
        "",
        f"{head_line} {len(judged)} figure(s) judged from their samples and noise; smallest "
        f"effect {factor - 1:.0%}; a change of a time is re-measured (base and head taking "
        "turns in two fresh processes) before it counts. Ratio = after / before; higher is "
        "better for speedup, TFLOP/s, GB/s and tokens/s." + (f" {cost}" if cost else ""),
        "",
    ]
    if bad or good:
        lines += _table(bad + good, why=True)
    if culprits:
        lines += ["", "First slow commit (bisected, each step beside base):", ""]
        lines += [f"- {c}" for c in culprits]
    if remeasured:
        lines += ["", "Re-measured (base and head taking turns in two fresh processes):", ""] + [
            f"- {s}" for s in remeasured
        ]
    if unsure:
        lines += ["", "<details><summary>Unsure, and why</summary>", "", *_table(unsure, why=True)]
        lines += [
            "",
            "To settle them: `" + rerun_hint(unsure, machine, base, head) + "`",
            "</details>",
        ]
    if first:
        lines += ["", "First call (bind + compile; never fails the gate: caches differ):", ""]
        lines += _table(first, why=True)
    if gone:
        lines += ["", f"{len(gone)} figure(s) only on one side (gone or new; not failing)."]
    shown = set(map(id, bad + good + unsure + first))
    rest = [r for r in rows if id(r) not in shown]
    folded = ["", f"<details><summary>{len(rest)} other figure(s)</summary>", ""]
    folded += [*_table(rest), "", "</details>"]
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
    parser.add_argument(
        "--base",
        help="base commit, required (e.g. origin/main); 'last-measured': head's newest ancestor "
        "with results on this machine",
    )
    parser.add_argument("--head", default="HEAD", help="head commit (default: HEAD)")
    parser.add_argument(
        "--factor", type=float, default=1.1, help="smallest slowdown that counts (1.1: 10%%)"
    )
    parser.add_argument("--memory-factor", type=float, default=1.1, help="for bytes (1.1)")
    parser.add_argument(
        "--confirm-rounds",
        type=int,
        default=remeasure.ROUNDS,
        help="re-measure a flagged change this many times, base and head taking turns in two "
        "fresh processes, before it counts (every turn must agree, or all but one of twice "
        "as many; 0: no time ever fails)",
    )
    parser.add_argument(
        "--bisect",
        action="store_true",
        help="name the first slow commit of each confirmed regression when several commits "
        "lie between base and head (the main-branch run)",
    )
    parser.add_argument("--comment", type=Path, help="write the markdown comment here")
    parser.add_argument("--json", type=Path, help="write every row (verdict, why) here")
    parser.add_argument("--no-run", action="store_true", help="compare stored results only")
    parser.add_argument("--launch", default="forkserver", help="asv --launch-method")
    parser.add_argument("--bench", help="asv --bench regex (default: the whole suite)")
    parser.add_argument("--set", help="ATTNBENCH_SET for the suite (default: the suite's)")
    parser.add_argument("--impls", help="ATTNBENCH_IMPLS for the suite (default: the suite's)")
    parser.add_argument(
        "--records",
        type=Path,
        help="attnbench records folder (<commit8>.jsonl: samples, cautions); default: a fresh "
        "one for this run's asv continuous, records/<machine> with --no-run",
    )
    parser.add_argument(
        "--print-last-measured",
        action="store_true",
        help="print the newest ancestor of --head with results here (results/), and stop",
    )
    parser.add_argument("asv_args", nargs="*", help="extra arguments for asv continuous")
    args = parser.parse_args(argv)
    if args.print_last_measured:  # before the run that measures more (no asv needed)
        try:
            print(last_measured(args.repo, args.repo / "results", args.machine, args.head))
        except (PipelineError, subprocess.CalledProcessError) as exc:
            print(f"gate: {exc}", file=sys.stderr)
            return 2
        return 0
    if not args.base:
        parser.error("--base is required")
    started = time.monotonic()
    with contextlib.ExitStack() as scratch:
        try:
            project = Project.load(args.repo)
            head = project.resolve(args.head)
            if args.base == "last-measured":
                base = last_measured(project.repo, project.results, args.machine, head)
            else:
                base = project.resolve(args.base)
            rc = 0
            records = args.records
            env = asv_env()
            for var, value in (("ATTNBENCH_SET", args.set), ("ATTNBENCH_IMPLS", args.impls)):
                if value:
                    env[var] = value
            if args.no_run:
                records = records or _stored_records(project, args.machine)
            else:
                if records is None:  # this run's records, removed when the gate ends
                    records = Path(
                        scratch.enter_context(tempfile.TemporaryDirectory(prefix="gate-"))
                    )
                env["ATTNBENCH_RECORDS"] = str(records)
                register_machine(args.machine, project.repo, env)
                extra = ["--launch-method", args.launch, *args.asv_args]
                extra += ["--bench", args.bench] if args.bench else []
                rc = run_continuous(project, args.machine, base, head, args.factor, env, extra)
            measured = time.monotonic()
            try:
                rows = compare(
                    project, args.machine, base, head, args.factor, records,
                    memory_factor=args.memory_factor,
                )  # fmt: skip
            except PipelineError as exc:
                raise PipelineError(
                    f"{exc} (asv continuous exited {rc})" if rc else str(exc)
                ) from None
            rows, remeasured = confirm(
                project, base, head, rows, args.factor, args.confirm_rounds, env
            )
            culprits = name_first_bad(project, base, head, rows, args.factor) if args.bisect else []
        except PipelineError as exc:
            print(f"gate: {exc}", file=sys.stderr)
            if args.comment:
                write_text(
                    args.comment, f"{MARKER}\n### attnbench: the gate could not run\n\n{exc}\n"
                )
            return 2
    done = time.monotonic()
    cost = (
        f"The gate took {done - started:.0f} s"
        + ("" if args.no_run else f" (asv continuous {measured - started:.0f} s")
        + ("" if args.no_run else f", re-measuring {done - measured:.0f} s).")
        + ("." if args.no_run else "")
    )
    text = markdown(rows, base, head, args.machine, args.factor, remeasured, cost, culprits)
    print(text)
    if args.comment:
        write_text(args.comment, text)
        log(f"comment written to {args.comment}")
    if args.json:
        rows_json = [{**asdict(r), "kind": r.kind} for r in rows]
        write_text(args.json, json.dumps(rows_json, indent=1) + "\n")
    return 1 if any(r.verdict in v.FAILING for r in rows) else 0


def _stored_records(project: Project, machine: str) -> Path | None:
    """Where a machine's committed records live (``records/<machine>``, or the older
    ``results/<machine>-records``)."""
    for folder in (project.repo / "records" / machine, project.results / f"{machine}-records"):
        if folder.is_dir():
            return folder
    return None


if __name__ == "__main__":
    sys.exit(main())
