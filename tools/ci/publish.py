#!/usr/bin/env python3
"""Build the site: ``asv publish`` (every machine in results/ on one site), then the
leaderboard page (``attnbench leaderboard``) where this checkout has that command.

asv publish shows a result only for parameters that results/benchmarks.json lists, and each
``asv run`` rewrites that file with what it discovered on its machine (the CPU's workload set,
or the GPU's). So the parameters of every result file are merged into it first: every
machine's figures reach the site.

    python tools/ci/publish.py                # html/ (asv.conf.json's html_dir)
    python tools/ci/publish.py --params-only  # only merge the parameters into benchmarks.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import ROOT, PipelineError, Project, asv_env, asv_executable, log, sh


def merge_params(project: Project) -> int:
    """Add each result file's parameter values to results/benchmarks.json (its own order first,
    then as found); how many benchmarks gained values."""
    path = project.results / "benchmarks.json"
    if not path.exists():
        raise PipelineError(f"no {path}: run asv first")
    benchmarks = json.loads(path.read_text())
    grown: set[str] = set()
    for result_file in sorted(project.results.glob("*/*.json")):
        if result_file.name == "machine.json":
            continue
        data = json.loads(result_file.read_text())
        iparams = data["result_columns"].index("params")
        for name, row in data.get("results", {}).items():
            known = benchmarks.get(name)
            if not isinstance(known, dict) or len(row[iparams]) != len(known["params"]):
                continue  # a benchmark this suite no longer has, or reshaped
            for values, new in zip(known["params"], row[iparams], strict=True):
                for value in new:
                    if value not in values:
                        values.append(value)
                        grown.add(name)
    if grown:
        path.write_text(json.dumps(benchmarks, indent=4, sort_keys=True) + "\n")
    return len(grown)


def has_leaderboard(project: Project) -> bool:
    probe = [sys.executable, "-m", "attnbench", "leaderboard", "--help"]
    return subprocess.run(probe, cwd=project.repo, capture_output=True).returncode == 0


def publish(project: Project, env: dict, leaderboard: bool = True) -> Path:
    """asv publish, then the leaderboard (if available); the site's index.html."""
    log(f"publish: {merge_params(project)} benchmark(s) gained parameters of other machines")
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
    parser.add_argument("--params-only", action="store_true", help="merge parameters only")
    args = parser.parse_args(argv)
    try:
        project = Project.load(args.repo)
        if args.params_only:
            log(f"{merge_params(project)} benchmark(s) gained parameters")
        else:
            publish(project, asv_env(), leaderboard=not args.no_leaderboard)
    except PipelineError as exc:
        print(f"publish: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
