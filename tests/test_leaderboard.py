"""``attnbench leaderboard``: asv results read (asv's API), latest commit on asv's branches
ranked, change since the commit before, links, escaping, a corrupt file skipped, errors; on a
tiny fake results directory and on the repository's committed results/."""

from __future__ import annotations

import itertools
import json
import math
import random
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from attnbench import cli, leaderboard

REPO_RESULTS = Path(__file__).resolve().parents[1] / "results"
SUITE = "forward.ForwardMetrics"
IMPLS = ["'eager'", "'fast'", "'<b>bold</b>'", "'never'", "'broken'"]
WORKLOADS = ["'m/prefill/s512/b1/causal/fp32'", "'m/decode/kv2048/b4/causal/fp32'"]
MACHINE = "lab&<box>"


def _values(rng: random.Random, metric: str) -> list:
    out = []
    for impl, _ in itertools.product(IMPLS, WORKLOADS):
        if impl == "'never'":
            out.append(math.nan)  # skipped
        elif impl == "'broken'":
            out.append(None)  # failed
        else:
            out.append(rng.uniform(0.1, 100.0) if metric != "max_error" else rng.random() * 1e-3)
    return out


def _result_doc(commit: str, date: int, results: dict) -> dict:
    """An asv results file (version 2) as asv 0.6 writes it."""
    return {
        "commit_hash": commit,
        "date": date,
        "env_name": "virtualenv-py3.11",
        "params": {"machine": MACHINE, "python": "3.11"},
        "python": "3.11",
        "requirements": {},
        "env_vars": {},
        "result_columns": ["result", "params", "version"],
        "results": results,
        "version": 2,
    }


def _fake_results(root: Path, seed: int = 0, commits=(("a" * 40, 1000), ("b" * 40, 2000))) -> dict:
    """benchmarks.json, one machine, an older and a newer commit; returns the newer values."""
    rng = random.Random(seed)
    benchmarks = {"version": 2}
    for method in leaderboard.METRICS.values():
        benchmarks[f"{SUITE}.{method}"] = {
            "name": f"{SUITE}.{method}",
            "param_names": ["implementation", "workload"],
            "params": [IMPLS, WORKLOADS],
            "type": "track",
            "version": f"v-{method}",
        }
    root.mkdir()
    (root / "benchmarks.json").write_text(json.dumps(benchmarks))
    mdir = root / MACHINE
    mdir.mkdir()
    machine = {"machine": MACHINE, "cpu": "Test <CPU>", "version": 1}
    (mdir / "machine.json").write_text(json.dumps(machine))
    newest = {}
    for commit, date in commits:
        results = {}
        for key, method in leaderboard.METRICS.items():
            values = _values(rng, key)
            results[f"{SUITE}.{method}"] = [values, [IMPLS, WORKLOADS], f"v-{method}"]
            newest[key] = values
        # a result of a benchmark version benchmarks.json no longer has: ignored
        results[f"{SUITE}.track_gone"] = [[1.0] * 10, [IMPLS, WORKLOADS], "old"]
        doc = _result_doc(commit, date, results)
        (mdir / f"{commit[:8]}-virtualenv-py3.11.json").write_text(json.dumps(doc))
    return newest


def _expected_order(newest: dict, workload_index: int, metric: str) -> list[str]:
    pairs = list(itertools.product(IMPLS, WORKLOADS))
    ok = [
        (newest[metric][k], impl)
        for k, (impl, _) in enumerate(pairs)
        if k % len(WORKLOADS) == workload_index and impl not in ("'never'", "'broken'")
    ]
    return [impl.strip("'") for _, impl in sorted(ok, reverse=True)]


@pytest.mark.parametrize("seed", [0, 1])
def test_fake_results_ranked_from_the_latest_commit(tmp_path, seed):
    newest = _fake_results(tmp_path / "results", seed)
    (machine,) = leaderboard.read_results(tmp_path / "results")
    assert machine.name == MACHINE and machine.commit == "b" * 40
    assert machine.previous == "a" * 40
    boards = {b.scenario: b for b in machine.boards}
    assert set(boards) == {"prefill", "decode"}
    assert boards["prefill"].rank_by == "tflops" and boards["decode"].rank_by == "gbps"
    for scenario, index, metric in (("prefill", 0, "tflops"), ("decode", 1, "gbps")):
        entries = boards[scenario].entries
        ranked = [e.impl for e in entries if e.status == "ok"]
        assert ranked == _expected_order(newest, index, metric)
        status = {e.impl: e.status for e in entries}
        assert status["never"] == "skipped" and status["broken"] == "failed"


