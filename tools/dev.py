#!/usr/bin/env python3
"""The README's two commands, on a fresh machine with only Python >= 3.10, pip and git:

    python3 tools/dev.py bench    # make .venv, asv on HEAD and HEAD~1 (quick set), publish html/
    python3 tools/dev.py gate --machine NAME --base HEAD~1   # tools.ci.gate (exit 1: regression)
    python3 tools/dev.py test --all   # make .venv, run every test (as CI); without --all the
                                      # quick tier (no real asv runs, no Triton interpreter)
    python3 tools/dev.py setup        # make .venv only (what every other command does first)

On a machine whose Python already has a CUDA PyTorch, .venv sees it (system site packages) and
nothing is downloaded for torch; elsewhere the CPU build pinned in constraints/cpu.txt is used.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

# run as a script, this file's folder (tools/) is searched first for imports, so tools/ci is the
# package `ci` here; pipeline imports nothing third-party at load time (.venv may not exist yet)
from ci import pipeline

ROOT = Path(__file__).resolve().parent.parent

VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".attnbench-installed"


def sh(*cmd: str | Path, env: dict | None = None, check: bool = True) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, check=check).returncode


def system_has_cuda_torch() -> bool:
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def ensure_venv() -> None:
    """Create .venv and install attnbench (editable) with its dev tools, once."""
    inputs = [ROOT / "pyproject.toml", ROOT / "constraints" / "cpu.txt"]
    if STAMP.exists() and all(p.stat().st_mtime <= STAMP.stat().st_mtime for p in inputs):
        return
    reuse = system_has_cuda_torch()
    if not PY.exists():
        print(f"creating {VENV} ({'reusing the system CUDA PyTorch' if reuse else 'CPU PyTorch'})")
        venv.EnvBuilder(with_pip=True, system_site_packages=reuse).create(VENV)
    pip = [PY, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if not reuse:
        pip += ["-c", ROOT / "constraints" / "cpu.txt"]
    sh(*pip, "-e", ".[dev]")
    STAMP.touch()


def recent_commits(count: int = 2) -> str:
    """HEAD and the commit before it (HEAD alone in a one-commit history), for tools.ci.bench."""
    hashes = subprocess.check_output(
        ["git", "rev-list", f"--max-count={count}", "HEAD"], cwd=ROOT, text=True
    )
    return ",".join(hashes.split())


def machine_name() -> str:
    import platform

    return os.environ.get("ATTNBENCH_MACHINE") or platform.node() or "local"


def ci_script(name: str, *args: str, env: dict | None = None) -> int:
    """Run ``python -m tools.ci.<name>`` from the root with .venv's Python: the same step the
    workflows run."""
    return sh(PY, "-m", f"tools.ci.{name}", *args, env=env, check=False)


def bench(args: argparse.Namespace) -> int:
    start = time.monotonic()
    name = args.machine or machine_name()
    commits = None if args.new else args.commits or recent_commits()
    try:  # a bad machine or commit name stops the job here: nothing is run or published
        pipeline.check_machine_name(name)
        if commits is not None:
            pipeline.resolve_commits(ROOT, commits.split(","))
    except pipeline.PipelineError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    ensure_venv()
    which = ["--new", "--max-commits", str(args.max_commits)] if args.new else []
    which = which or ["--commits", commits]
    launch = "spawn" if args.launch == "cuda" else args.launch  # 'cuda': asv's default
    opts = ["--machine", name, *which, "--launch", launch]
    opts += ["--set", args.set] if args.set else []
    opts += ["--shard-timeout", str(args.shard_timeout)] if args.shard_timeout else []
    opts += ["--again"] if args.again else []
    # commit: one asv run per commit (fastest); class: one per benchmark class (a killed run
    # keeps every class it finished; each asv run costs a suite import more)
    for shard in args.shard or (["."] if args.split == "commit" else []):
        opts += ["--shard", shard]
    rc = ci_script("bench", *opts, "--", *args.asv_args)
    published = ci_script("publish")
    minutes = (time.monotonic() - start) / 60
    asv = BIN / "asv"
    print(
        f"\nDone in {minutes:.1f} min (asv runs: worst exit {rc}; publish exited {published}). "
        f"The site is in html/.\n"
        f"  browse:   {asv} preview           (then open the address it prints)\n"
        f"  compare:  {asv} compare --machine {name} HEAD~1 HEAD\n"
        f"  gate:     python3 tools/dev.py gate --machine {name} --base HEAD~1 --no-run\n"
        f"  (speedup and TFLOP/s figures improve by rising: see docs/reading-the-numbers.md)"
    )
    return rc or published


def test(args: argparse.Namespace) -> int:
    """The quick tier by default (a developer's loop); ``--all`` adds the slow tier (real asv
    runs, Triton's interpreter, the gate's trial): what CI runs. Skips grouped by reason."""
    ensure_venv()
    tier = [] if args.all else ["-m", "not slow"]
    return sh(PY, "-m", "pytest", "-rs", *tier, *args.pytest_args, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="run the asv suite for HEAD and HEAD~1 and publish html/")
    b.add_argument(
        "--again", action="store_true", help="measure again where results exist (--commits)"
    )
    b.add_argument(
        "--set",
        help="workload set(s) for ATTNBENCH_SET (default: the suite's: gpu with CUDA, else quick)",
    )
    b.add_argument("--machine", help="asv machine name (default: $ATTNBENCH_MACHINE or hostname)")
    b.add_argument("--commits", help="comma-separated names or A..B ranges (default: HEAD~1,HEAD)")
    b.add_argument("--new", action="store_true", help="the branch's commits not yet measured here")
    b.add_argument("--max-commits", type=int, default=10, help="bound for --new (newest first)")
    b.add_argument(
        "--split",
        choices=["commit", "class"],
        default="commit",
        help="one asv run per commit (default) or per benchmark class (resumable)",
    )
    b.add_argument("--shard", action="append", help="asv --bench regex per shard (see --split)")
    b.add_argument("--shard-timeout", type=float, help="seconds before a shard is stopped")
    b.add_argument("--launch", default="forkserver", help="asv launch method ('cuda': spawn)")
    b.add_argument("asv_args", nargs="*", help="extra arguments for asv run (after --)")
    sub.add_parser("setup", help="make .venv (PyTorch, asv, attnbench) and nothing else")
    t = sub.add_parser("test", help="run the tests (quick tier; --all: every test, as CI)")
    t.add_argument("--all", action="store_true", help="also the slow tier (what CI runs)")
    t.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    g = sub.add_parser(
        "gate", add_help=False, help="tools.ci.gate: base vs head, exit 1 on a regression"
    )
    g.add_argument("gate_args", nargs=argparse.REMAINDER, help="arguments for tools.ci.gate")
    p = sub.add_parser(
        "publish", add_help=False, help="tools.ci.publish: asv publish (+ leaderboard)"
    )
    p.add_argument("publish_args", nargs=argparse.REMAINDER, help="arguments for tools.ci.publish")
    argv = sys.argv[1:]
    if argv and argv[0] in ("gate", "publish"):  # all their arguments go to the script
        ensure_venv()
        return ci_script(argv[0], *argv[1:])
    args = parser.parse_args(argv)
    if args.command == "setup":
        ensure_venv()
        return 0
    return bench(args) if args.command == "bench" else test(args)


if __name__ == "__main__":
    sys.exit(main())
