#!/usr/bin/env python3
"""Keep asv results on a branch of their own (``asv-results``): its tree is what ``results/``
holds (one directory per machine, benchmarks.json). Runners restore it before measuring and
save into it after, so every runner's results meet in one history and on one site.

    python -m tools.ci.results_branch restore --from .asv-results --results results
    RESULTS_AUTH_HEADER='AUTHORIZATION: basic ...' python -m tools.ci.results_branch save \\
        --from results --worktree .asv-results --branch asv-results --remote URL
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .pipeline import PipelineError, log


def copy_results(src: Path, dst: Path) -> int:
    """Copy every result file of ``src`` into ``dst`` (same names replaced); how many. Result
    files: asv's JSON and attnbench's records (``<machine>-records/<commit>.jsonl``)."""
    if not src.is_dir():
        raise PipelineError(f"no results directory {src}")
    count = 0
    for path in sorted([*src.rglob("*.json"), *src.rglob("*.jsonl")]):
        rel = path.relative_to(src)
        if ".git" in rel.parts:
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dst / rel)
        count += 1
    return count


def _git(worktree: Path, *args: str, env: dict | None = None) -> str:
    cmd = ["git", "-C", str(worktree), "-c", "user.name=attnbench-ci"]
    cmd += ["-c", "user.email=attnbench-ci@users.noreply.github.com", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise PipelineError(f"git {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def save(
    src: Path, worktree: Path, branch: str, remote: str, message: str, attempts: int = 3
) -> bool:
    """Commit ``src``'s results onto ``branch`` (a checkout of it in ``worktree``, or a new
    orphan branch there) and push; False when nothing changed. ``RESULTS_AUTH_HEADER``, if
    set, is sent as an HTTP header (the token never lands in a file or an argument)."""
    if not (worktree / ".git").exists():
        log(f"no checkout of {branch} in {worktree}: starting the branch")
        worktree.mkdir(parents=True, exist_ok=True)
        _git(worktree, "init", "-q")
        _git(worktree, "checkout", "-q", "--orphan", branch)
    copied = copy_results(src, worktree)
    _git(worktree, "add", "-A")
    if not _git(worktree, "status", "--porcelain"):
        log(f"{copied} result file(s), none new: nothing to push")
        return False
    _git(worktree, "commit", "-q", "-m", message)
    env = dict(os.environ)
    if header := env.pop("RESULTS_AUTH_HEADER", ""):
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraheader")
        env["GIT_CONFIG_VALUE_0"] = header
    for attempt in range(1, attempts + 1):
        try:
            _git(worktree, "push", "-q", remote, f"HEAD:refs/heads/{branch}", env=env)
            log(f"pushed {copied} result file(s) to {branch}")
            return True
        except PipelineError:
            if attempt == attempts:
                raise
        # another runner pushed first: machines write their own directories, so replaying
        # this commit on top of theirs never conflicts
        log(f"push to {branch} rejected (attempt {attempt}): rebasing onto the remote")
        _git(worktree, "fetch", "-q", remote, branch, env=env)
        _git(worktree, "rebase", "-q", "FETCH_HEAD")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("restore", help="copy a checkout of the branch into results/")
    r.add_argument("--from", dest="src", type=Path, required=True)
    r.add_argument("--results", type=Path, default=Path("results"))
    s = sub.add_parser("save", help="commit results onto the branch and push it")
    s.add_argument("--from", dest="src", type=Path, required=True)
    s.add_argument("--worktree", type=Path, required=True, help="checkout of the branch")
    s.add_argument("--branch", default="asv-results")
    s.add_argument("--remote", required=True, help="URL or path of the repository")
    s.add_argument("--message", default="asv results")
    args = parser.parse_args(argv)
    try:
        if args.command == "restore":
            log(f"restored {copy_results(args.src, args.results)} result file(s)")
        else:
            save(args.src, args.worktree, args.branch, args.remote, args.message)
    except PipelineError as exc:
        print(f"results_branch: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