def test_page_links_escapes_and_lists_skips(tmp_path):
    _fake_results(tmp_path / "results")
    files = leaderboard.write_leaderboard(tmp_path / "results", tmp_path / "html")
    page = tmp_path / "html" / "leaderboard" / "index.html"
    assert files[0] == page
    assert all(f.stat().st_size > 0 for f in files)
    assert {f.suffix for f in files[1:]} == {".png", ".svg"}
    text = page.read_text()
    assert "<b>bold</b>" not in text and "&lt;b&gt;bold&lt;/b&gt;" in text
    assert "lab&amp;&lt;box&gt;" in text and "Test &lt;CPU&gt;" in text
    assert "skipped: never" in text and "failed: broken" in text
    assert 'href="../index.html#/"' in text and 'href="../index.html#/regressions"' in text
    assert "http://" not in text and "https://" not in text  # no external resources
    link = leaderboard.graph_link(f"{SUITE}.track_tflops", MACHINE, {"implementation": "'fast'"})
    assert (
        link
        == f"../index.html#{SUITE}.track_tflops?machine=lab%26%3Cbox%3E&p-implementation='fast'"
    )


def test_graph_links_decode_to_asv_params(tmp_path):
    _fake_results(tmp_path / "results")
    (machine,) = leaderboard.read_results(tmp_path / "results")
    board = next(b for b in machine.boards if b.scenario == "prefill")
    entry = board.entries[0]
    route, query = board.graph_link(entry.impl_param).split("#", 1)[1].split("?")
    assert route == f"{SUITE}.track_tflops"
    params = dict(part.split("=") for part in query.split("&"))
    assert unquote(params["machine"]) == MACHINE
    assert unquote(params["p-implementation"]) == entry.impl_param
    assert unquote(params["p-workload"]) == WORKLOADS[0]
    assert "%2F" in params["p-workload"]  # '/' encoded, as encodeURIComponent does


def test_workload_link_selects_one_machine_and_the_implementations_that_ran(tmp_path):
    _fake_results(tmp_path / "results")
    (machine,) = leaderboard.read_results(tmp_path / "results")
    board = next(b for b in machine.boards if b.scenario == "decode")
    query = board.graph_link().split("?", 1)[1]
    pairs = [part.split("=") for part in query.split("&")]
    assert [unquote(v) for k, v in pairs if k == "machine"] == [MACHINE]
    assert [unquote(v) for k, v in pairs if k == "p-workload"] == [WORKLOADS[1]]
    selected = [unquote(v) for k, v in pairs if k == "p-implementation"]
    assert selected == [e.impl_param for e in board.entries if e.status == "ok"]
    assert "'never'" not in selected and "'broken'" not in selected


def test_graph_selection_keeps_eager_among_many():
    entries = [
        leaderboard.Entry(f"impl{i}", f"'impl{i}'", "ok", {"tflops": 100.0 - i}) for i in range(12)
    ]
    entries.append(leaderboard.Entry("eager", "'eager'", "ok", {"tflops": 0.5}))
    board = leaderboard.Board("m", SUITE, "prefill", "w", "'w'", "tflops", entries)
    chosen = board.graph_selection()
    assert len(chosen) == leaderboard.GRAPH_SERIES and chosen[-1] == "'eager'"
    assert chosen[:-1] == [f"'impl{i}'" for i in range(leaderboard.GRAPH_SERIES - 1)]


