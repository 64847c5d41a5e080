#!/usr/bin/env python3
"""Build the site: ``asv publish`` (every machine in results/ on one site), then the
leaderboard page (``attnbench leaderboard``) where this checkout has that command.

    python tools/ci/publish.py            # html/ (asv.conf.json's html_dir)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import ROOT, PipelineError, Project, asv_env, asv_executable, log, sh


def has_leaderboard(project: Project) -> bool:
    probe = [sys.executable, "-m", "attnbench", "leaderboard", "--help"]
    return subprocess.run(probe, cwd=project.repo, capture_output=True).returncode == 0


def publish(project: Project, env: dict, leaderboard: bool = True) -> Path:
    """asv publish, then the leaderboard (if available); the site's index.html."""
    sh(asv_executable(), "publish", cwd=project.repo, env=env)
    index = project.html / "index.html"
    if not index.exists():
        raise PipelineError(f"asv publish wrote no {index}")
    if leaderboard and has_leaderboard(project):
        sh(
            sys.executable,
            "-m",
            "attnbench",
            "leaderboard",
            "--results",
            project.results,
            "--html",
            project.html,
            cwd=project.repo,
            env=env,
        )
    elif leaderboard:
        log("publish: no 'attnbench leaderboard' in this checkout: site without a leaderboard")
    log(f"site: {index}")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, default=ROOT, help="project root (default: this one)")
    parser.add_argument("--no-leaderboard", action="store_true", help="asv's site only")
    args = parser.parse_args(argv)
    try:
        project = Project.load(args.repo)
        publish(project, asv_env(), leaderboard=not args.no_leaderboard)
    except PipelineError as exc:
        print(f"publish: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
