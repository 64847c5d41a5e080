#!/usr/bin/env python3
"""Measure commits with asv in shards, so that a sweep that dies loses at most one shard.

asv writes a commit's results once, when an ``asv run`` ends. Here each shard (by default one
benchmark class, e.g. ``^forward\\.ForwardMetrics\\.``) is its own ``asv run --bench REGEX`` on
one commit: when it ends, its results are merged into the commit's result file (asv loads the
existing file before saving). A shard whose benchmarks are already in that file is done and is
skipped, so a rerun after a kill measures only the rest. Each benchmark has asv's own timeout
(its ``timeout`` attribute); ``--shard-timeout`` bounds a whole shard (its process group is
killed), so a hang costs one shard, not the sweep. ``--stop-after`` starts no shard once that
many seconds have passed (a runner's job limit, say) and exits 75: a rerun resumes the rest.
``--again`` runs every shard even where results exist (a commit re-measured with a larger set,
say): asv replaces those benchmarks' results in the commit's file. ``--together`` measures each
shard's pending commits in one ``asv run`` (asv saves each commit's results as it finishes it):
one asv start-up and benchmark discovery for them all, which is what a history of many old
commits spends most on; the benchmarks are discovered on the first commit.

    python -m tools.ci.bench --machine h100-x1 --new --max-commits 10
    python -m tools.ci.bench --machine cpu-box --commits HEAD~1,HEAD --shard '^forward\\.'
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from .pipeline import (
    ROOT,
    PipelineError,
    Project,
    asv_env,
    asv_executable,
    check_machine_name,
    log,
    register_machine,
)
from .pipeline import resolve_commits as pipeline_resolve_commits

KILLED = 124  # exit status of a shard stopped by --shard-timeout (as timeout(1) reports it)
OUT_OF_TIME = 75  # --stop-after reached with shards left (EX_TEMPFAIL: run again to resume)


def _module_classes(body: list[ast.stmt]) -> list[str]:
    """Public classes a module defines, also under a module-level ``if``/``try``/``with``."""
    names = []
    for node in body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            names.append(node.name)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "handlers", "finalbody"):
                for child in getattr(node, block, []):
                    inner = child.body if isinstance(child, ast.ExceptHandler) else [child]
                    names += _module_classes(inner)
    return names


def discover_shards(benchmarks_dir: Path) -> list[str]:
    """One ``--bench`` regex per benchmark class of the suite (read, not imported)."""
    shards = []
    for path in sorted(benchmarks_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for name in _module_classes(tree.body):
            shards.append(rf"^{re.escape(path.stem)}\.{re.escape(name)}\.")
    if not shards:
        raise PipelineError(f"no benchmark classes in {benchmarks_dir}")
    return shards


def measured_keys(project: Project, machine: str, commit: str) -> set[str]:
    """Benchmark names already in this machine's result file(s) of ``commit``."""
    keys: set[str] = set()
    for path in (project.results / machine).glob(f"{commit[:8]}-*.json"):
        data = _results_doc(path, machine)
        if data.get("commit_hash") == commit:
            keys.update(data.get("results", {}))
    return keys


_UNREADABLE: set[Path] = set()  # said once per file, however often the shards are counted


