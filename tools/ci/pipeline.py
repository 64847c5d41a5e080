"""What every step of the continuous pipeline shares: the project's asv configuration, the
environment asv runs in, machine registration and running a command with its exit code kept.

Used by tools.ci.bench, gate, publish and tools/dev.py; the same code runs in the
GitHub workflows and on a laptop.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


class PipelineError(Exception):
    """A step cannot go on; the message says why (printed without a traceback)."""


def log(message: str) -> None:
    print(message, flush=True)


def sh(
    *cmd: str | Path,
    cwd: Path,
    env: dict | None = None,
    check: bool = True,
    capture: bool = False,
) -> subprocess.CompletedProcess:
    """Run a command, echoing it; ``check`` raises :class:`PipelineError` on a non-zero exit."""
    args = [str(c) for c in cmd]
    log("+ " + " ".join(args))
    proc = subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=capture)
    if check and proc.returncode != 0:
        tail = ((proc.stdout or "") + (proc.stderr or ""))[-4000:] if capture else ""
        raise PipelineError(f"{' '.join(args)} exited {proc.returncode}\n{tail}".rstrip())
    return proc


def asv_executable(python: Path | None = None) -> Path:
    """asv next to ``python`` (the running one by default), else the one on PATH."""
    here = Path(python or sys.executable).parent / "asv"
    if here.exists():
        return here
    found = shutil.which("asv")
    if not found:
        raise PipelineError(f"asv not found next to {python or sys.executable} nor on PATH")
    return Path(found)


def asv_env(python: Path | None = None, base: dict | None = None) -> dict:
    """The environment for an asv command: ``base`` (default: this process's), as it is.

    Nothing needs setting: asv's per-commit environments find the PyTorch of the Python that
    runs asv through the project's asv plugin (attnbench/asv_host.py, asv.conf.json), so
    a plain ``asv run`` works too. ``python`` is accepted for the callers that name the
    Python whose asv they run; one place to adjust asv's environment, should it ever need it.
    """
    return dict(os.environ if base is None else base)


_MACHINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_machine_name(name: str) -> str:
    """``name`` if it is a safe asv machine name (it becomes a folder of results/)."""
    if not _MACHINE_NAME.fullmatch(name or ""):
        raise PipelineError(
            f"invalid machine name {name!r}: use letters, digits, '.', '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def resolve_commits(repo: Path, specs: list[str]) -> list[str]:
    """Full hashes for names (``HEAD``, a hash) and ranges (``A..B``, newest first along first
    parents), duplicates dropped; a name git does not know, or no commit at all, is an error."""
    out: list[str] = []
    for spec in specs:
        if ".." in spec:
            proc = _git(repo, "rev-list", "--first-parent", spec)
            if proc.returncode != 0:
                why = (proc.stderr.strip().splitlines() or ["git rev-list failed"])[0]
                raise PipelineError(f"no commit range {spec!r} in {repo}: {why}")
            out += proc.stdout.split()
        else:
            proc = _git(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
            if proc.returncode != 0:
                raise PipelineError(f"no commit named {spec!r} in {repo}")
            out.append(proc.stdout.strip())
    if not out:
        raise PipelineError(f"no commits in {','.join(specs)!r}")
    return list(dict.fromkeys(out))


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def register_machine(name: str, repo: Path, env: dict, python: Path | None = None) -> None:
    """Record this machine for asv under ``name`` (OS, CPU, RAM, GPU) in ``~/.asv-machine.json``."""
    check_machine_name(name)
    code = f"from attnbench.system import register_asv_machine as r; print(r({name!r}))"
    sh(python or sys.executable, "-c", code, cwd=repo, env=env)


@dataclass(frozen=True)
class Project:
    """One asv project: the repository and the directories asv.conf.json names."""

    repo: Path
    results: Path
    html: Path
    benchmarks: Path
    branch: str

    @classmethod
    def load(cls, repo: Path) -> Project:
        from asv import util

        repo = Path(repo).resolve()
        conf_path = repo / "asv.conf.json"
        if not conf_path.exists():
            raise PipelineError(f"{repo} has no asv.conf.json")
        conf = util.load_json(str(conf_path), js_comments=True)
        return cls(
            repo=repo,
            results=repo / conf.get("results_dir", "results"),
            html=repo / conf.get("html_dir", "html"),
            benchmarks=repo / conf.get("benchmark_dir", "benchmarks"),
            branch=(conf.get("branches") or ["main"])[0],
        )

    def git(self, *args: str) -> str:
        return subprocess.check_output(["git", "-C", str(self.repo), *args], text=True).strip()

    def resolve(self, name: str) -> str:
        """A full commit hash for a name (``HEAD~2``, a branch, a short hash)."""
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        except subprocess.CalledProcessError:
            raise PipelineError(f"no commit named {name!r} in {self.repo}") from None