def test_change_against_the_previous_commit(tmp_path):
    _fake_results(tmp_path / "results")
    (machine,) = leaderboard.read_results(tmp_path / "results")
    docs = {
        p.name[:8]: json.loads(p.read_text())
        for p in (tmp_path / "results" / MACHINE).glob("*-virtualenv-py3.11.json")
    }
    name = f"{SUITE}.track_tflops"
    pairs = list(itertools.product(IMPLS, WORKLOADS))
    before = dict(zip(pairs, docs["a" * 8]["results"][name][0], strict=True))
    now = dict(zip(pairs, docs["b" * 8]["results"][name][0], strict=True))
    board = next(b for b in machine.boards if b.scenario == "prefill")
    for e in board.entries:
        key = (e.impl_param, board.workload_param)
        if e.status == "ok":
            assert e.change("tflops") == pytest.approx(now[key] / before[key] - 1)
        else:
            assert e.change("tflops") is None
    page = leaderboard.render_page([machine], {})
    assert f"Change against {'a' * 8}" in page


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def test_latest_commit_is_on_asv_branches(tmp_path, capsys):
    """A newer commit measured off asv.conf.json's branches is left out, as asv publish does."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    older, on_main = _git(repo, "rev-parse", "HEAD~1"), _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "topic")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "off main")
    off_main = _git(repo, "rev-parse", "HEAD")
    conf = {"version": 1, "project": "p", "repo": ".", "branches": ["main"]}
    (repo / "asv.conf.json").write_text(json.dumps(conf))
    commits = ((older, 1000), (on_main, 2000), (off_main, 3000))
    _fake_results(repo / "results", commits=commits)

    (machine,) = leaderboard.read_results(repo / "results")
    assert (machine.commit, machine.previous) == (on_main, older)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and off_main[:8] in err[0] and "branches" in err[0]
    (unfiltered,) = leaderboard.read_results(repo / "results", config=None)
    assert unfiltered.commit == off_main


def _raw(machine_dir: Path) -> tuple[dict, dict]:
    docs = [
        json.loads(p.read_text()) for p in machine_dir.glob("*.json") if p.name != "machine.json"
    ]
    latest = max(docs, key=lambda d: d["date"])
    return latest, json.loads((REPO_RESULTS / "benchmarks.json").read_text())


@pytest.mark.parametrize("machine_name", ["h100-x1", "cpu-2core-epyc"])
def test_repository_results(machine_name, tmp_path):
    if not (REPO_RESULTS / machine_name).is_dir():
        pytest.skip(f"no committed results for {machine_name}")
    machines = {m.name: m for m in leaderboard.read_results(REPO_RESULTS)}
    machine = machines[machine_name]
    latest, _ = _raw(REPO_RESULTS / machine_name)
    assert machine.commit == latest["commit_hash"]
    assert machine.boards
    for board in machine.boards:
        method = leaderboard.METRICS[board.rank_by]
        values, params = latest["results"][f"{board.suite}.{method}"][:2]
        raw = dict(zip(itertools.product(*params), values, strict=True))
        measured = [
            (raw[i, board.workload_param], i.strip("'"))
            for i in params[0]
            if raw[i, board.workload_param] is not None
            and not math.isnan(raw[i, board.workload_param])
        ]
        ranked = [e.impl for e in board.entries if e.status == "ok"]
        assert ranked == [name for _, name in sorted(measured, key=lambda t: (-t[0], t[1]))]
        expected_skips = {i.strip("'") for i in params[0]} - set(ranked)
        assert {e.impl for e in board.entries if e.status != "ok"} == expected_skips
        link = board.graph_link(board.entries[0].impl_param)
        assert f"machine={machine_name}" in link and "p-implementation=" in link
        assert "p-workload=" in link and link.startswith("../index.html#")


def test_cli_leaderboard_on_repository_results(tmp_path, capsys):
    if not REPO_RESULTS.is_dir():
        pytest.skip("no committed results")
    assert cli.main(["leaderboard", "--results", str(REPO_RESULTS), "--html", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    page = tmp_path / "leaderboard" / "index.html"
    assert printed[0] == str(page)
    text = page.read_text()
    for machine_dir in REPO_RESULTS.iterdir():
        if (machine_dir / "machine.json").is_file():
            assert f'id="{machine_dir.name}"' in text


@pytest.mark.parametrize("damage", ["cut", "empty"])
def test_corrupt_results_file_is_one_line_and_the_page_is_written(tmp_path, capsys, damage):
    results = tmp_path / "results"
    _fake_results(results)
    newest = next((results / MACHINE).glob("bbbbbbbb-*.json"))
    text = newest.read_text()
    newest.write_text(text[: len(text) // 2] if damage == "cut" else "")
    argv = ["leaderboard", "--results", str(results), "--html", str(tmp_path / "h")]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert str(newest) in err[0] and f"machine {MACHINE}" in err[0]
    assert ("empty file" if damage == "empty" else "not a readable asv results file") in err[0]
    (machine,) = leaderboard.read_results(results, on_skip=lambda _: None)
    assert machine.commit == "a" * 40  # the older commit's results still make the page


def test_cli_leaderboard_errors_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "benchmarks.json").write_text('{"version": 2}')
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "benchmarks.json").write_text('{"version": 2, "x":')
    cases = [
        (tmp_path / "absent", "no such directory"),
        (empty, "no machine with results"),
        (broken, "cannot read it as asv's benchmark list"),
    ]
    for results, words in cases:
        argv = ["leaderboard", "--results", str(results), "--html", str(tmp_path / "h")]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("attnbench: error: ") and words in err[0]