def _results_doc(path: Path, machine: str) -> dict:
    """A result file's JSON; {} (its shards run again) for one a kill or a full disk cut short,
    named in one line."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        data = exc
    if isinstance(data, dict):
        return data
    if path not in _UNREADABLE:
        _UNREADABLE.add(path)
        why = "not a JSON object" if not isinstance(data, Exception) else data
        log(f"{path} (machine {machine}): not a readable asv results file ({why}); "
            "its shards run again")  # fmt: skip
    return {}


def discovered(project: Project) -> list[str]:
    """Benchmark names of asv's last discovery here (every ``asv run`` saves benchmarks.json,
    also when its ``--bench`` selected none)."""
    path = project.results / "benchmarks.json"
    return [n for n in json.loads(path.read_text()) if n != "version"] if path.exists() else []


def pending_shards(project: Project, machine: str, commit: str, shards: list[str]) -> list[str]:
    """The shards with no result yet for ``commit`` (a shard saves only when its run ends)."""
    keys = measured_keys(project, machine, commit)
    return [s for s in shards if not any(re.search(s, k) for k in keys)]


def resolve_commits(project: Project, specs: list[str]) -> list[str]:
    """Full hashes for names (``HEAD``, a hash) and ranges (``A..B``), newest first per range."""
    return pipeline_resolve_commits(project.repo, specs)


def new_commits(
    project: Project, machine: str, shards: list[str], max_commits: int, branch: str | None = None
) -> list[str]:
    """Commits of the branch (first parent, newest first, the last ``max_commits``) that still
    have a shard to measure on this machine. Not asv's ``NEW``, which counts any machine."""
    if max_commits < 1:
        raise PipelineError(f"--max-commits must be at least 1, not {max_commits}")
    recent = project.git(
        "rev-list", "--first-parent", f"--max-count={max_commits}", branch or project.branch
    ).split()
    return [c for c in recent if pending_shards(project, machine, c, shards)]


def run_shard(
    project: Project,
    asv_args: list[str],
    commit: str | list[str],
    shard: str,
    env: dict,
    timeout: float | None,
) -> int:
    """One ``asv run`` of one shard on one commit (or several, in turn), in its own process
    group; each line it prints is prefixed with the seconds since it started (where a run's
    time goes: building the commit, discovery, each class's sweep, the figures read back)."""
    hashfile = project.repo / ".asv" / "ci-commit.txt"
    hashfile.parent.mkdir(parents=True, exist_ok=True)
    from attnbench.atomic import write_text  # here: the package imports torch

    commits = [commit] if isinstance(commit, str) else commit
    write_text(hashfile, "".join(c + "\n" for c in commits))
    cmd = [*asv_args, "--bench", shard, f"HASHFILE:{hashfile}"]
    log("+ " + " ".join(cmd))
    proc = subprocess.Popen(
        cmd, cwd=project.repo, env=env, start_new_session=True, text=True, errors="replace",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    start = time.monotonic()
    copier = threading.Thread(target=_stamp_lines, args=(proc.stdout, start), daemon=True)
    copier.start()
    try:
        rc = proc.wait(timeout=timeout)
        copier.join()
        return rc
    except subprocess.TimeoutExpired:
        log(f"shard {shard} of {_names(commits)} ran past {timeout:.0f} s: stopping it")
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
        copier.join(timeout=30)
        return KILLED
    except BaseException:  # interrupted: take asv and its benchmark processes down too
        _kill_group(proc.pid, signal.SIGKILL)
        raise


def _names(commits: list[str]) -> str:
    return ",".join(c[:8] for c in commits)


def _stamp_lines(stream: IO[str], start: float) -> None:
    for line in stream:
        sys.stdout.write(f"{time.monotonic() - start:7.1f}s {line}")
        sys.stdout.flush()


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, sig)


