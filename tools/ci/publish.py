#!/usr/bin/env python3
"""Build the site: ``asv publish`` (every machine in results/ on one site), then the
leaderboard page (``attnbench leaderboard``) where this checkout has that command; the site
opens on the leaderboard and needs no network.

asv publish shows a result only for benchmarks and parameters that results/benchmarks.json
lists. ``asv run`` only adds to that file (the plugin attnbench.asv_definitions), so it holds
every machine's benchmarks; the parameter values of every result file are merged into it
first too (results copied in from another checkout), so every machine's figures reach the site.

Every file asv leaves out (a result file cut short or empty, a folder without machine.json, a
commit on none of asv.conf.json's branches) is listed, one line each; the rest is published.
asv's pages load their scripts and styles from the copies the site ships
(:mod:`attnbench.offline_site`); publishing fails if a page still loads one from elsewhere.

    python -m tools.ci.publish                # html/ (asv.conf.json's html_dir)
    python -m tools.ci.publish --params-only  # only merge the parameters into benchmarks.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .pipeline import ROOT, PipelineError, Project, asv_env, asv_executable, log, sh


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
        data = _result_doc(result_file)
        if data is None:
            continue  # named by report_skipped: asv leaves it out too
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
        from attnbench.atomic import write_json

        write_json(path, benchmarks, indent=4, sort_keys=True)
    return len(grown)


def _result_doc(path: Path) -> dict | None:
    """A result file's JSON, or None for one that is cut short, empty or not asv's."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and "params" in (data.get("result_columns") or [])
    return data if ok else None


#: first in asv's index.html: opened without a route (#...), the site shows the leaderboard
FRONT_DOOR = (
    '<script data-attnbench="front-door">'
    'if (!window.location.hash) {{ window.location.replace("{target}"); }}</script>'
)


def report_skipped(project: Project) -> list:
    """Name each file of results/ that asv publish leaves out, one line each."""
    from attnbench import asv_results

    counted = asv_results.counted_commits(project.repo / "asv.conf.json")
    skipped = asv_results.scan(project.results, counted).skipped
    if skipped:
        log(f"publish: asv leaves out {len(skipped)} file(s) of {project.results}:")
    for item in skipped:
        log(f"  {item}")
    return skipped


def add_front_door(index: Path, target: str = "leaderboard/index.html") -> None:
    """Make asv's index.html open on ``target`` when no asv page is asked for."""
    from attnbench.atomic import write_text

    page = index.read_text(encoding="utf-8")
    if 'data-attnbench="front-door"' in page:
        return
    head = page.lower().index("<head>") + len("<head>")
    write_text(index, page[:head] + "\n    " + FRONT_DOOR.format(target=target) + page[head:])


def write_leaderboard(project: Project) -> Path | None:
    """The leaderboard page, where this attnbench has one (a file asv leaves out has already
    been named, so it is not named again)."""
    try:
        from attnbench.leaderboard import LeaderboardError
        from attnbench.leaderboard import write_leaderboard as write
    except ImportError:
        log("publish: no leaderboard in this attnbench: site without a leaderboard")
        return None
    try:
        config = project.repo / "asv.conf.json"
        files = write(project.results, project.html, config, on_skip=lambda _skipped: None)
    except LeaderboardError as exc:
        raise PipelineError(f"leaderboard: {exc}") from None
    log(f"leaderboard: {files[0]} ({len(files) - 1} figures)")
    return files[0]


def check_offline(html: Path) -> None:
    """Fail if a page of the site still loads a script or style sheet from another host."""
    from attnbench.offline_site import external_assets

    remote = {p.name: external_assets(p.read_text(encoding="utf-8")) for p in html.glob("*.html")}
    remote = {name: urls for name, urls in remote.items() if urls}
    if remote:
        raise PipelineError(f"pages that would need the network: {remote}")


def publish(project: Project, env: dict, leaderboard: bool = True) -> Path:
    """asv publish, then the leaderboard (if available); the site's index.html."""
    from attnbench.offline_site import OfflineSiteError, make_offline

    report_skipped(project)
    log(f"publish: {merge_params(project)} benchmark(s) gained parameters of other machines")
    sh(asv_executable(), "publish", cwd=project.repo, env=env)
    index = project.html / "index.html"
    if not index.exists():
        raise PipelineError(f"asv publish wrote no {index}")
    try:
        make_offline(project.html)  # the asv plugin did it already; here for any other asv
    except OfflineSiteError as exc:
        raise PipelineError(str(exc)) from None
    check_offline(project.html)
    if leaderboard and write_leaderboard(project):
        add_front_door(index)
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
