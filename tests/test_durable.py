"""Durable results: files written whole or not at all (attnbench.atomic), asv's own results
saves among them (killed mid-save, the file still loads), and a results file cut short gives
one line naming it and its machine while the rest of the site publishes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from attnbench import atomic

from .conftest import ROOT

MACHINE = "box-1"


# -- attnbench.atomic ------------------------------------------------------------------------
def test_write_replaces_whole_and_keeps_permissions(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic.write_json(target, {"a": 1}, indent=1)
    assert json.loads(target.read_text()) == {"a": 1}
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()  # as open() would make it
    target.chmod(0o640)
    atomic.write_text(target, "second\n")
    assert target.read_text() == "second\n" and target.stat().st_mode & 0o777 == 0o640
    atomic.write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]  # no temp left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "results.json"
    target.write_text('{"old": true}')
    with pytest.raises(RuntimeError), atomic.atomic_open(target) as f:
        f.write('{"new": ')
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    with pytest.raises(ValueError, match="whole files"):
        atomic.atomic_open(target, "a").__enter__()


def test_asv_plugin_makes_asvs_writer_atomic(tmp_path):
    from asv import util

    from attnbench import asv_plugin

    original = util.write_json
    try:
        asv_plugin.setup()
        assert util.write_json is atomic._asv_write_json
        util.write_json(str(tmp_path / "x.json"), {"b": 1, "a": 2}, api_version=2)
        text = (tmp_path / "x.json").read_text()
        assert json.loads(text) == {"a": 2, "b": 1, "version": 2}
        assert text.startswith('{\n    "a": 2')  # asv's own layout: indent 4, sorted
    finally:
        util.write_json = original


# -- killed during asv's save ----------------------------------------------------------------
#: a process that saves one asv results file over and over, as asv run does after each
#: benchmark; atomic.py is loaded by path (the attnbench package would import torch)
SAVER = r"""
import importlib.util, sys
from asv.results import Results
spec = importlib.util.spec_from_file_location("atomic_under_test", sys.argv[1])
atomic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic)
if sys.argv[4] == "atomic":
    atomic.install_in_asv()
result = Results.load(sys.argv[2])
result.save(sys.argv[3])
print("saved", flush=True)
while True:
    result.save(sys.argv[3])
