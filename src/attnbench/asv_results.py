"""asv's results directory read through asv's own API (``asv.results``, ``asv.util``), with the
files asv would skip named one line each instead of failing the whole read.

asv walks ``results/`` (every folder, recursively): a folder's result files count only if its
``machine.json`` loads; a result file that does not load (cut in half, empty) is skipped; and
``asv publish`` draws a result only if its commit is on one of ``branches`` in asv.conf.json
(first-parent history, as asv's git plugin lists it) or tagged. :func:`scan` applies the same
rules and says, for each file left out, which file, which machine and why.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_NOT_RESULTS = {"machine.json", "benchmarks.json"}


@dataclass(frozen=True)
class Skipped:
    """A file under results/ that asv leaves out, and why."""

    path: Path
    machine: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} (machine {self.machine}): {self.reason}"


@dataclass
class Scan:
    """What asv would use: per machine, its machine.json and loaded ``asv.results.Results``."""

    machines: dict[str, dict] = field(default_factory=dict)
    results: dict[str, list[Any]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)


def _reason(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    if "': " in text:  # asv's "Error parsing JSON in file '<path>': <why>": the line names it
        text = text.split("': ", 1)[1]
    return text or type(exc).__name__


def load_results_file(path: str | os.PathLike[str], machine: str) -> Any:
    """``asv.results.Results.load``, or a :class:`Skipped` saying why it would not load."""
    from asv import util
    from asv.results import Results

    try:
        return Results.load(str(path), machine_name=machine)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, util.UserError) as exc:
        kind = "empty file" if _is_empty(path) else "not a readable asv results file"
        return Skipped(Path(path), machine, f"{kind} ({_reason(exc)})")


def _is_empty(path: str | os.PathLike[str]) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def _machine_of(folder: Path) -> tuple[str | None, str | None, dict]:
    """(machine name, problem, machine.json) of a results folder, as asv judges it."""
    from asv import util
    from asv.machine import Machine

    path = folder / "machine.json"
    try:
        info = util.load_json(str(path), api_version=Machine.api_version)
    except FileNotFoundError:
        return None, "no machine.json in its folder: asv skips the folder", {}
    except (OSError, ValueError, util.UserError) as exc:
        return None, f"its folder's machine.json does not load ({_reason(exc)})", {}
    name = info.get("machine") if isinstance(info, dict) else None
    if not isinstance(name, str):
        return None, "its folder's machine.json names no machine", {}
    return name, None, info


def scan(results_dir: str | os.PathLike[str], counted: Collection[str] | None = None) -> Scan:
    """Load every result file asv would load; ``counted``: the commit hashes that count
    (see :func:`counted_commits`; None: every commit)."""
    root = Path(results_dir)
    out = Scan()
    for here, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        names = sorted(f for f in files if f.endswith(".json") and f not in _NOT_RESULTS)
        if not names:
            continue
        folder = Path(here)
        machine, problem, info = _machine_of(folder)
        if machine is None:
            out.skipped += [Skipped(folder / n, folder.name, problem or "") for n in names]
            continue
        out.machines[machine] = info
        for name in names:
            loaded = load_results_file(folder / name, machine)
            if isinstance(loaded, Skipped):
                out.skipped.append(loaded)
            elif counted is not None and loaded.commit_hash not in counted:
                reason = (
                    f"commit {loaded.commit_hash[:8]} is on none of asv.conf.json's branches "
                    "(asv publish leaves it out)"
                )
                out.skipped.append(Skipped(folder / name, machine, reason))
            else:
                out.results.setdefault(machine, []).append(loaded)
    return out


def find_config(results_dir: str | os.PathLike[str]) -> Path | None:
    """The asv.conf.json whose results_dir this is (asv's default layout: its parent)."""
    candidate = Path(results_dir).resolve().parent / "asv.conf.json"
    return candidate if candidate.is_file() else None


def counted_commits(config: str | os.PathLike[str]) -> set[str] | None:
    """The commits ``asv publish`` draws: first-parent history of each of the configuration's
    ``branches``, and tagged commits. None where the repository is not a local git checkout
    (nothing is filtered then)."""
    from asv import util
    from asv.plugins.git import Git

    config = Path(config)
    conf = util.load_json(str(config), js_comments=True)
    repo = Path(conf.get("repo") or ".")
    repo = repo if repo.is_absolute() else (config.parent / repo).resolve()
    if conf.get("dvcs", "git") != "git" or not Git.is_local_repo(str(repo)):
        return None
    git = Git(str(repo), str(repo))
    try:
        branches = conf.get("branches") or [None]  # None: the default branch, as asv does
        commits = {c for branch in branches for c in git.get_branch_commits(branch)}
        commits.update(git.get_tags().values())
    except (util.ProcessError, subprocess.SubprocessError, OSError):
        return None
    return commits