def measure(
    project: Project,
    machine: str,
    commits: list[str],
    shards: list[str],
    *,
    env: dict,
    launch: str = "forkserver",
    shard_timeout: float | None = None,
    stop_after: float | None = None,
    extra: Sequence[str] = (),
    python: Path | None = None,
    again: bool = False,
    together: bool = False,
) -> int:
    """Measure each commit's pending shards (``again``: every shard); the worst exit status of
    the asv runs (0: all ok), or :data:`OUT_OF_TIME` when ``stop_after`` seconds passed with
    shards left. ``together``: one asv run per shard for all its pending commits."""
    asv = [str(asv_executable(python)), "run", "--machine", machine, "--launch-method", launch]
    asv += ["--record-samples", *extra]  # the gate tests time_* figures' samples
    failed: list[tuple[str, str, int]] = []  # (commits, shard, exit status)
    start = time.monotonic()

    def todo_of(commit: str) -> list[str]:
        return list(shards) if again else pending_shards(project, machine, commit, shards)

    if together:  # (commits, shard) runs: each shard once, on every commit that lacks it
        runs = [([c for c in commits if shard in todo_of(c)], shard) for shard in shards]
        runs = [(cs, shard) for cs, shard in runs if cs]
        log(f"{len(commits)} commit(s) together: {len(runs)} asv run(s)")
    else:
        runs = []
        for n, commit in enumerate(commits, 1):
            todo = todo_of(commit)
            log(f"[{n}/{len(commits)}] {commit[:8]}: {len(todo)} shard(s) to run, "
                f"{len(shards) - len(todo)} done")  # fmt: skip
            runs += [([commit], shard) for shard in todo]
    for cs, shard in runs:
        if stop_after is not None and time.monotonic() - start >= stop_after:
            left = sum(len(pending_shards(project, machine, c, shards)) for c in commits)
            log(f"stopped after {time.monotonic() - start:.0f} s: {left} shard(s) left; "
                "run again to resume")  # fmt: skip
            return OUT_OF_TIME
        shard_start = time.monotonic()
        rc = run_shard(project, asv, cs, shard, env, shard_timeout)
        log(f"shard {shard} of {_names(cs)} took {time.monotonic() - shard_start:.0f} s")
        log(f"shard {shard} of {_names(cs)} exited {rc}")
        if rc == 1 and not any(re.search(shard, n) for n in discovered(project)):
            log(f"shard {shard}: no such benchmark on this machine (asv: none selected)")
            continue
        if rc:
            failed.append((_names(cs), shard, rc))
    log(f"measured {len(commits)} commit(s) in {time.monotonic() - start:.0f} s")
    for short, shard, rc in failed:  # asv exits 2 if a benchmark failed; the rest is saved
        log(f"  not clean: {short} {shard}: exit {rc}")
    return max((rc for _, _, rc in failed), default=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=ROOT, help="project root (default: this one)")
    parser.add_argument("--machine", required=True, help="asv machine name, stable per runner")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--commits", help="comma-separated names or ranges (HEAD~1,HEAD; A..B)")
    which.add_argument("--new", action="store_true", help="commits of the branch not yet measured")
    parser.add_argument("--max-commits", type=int, default=10, help="bound for --new (newest)")
    parser.add_argument("--branch", help="branch for --new (default: asv.conf.json's first)")
    parser.add_argument(
        "--shard", action="append", help="--bench regex per shard (default: one per class)"
    )
    parser.add_argument("--shard-timeout", type=float, help="seconds before a shard is killed")
    parser.add_argument(
        "--stop-after", type=float, help="start no shard after this many seconds (exit 75)"
    )
    parser.add_argument(
        "--again", action="store_true", help="run every shard, also those with results"
    )
    parser.add_argument(
        "--together", action="store_true", help="one asv run per shard for all its commits"
    )
    parser.add_argument("--launch", default="forkserver", help="asv --launch-method")
    parser.add_argument("--set", help="ATTNBENCH_SET for the suite (default: the suite's)")
    parser.add_argument("--no-register", action="store_true", help="machine already registered")
    parser.add_argument("asv_args", nargs="*", help="extra arguments for asv run (after --)")
    args = parser.parse_args(argv)
    try:
        check_machine_name(args.machine)
        project = Project.load(args.repo)
        # a bad name stops here, before the machine is registered or anything measured
        specs = [] if args.new else [c for c in args.commits.split(",") if c]
        commits = [] if args.new else resolve_commits(project, specs)
        env = asv_env()
        if args.set:
            env["ATTNBENCH_SET"] = args.set
        # the full records (each figure's samples: what the gate tests) beside results/
        env.setdefault("ATTNBENCH_RECORDS", str(project.repo / "records" / args.machine))
        if not args.no_register:
            register_machine(args.machine, project.repo, env)
        shards = args.shard or discover_shards(project.benchmarks)
        if args.new:
            commits = new_commits(project, args.machine, shards, args.max_commits, args.branch)
        log(f"machine {args.machine}: {len(commits)} commit(s), {len(shards)} shard(s)")
        return measure(
            project,
            args.machine,
            commits,
            shards,
            env=env,
            launch=args.launch,
            shard_timeout=args.shard_timeout,
            stop_after=args.stop_after,
            extra=args.asv_args,
            again=args.again,
            together=args.together,
        )
    except PipelineError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
