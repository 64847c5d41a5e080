#!/usr/bin/env python3
"""The README's two commands, on a fresh machine with only Python >= 3.10, pip and git:

    python3 tools/dev.py bench    # make .venv, asv on HEAD and HEAD~1 (quick set), publish html/
    python3 tools/dev.py test     # make .venv, run the tests

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


def asv_env() -> dict:
    """asv's environments reuse this machine's PyTorch instead of installing it per commit."""
    probe = (
        "import os, sysconfig, torch; "
        "print(os.pathsep.join(dict.fromkeys([sysconfig.get_paths()['purelib'], "
        "os.path.dirname(os.path.dirname(torch.__file__))])))"
    )
    env = dict(os.environ)
    env["VIRTUALENV_SYSTEM_SITE_PACKAGES"] = "1"
    # read by asv.conf.json's install_command, which lists these in a .pth file of each asv
    # environment: torch (and the rest) come from here; .venv's editable attnbench does not,
    # as .pth files of an appended directory are not processed, so each commit's own is used
    env["ATTNBENCH_HOST_SITE"] = subprocess.check_output([PY, "-c", probe], text=True).strip()
    return env


def commits_to_run() -> str:
    """HEAD and the commit before it (HEAD alone in a one-commit history), as an asv HASHFILE."""
    hashes = subprocess.check_output(
        ["git", "rev-list", "--max-count=2", "HEAD"], cwd=ROOT, text=True
    )
    path = ROOT / ".asv" / "commits.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(hashes)
    return f"HASHFILE:{path}"


def machine_name() -> str:
    import platform

    return os.environ.get("ATTNBENCH_MACHINE") or platform.node() or "local"


def bench(args: argparse.Namespace) -> int:
    start = time.monotonic()
    ensure_venv()
    env = asv_env()
    if args.set:
        env["ATTNBENCH_SET"] = args.set
    asv = BIN / "asv"
    name = args.machine or machine_name()
    sh(PY, "-c", f"from attnbench.system import register_asv_machine as r; print(r({name!r}))")
    launch = ["--launch-method", "forkserver"] if "cuda" not in args.launch else []
    rc = sh(
        asv,
        "run",
        "--machine",
        name,
        *launch,
        *args.asv_args,
        args.commits or commits_to_run(),
        env=env,
        check=False,
    )
    sh(asv, "publish", env=env)
    minutes = (time.monotonic() - start) / 60
    print(
        f"\nDone in {minutes:.1f} min (asv run exited {rc}). The site is in html/.\n"
        f"  browse:   {asv} preview           (then open the address it prints)\n"
        f"  compare:  {asv} compare --machine {name} HEAD~1 HEAD\n"
        f"  (speedup and TFLOP/s figures improve by rising: see docs/reading-the-numbers.md)"
    )
    return rc


def test(args: argparse.Namespace) -> int:
    ensure_venv()
    return sh(PY, "-m", "pytest", *args.pytest_args, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="run the asv suite for HEAD and HEAD~1 and publish html/")
    b.add_argument("--set", help="workload set(s) for ATTNBENCH_SET (default: quick)")
    b.add_argument("--machine", help="asv machine name (default: $ATTNBENCH_MACHINE or hostname)")
    b.add_argument("--commits", help="asv commit range (default: HEAD and HEAD~1)")
    b.add_argument("--launch", default="forkserver", help="'forkserver' (CPU) or 'cuda' (spawn)")
    b.add_argument("asv_args", nargs="*", help="extra arguments for asv run (after --)")
    t = sub.add_parser("test", help="run the tests")
    t.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = parser.parse_args()
    return bench(args) if args.command == "bench" else test(args)


if __name__ == "__main__":
    sys.exit(main())