"""


def _results_doc(commit: str, date: int, results: dict) -> dict:
    return {
        "commit_hash": commit,
        "date": date,
        "env_name": "virtualenv-py3.11",
        "params": {"machine": MACHINE, "python": "3.11"},
        "python": "3.11",
        "requirements": {},
        "env_vars": {},
        "result_columns": ["result", "params", "version", "samples"],
        "results": results,
        "version": 2,
    }


def _big_results(path: Path, benchmarks: int = 150, values: int = 120) -> int:
    """An asv results file of a few MB (so that a save takes a while); its benchmark count."""
    rng = random.Random(0)
    impls = [f"'impl{i}'" for i in range(values // 4)]
    shapes = ["'w/prefill/a'", "'w/decode/b'", "'w/train/c'", "'w/x/d'"]
    results = {
        f"m.C{b}.track_x": [
            [rng.random() for _ in range(values)],
            [impls, shapes],
            "v1",
            [[rng.random() for _ in range(10)] for _ in range(values)],
        ]
        for b in range(benchmarks)
    }
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_results_doc("c" * 40, 1000, results)))
    return benchmarks


def _kill_during_saves(tmp_path: Path, mode: str, rounds: int) -> list[str]:
    """SIGKILL a saving process ``rounds`` times at random moments; what was wrong after each."""
    from asv.results import Results, iter_results

    source = tmp_path / "src" / MACHINE / "cccccccc-virtualenv-py3.11.json"
    count = _big_results(source)
    out = tmp_path / "out"
    saved = out / MACHINE / source.name
    (out / MACHINE).mkdir(parents=True)
    (out / MACHINE / "machine.json").write_text(json.dumps({"machine": MACHINE, "version": 1}))
    rng = random.Random(1)
    problems = []
    for n in range(rounds):
        cmd = [sys.executable, "-c", SAVER, str(ROOT / "src/attnbench/atomic.py"), str(source)]
        proc = subprocess.Popen([*cmd, str(out), mode], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "saved"
            import time

            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        try:
            loaded = Results.load(str(saved), machine_name=MACHINE)
            if len(loaded.get_all_result_keys()) != count:
                problems.append(f"round {n}: {len(loaded.get_all_result_keys())} benchmarks")
        except Exception as exc:
            problems.append(f"round {n}: {type(exc).__name__}: {str(exc)[-80:]}")
        if mode == "atomic":  # a temp file a kill left behind is hidden and never loaded
            assert [r.commit_hash for r in iter_results(str(out))] == ["c" * 40]
    return problems


def test_a_kill_during_asvs_save_leaves_a_whole_results_file(tmp_path):
    assert _kill_during_saves(tmp_path, "atomic", rounds=6) == []


# -- a corrupt file on the site --------------------------------------------------------------
def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def _site_project(repo: Path) -> list[Path]:
    """A git repository of four commits with asv results of each on one machine (as asv
    writes them), asv.conf.json with this repository's plugin; the result files."""
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    commits = []
    for n in range(4):
        (repo / "n.txt").write_text(str(n))
        _git(repo, "add", "n.txt")
        _git(repo, "commit", "-q", "-m", f"c{n}")
        commits.append(_git(repo, "rev-parse", "HEAD"))
    conf = {
        "version": 1,
        "project": "p",
        "repo": ".",
        "branches": ["main"],
        "results_dir": "results",
        "html_dir": "html",
        "plugins": [".attnbench.asv_plugin"],
    }
    (repo / "asv.conf.json").write_text(json.dumps(conf))
    real = json.loads((ROOT / "results" / "benchmarks.json").read_text())
    name = "forward.ForwardMetrics.track_tflops"
    impls, workloads = ["'eager'", "'sdpa'"], ["'h8d64/prefill/s512/b1/causal/fp32'"]
    bench = {**real[name], "params": [impls, workloads]}
    results = repo / "results"
    (results / MACHINE).mkdir(parents=True)
    (results / "benchmarks.json").write_text(json.dumps({name: bench, "version": 2}))
    info = {"machine": MACHINE, "os": "Linux", "arch": "x86_64", "cpu": "c", "version": 1}
    (results / MACHINE / "machine.json").write_text(json.dumps(info))
    files = []
    for n, commit in enumerate(commits):
        row = [[1.0 + n, 2.0 + n], [impls, workloads], bench["version"]]
        doc = _results_doc(commit, 1000 * (n + 1), {name: row})
        doc["result_columns"] = ["result", "params", "version"]
        path = results / MACHINE / f"{commit[:8]}-virtualenv-py3.11.json"
        path.write_text(json.dumps(doc))
        files.append(path)
    return files


def test_publish_names_each_corrupt_results_file_and_publishes_the_rest(tmp_path):
    repo = tmp_path / "repo"
    first, cut, empty, last = _site_project(repo)
    cut.write_text(cut.read_text()[:150])
    empty.write_text("")
    cmd = [sys.executable, "-m", "tools.ci.publish", "--repo", str(repo)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for damaged, words in ((cut, "not a readable asv results file"), (empty, "empty file")):
        ours = [line for line in out.splitlines() if line.strip().startswith(str(damaged))]
        assert len(ours) == 1, out[-3000:]
        assert f"(machine {MACHINE})" in ours[0] and words in ours[0]
    assert "Traceback" not in out and "JSONDecodeError" not in out
    graph = repo / "html" / "graphs" / "branch-main" / f"machine-{MACHINE}" / "python-3.11"
    points = json.loads((graph / "forward.ForwardMetrics.track_tflops.json").read_text())
    assert [values for _revision, values in points] == [[1.0, 2.0], [4.0, 5.0]]  # first, last
    board = (repo / "html" / "leaderboard" / "index.html").read_text()
    assert f"Commit {last.name[:8]}" in board and f"Change against {first.name[:8]}" in board
    index = (repo / "html" / "index.html").read_text()
    assert 'data-attnbench="front-door"' in index


def test_bench_names_a_corrupt_results_file_once_and_measures_it_again(tmp_path, capsys):
    from tools.ci import bench, pipeline

    repo = tmp_path / "repo"
    files = _site_project(repo)
    files[1].write_text(files[1].read_text()[:100])
    project = pipeline.Project.load(repo)
    commit = _git(repo, "rev-parse", "HEAD~2")  # the cut file's commit
    shards = [r"^forward\.ForwardMetrics\."]
    assert bench.pending_shards(project, MACHINE, commit, shards) == shards
    assert bench.pending_shards(project, MACHINE, commit, shards) == shards
    assert bench.pending_shards(project, MACHINE, _git(repo, "rev-parse", "HEAD"), shards) == []
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and str(files[1]) in lines[0] and f"machine {MACHINE}" in lines[0]
