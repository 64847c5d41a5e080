"""The asv suite for real (``slow``: it runs asv, minutes) and the regression plugin.

The end-to-end tests clone the repository into a temporary directory, add a commit, and run
asv as a user types it: a clean environment (``PATH`` and ``HOME`` only, no variable a
wrapper would set), ``asv run`` on both commits on one small workload and two implementations,
then a plain ``asv run --quick`` with no selection variable, ``asv compare`` and
``asv publish``. ``HOME`` is the temporary directory, so ``~/.asv-machine.json`` is isolated.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from asv.plugins.regressions import Regressions

from attnbench import get_workload
from attnbench.direction import higher_is_better
from attnbench.measure.accuracy import TOLERANCES

from .conftest import ROOT

ASV = Path(sys.executable).parent / "asv"
WORKLOAD = "h8kv2d64/prefill/s256/b2/full/fp32"  # of the quick set: small, GQA, fp32
IMPLS = ["eager", "chunked"]
MACHINE = "testbox"

needs_asv = pytest.mark.skipif(not ASV.exists(), reason=f"no asv next to {sys.executable}")
needs_git = pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git repository")


def _run(cmd, *, cwd, env, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    )
    return proc


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    """What a user's shell gives asv at least: PATH and HOME, nothing set by a wrapper."""
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), **extra}


# -- asv check ------------------------------------------------------------------------------
@pytest.mark.slow
@needs_asv
def test_asv_check_passes():
    env = {**os.environ, "ATTNBENCH_SET": "quick"}
    env.pop("ATTNBENCH_IMPLS", None)
    proc = _run([ASV, "check", "--python=same"], cwd=ROOT, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert "No problems found" in out, out


# -- end to end -----------------------------------------------------------------------------
def _results(results_dir: Path, commit: str) -> dict:
    files = sorted(results_dir.glob(f"{commit[:8]}-*.json"))
    assert len(files) == 1, (commit, sorted(p.name for p in results_dir.iterdir()))
    data = json.loads(files[0].read_text())
    assert data["commit_hash"] == commit
    return data


def _values(data: dict) -> dict[str, dict[tuple[str, str], float]]:
    """{benchmark: {(implementation, workload): value}} from asv 0.6's result file."""
    columns = data["result_columns"]
    iv, ip = columns.index("result"), columns.index("params")
    out = {}
    for name, row in data["results"].items():
        values, params = row[iv], row[ip]
        impls = [p.strip("'") for p in params[0]]
        workloads = [p.strip("'") for p in params[1]]
        combos = [(i, w) for i in impls for w in workloads]
        assert len(values) == len(combos), (name, values, params)
        out[name] = dict(zip(combos, values, strict=True))
    return out


def _set_values(path: Path, new: dict[str, list[float]]) -> None:
    """Overwrite the result values of some benchmarks (and drop their statistics)."""
    data = json.loads(path.read_text())
    columns = data["result_columns"]
    keep = columns.index("duration") + 1
    for name, values in new.items():
        row = data["results"][name]
        assert len(row[0]) == len(values)
        data["results"][name] = [values, *row[1:keep]]
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def asv_project(tmp_path_factory):
    """A clone with two commits, benchmarked by asv, plus the environment that ran it."""
    tmp = tmp_path_factory.mktemp("asv")
    home = tmp / "home"
    home.mkdir()
    repo = tmp / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True, timeout=120)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    first = subprocess.check_output([*git, "rev-parse", "HEAD"], text=True).strip()
    (repo / "docs").mkdir(exist_ok=True)
    (repo / "docs" / "test-note.md").write_text("A commit that changes no code.\n")
    subprocess.run([*git, "add", "docs"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "docs: a note"], check=True)
    second = subprocess.check_output([*git, "rev-parse", "HEAD"], text=True).strip()
    hashfile = tmp / "commits.txt"
    hashfile.write_text(f"{second}\n{first}\n")

    env = _clean_env(home, ATTNBENCH_SET=WORKLOAD, ATTNBENCH_IMPLS=",".join(IMPLS))
    register = f"from attnbench.system import register_asv_machine as r; r({MACHINE!r})"
    _run([sys.executable, "-c", register], cwd=repo, env=env, timeout=120)
    machines = json.loads((home / ".asv-machine.json").read_text())
    assert machines[MACHINE]["machine"] == MACHINE and machines[MACHINE]["num_cpu"]

    run = _run(
        [
            ASV,
            "run",
            "--launch-method",
            "forkserver",
            "--machine",
            MACHINE,
            "--bench",
            r"^forward\.",
            f"HASHFILE:{hashfile}",
        ],
        cwd=repo,
        env=env,
        timeout=600,
    )
    return SimpleNamespace(repo=repo, env=env, first=first, second=second, run=run)


@pytest.mark.slow
@needs_asv
@needs_git
def test_asv_run_records_both_commits(asv_project):
    p = asv_project
    results_dir = p.repo / "results" / MACHINE
    assert (results_dir / "machine.json").exists()
    workload = get_workload(WORKLOAD)
    for commit in (p.first, p.second):
        values = _values(_results(results_dir, commit))
        time_names = [n for n in values if n.rsplit(".", 1)[-1].startswith("time_")]
        rising = [n for n in values if higher_is_better(n)]
        assert "forward.Forward.time_forward" in time_names
        assert any(n.endswith(".track_tflops") for n in rising), sorted(values)
        for name, by_pair in values.items():
            assert set(by_pair) == {(i, WORKLOAD) for i in IMPLS}, name
            for pair, v in by_pair.items():
                assert isinstance(v, (int, float)), (name, pair, v)
                assert math.isfinite(v) and v >= 0, (name, pair, v)
                if not name.endswith("_error"):
                    assert v > 0, (name, pair, v)
        # the figures of one sweep agree with each other and with the workload's cost
        tflops = next(values[n] for n in rising if n.endswith(".track_tflops"))
        cls = next(n for n in rising if n.endswith(".track_tflops")).rsplit(".", 1)[0]
        if f"{cls}.track_seconds" in values:
            for pair, seconds in values[f"{cls}.track_seconds"].items():
                expected = workload.forward_flops / seconds / 1e12
                assert tflops[pair] == pytest.approx(expected, rel=1e-9), pair
        if f"{cls}.track_speedup_vs_eager" in values:
            assert values[f"{cls}.track_speedup_vs_eager"][("eager", WORKLOAD)] == 1.0
        if f"{cls}.track_max_error" in values:
            for pair, err in values[f"{cls}.track_max_error"].items():
                assert err <= TOLERANCES["fp32"][1], pair


@pytest.mark.slow
@needs_asv
@needs_git
def test_asv_compare(asv_project):
    p = asv_project
    proc = _run(
        [ASV, "compare", p.first, p.second, "--machine", MACHINE],
        cwd=p.repo,
        env=p.env,
        timeout=300,
    )
    assert "forward.Forward.time_forward('eager', " in proc.stdout
    assert "forward.Forward.time_forward('chunked', " in proc.stdout
    assert ".track_tflops(" in proc.stdout
    assert p.first[:8] in proc.stdout and p.second[:8] in proc.stdout


PLAIN_MACHINE = "plainbox"
PLAIN_BENCH = rf"^forward\.Forward\.time_forward\('eager', '{WORKLOAD}'\)"


@pytest.fixture(scope="module")
def plain_run(asv_project):
    """``asv run --quick`` as typed (after ``asv machine --yes``), with only PATH and HOME."""
    p = asv_project
    env = _clean_env(Path(p.env["HOME"]))
    _run([ASV, "machine", "--yes", "--machine", PLAIN_MACHINE], cwd=p.repo, env=env, timeout=120)
    cmd = [ASV, "run", "--quick", "--machine", PLAIN_MACHINE, "--bench", PLAIN_BENCH, "HEAD^!"]
    return _run(cmd, cwd=p.repo, env=env, timeout=900)


@pytest.mark.slow
@needs_asv
@needs_git
def test_plain_asv_run_needs_no_environment_variable(asv_project, plain_run):
    """The asv environments find PyTorch by the repository's configuration alone, and the run
    leaves the clone as it was (its results are a local machine's, benchmarks.json unchanged)."""
    p = asv_project
    data = _results(p.repo / "results" / PLAIN_MACHINE, p.second)
    values = _values(data)["forward.Forward.time_forward"]  # the quick set: one pair selected
    assert isinstance(values[("eager", WORKLOAD)], float) and values[("eager", WORKLOAD)] > 0
    measured = [pair for pair, v in values.items() if v is not None and math.isfinite(v)]
    assert len(values) > 1 and measured == [("eager", WORKLOAD)], values  # the others: n/a
    # the environment sees torch, yet imports the commit's own attnbench, not the editable one
    (env_python,) = (p.repo / ".asv" / "env").glob("*/bin/python")
    probe = "import attnbench, torch; print(attnbench.__file__)"
    where = _run([env_python, "-c", probe], cwd=p.repo.parent, env=_clean_env(p.repo)).stdout
    assert Path(where.strip()).is_relative_to(env_python.parent.parent), where
    status = subprocess.check_output(["git", "-C", str(p.repo), "status", "--porcelain"], text=True)
    assert status == "", (
        f"{status}\nresults/benchmarks.json must already list what a CPU run discovers: "
        "run `asv run --bench just-discover` (it merges) and commit the file"
    )


def _benchmark_names(results_dir: Path, listed: dict) -> set[str]:
    """Benchmarks of a machine's committed results that asv can draw (same version as listed)."""
    names = set()
    for path in results_dir.glob("*-*.json"):
        data = json.loads(path.read_text())
        iv = data["result_columns"].index("version")
        for name, row in data["results"].items():
            if name in listed and row[iv] == listed[name]["version"]:
                names.add(name)
    return names


@pytest.fixture(scope="module")
def published(asv_project, plain_run) -> subprocess.CompletedProcess:
    """``asv publish`` as typed (PATH and HOME only) after both runs: the site of every
    machine's results, read by the tests below (each publish takes tens of seconds)."""
    p = asv_project
    env = _clean_env(Path(p.env["HOME"]))
    return _run([ASV, "publish"], cwd=p.repo, env=env, timeout=600)


@pytest.mark.slow
@needs_asv
@needs_git
def test_publish_after_a_cpu_run_keeps_every_gpu_benchmark(asv_project, published):
    """A CPU machine discovers no GPU-only benchmark (MaskedMetrics, track_gpu_peak_memory):
    after its runs, the site still draws every benchmark of the committed GPU results."""
    p = asv_project
    # every file in results/ is asv's (other machines' folders too)
    assert "Skipping results" not in published.stdout + published.stderr
    listed = json.loads((p.repo / "results" / "benchmarks.json").read_text())
    on_site = json.loads((p.repo / "html" / "index.json").read_text())["benchmarks"]
    graphs = list((p.repo / "html" / "graphs").rglob("*.json"))
    for machine in ("h100-x1", "h200-x1"):
        names = _benchmark_names(ROOT / "results" / machine, listed)
        assert any(".MaskedMetrics." in n for n in names), machine  # GPU-only classes exist
        assert any(n.endswith(".track_gpu_peak_memory") for n in names), machine
        missing_index = sorted(names - set(on_site))
        assert not missing_index, (machine, missing_index)
        drawn = {g.stem for g in graphs if f"machine-{machine}" in g.parts}
        assert not sorted(names - drawn), (machine, sorted(names - drawn))


def _regressions(repo: Path) -> list:
    data = json.loads((repo / "html" / "regressions.json").read_text())
    return data["regressions"]


@pytest.mark.slow
@needs_asv
@needs_git
def test_asv_publish_with_the_direction_aware_plugin(asv_project, published):
    p = asv_project
    html = p.repo / "html"
    assert (html / "index.html").exists()
    graphs = {f.name for f in (html / "graphs").rglob("*.json")}
    assert "forward.Forward.time_forward.json" in graphs
    assert any(g.endswith(".track_tflops.json") for g in graphs), graphs
    # whatever the noise did, each reported regression points the figure's own way
    for name, _path, _params, _idx, last_v, best_v, _jumps in _regressions(p.repo):
        if higher_is_better(name):
            assert last_v < best_v, (name, last_v, best_v)
        else:
            assert last_v > best_v, (name, last_v, best_v)

    # now results with known steps: which of them regress depends on the figure's direction
    results_dir = p.repo / "results" / MACHINE
    before = next(results_dir.glob(f"{p.first[:8]}-*.json"))
    after = next(results_dir.glob(f"{p.second[:8]}-*.json"))
    names = _values(_results(results_dir, p.first))
    tflops = next(n for n in names if n.endswith(".track_tflops"))
    steady = {n: [1.0, 1.0] for n in names}  # IMPLS order: eager, chunked
    _set_values(
        before, {**steady, "forward.Forward.time_forward": [0.01, 0.01], tflops: [0.02, 0.02]}
    )
    _set_values(
        after, {**steady, "forward.Forward.time_forward": [0.02, 0.005], tflops: [0.01, 0.04]}
    )
    _run([ASV, "publish"], cwd=p.repo, env=p.env, timeout=300)
    # the clone carries the project's committed results of other machines: look at ours only
    found = {r[0]: r for r in _regressions(p.repo) if f"machine-{MACHINE}/" in r[1]}
    time_eager = f"forward.Forward.time_forward('eager', '{WORKLOAD}')"
    tflops_eager = f"{tflops}('eager', '{WORKLOAD}')"
    assert set(found) == {time_eager, tflops_eager}, sorted(found)  # the chunked rises are not
    assert found[time_eager][4:6] == [0.02, 0.01]  # last, best: slower is worse
    assert found[tflops_eager][4] == pytest.approx(0.01)  # fewer TFLOP/s is worse
    assert found[tflops_eager][5] == pytest.approx(0.02)
    (jump,) = found[tflops_eager][6]
    assert jump[2:] == pytest.approx([0.02, 0.01])  # before, after: in TFLOP/s again


# -- where asv's environments find torch (attnbench.asv_host) -------------------------------
def test_host_site_names_the_directory_holding_torch():
    import torch

    from attnbench import asv_host

    dirs = asv_host.host_site_dirs()
    assert str(Path(torch.__file__).resolve().parent.parent) in [
        str(Path(d).resolve()) for d in dirs
    ]
    assert all(Path(d).is_dir() for d in dirs) and len(set(dirs)) == len(dirs)
    env = {}
    assert asv_host.export_host_site(env) == os.pathsep.join(dirs) == env[asv_host.VARIABLE]
    kept = {asv_host.VARIABLE: "/somewhere"}
    assert asv_host.export_host_site(kept) == "/somewhere"  # a value given is kept


def test_host_site_keeps_what_pythonpath_adds(tmp_path, monkeypatch):
    """asv strips PYTHONPATH's entries from its benchmark processes: a package found only there
    (wheels unpacked on an offline GPU host) reaches them through the host site instead."""
    from attnbench import asv_host

    extra = tmp_path / "site"
    extra.mkdir()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(extra), str(tmp_path / "absent")]))
    dirs = asv_host.host_site_dirs()
    assert dirs[0] == str(extra) and str(tmp_path / "absent") not in dirs


def test_asv_conf_loads_the_plugins_and_writes_the_host_site():
    from asv import util

    conf = util.load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    assert conf["plugins"][:2] == [".attnbench.asv_host", ".attnbench.asv_definitions"]
    assert any("ATTNBENCH_HOST_SITE" in c for c in conf["install_command"])


# -- results/benchmarks.json: a run adds, never drops (attnbench.asv_definitions) -----------
def _definition(params, version="v1", code="x = 1"):
    return {
        "name": "m.C.track_x",
        "params": params,
        "param_names": ["implementation", "workload"],
        "version": version,
        "code": code,
    }


def test_merge_keeps_what_a_machine_did_not_discover():
    from attnbench.asv_definitions import merge

    gpu = {"m.G.track_gpu_peak_memory": _definition([["'fa3'"], ["'w-gpu'"]])}
    listed = {**gpu, "m.C.track_x": _definition([["'eager'"], ["'w-gpu'"]])}
    cpu = {"m.C.track_x": _definition([["'eager'", "'chunked'"], ["'w-cpu'"]], code="x = 2")}
    merged = merge(listed, {**cpu, "version": 2})
    assert merged["m.G.track_gpu_peak_memory"] == gpu["m.G.track_gpu_peak_memory"]
    mine = merged["m.C.track_x"]
    assert mine["params"] == [["'eager'", "'chunked'"], ["'w-gpu'", "'w-cpu'"]]
    assert mine["code"] == "x = 1"  # same version: the listed description stays
    assert "version" not in merged
    assert merge(merged, cpu) == merged  # nothing new the second time


def test_merge_takes_a_new_version_or_shape():
    from attnbench.asv_definitions import merge

    listed = {"m.C.track_x": _definition([["'eager'"], ["'w-gpu'"]])}
    bumped = merge(listed, {"m.C.track_x": _definition([["'eager'"], ["'w-cpu'"]], "v2")})
    assert bumped["m.C.track_x"]["version"] == "v2"
    assert bumped["m.C.track_x"]["params"] == [["'eager'"], ["'w-cpu'", "'w-gpu'"]]
    reshaped = {**_definition([["'eager'"]]), "param_names": ["implementation"]}
    assert merge(listed, {"m.C.track_x": reshaped})["m.C.track_x"] == reshaped


def test_asv_save_merges_into_benchmarks_json(tmp_path, monkeypatch):
    """asv's own Benchmarks.save, with the plugin installed: a run that discovers less
    keeps the rest, and a run that discovers nothing new leaves the file's bytes alone."""
    from asv.benchmarks import Benchmarks

    from attnbench import asv_definitions

    monkeypatch.setattr(Benchmarks, "save", Benchmarks.save)  # restored after the test
    conf = SimpleNamespace(results_dir=str(tmp_path), benchmark_dir=str(tmp_path))
    both = [_definition([["'eager'"], ["'w'"]]), {**_definition([["'fa3'"], ["'w'"]])}]
    both[1]["name"] = "m.G.track_gpu_peak_memory"
    Benchmarks(conf, both).save()  # asv alone: what this run discovered
    path = tmp_path / "benchmarks.json"
    Benchmarks(conf, both[:1]).save()
    assert "m.G.track_gpu_peak_memory" not in json.loads(path.read_text())  # asv drops it

    Benchmarks(conf, both).save()
    asv_definitions.setup()
    Benchmarks(conf, both[:1]).save()
    assert "m.G.track_gpu_peak_memory" in json.loads(path.read_text())
    path.write_text(path.read_text() + "\n")  # as committed: a run with nothing new keeps it
    Benchmarks(conf, both[:1]).save()
    assert path.read_text().endswith("}\n")
    Benchmarks(conf, [_definition([["'eager'", "'chunked'"], ["'w'"]])]).save()
    data = json.loads(path.read_text())
    assert data["m.C.track_x"]["params"][0] == ["'eager'", "'chunked'"] and data["version"] == 2


# -- the plugin alone -----------------------------------------------------------------------
class _FakeRepo:
    def __init__(self, commits_per_range: int) -> None:
        self.n = commits_per_range

    def get_range_spec(self, a, b):
        return f"{a}..{b}"

    def get_hashes_from_range(self, spec):
        return [f"{spec}#{i}" for i in range(self.n)]


@pytest.fixture
def plugged(monkeypatch):
    """asv's Regressions with attnbench's plugin set up (restored after the test)."""
    import attnbench.asv_plugin as plugin

    monkeypatch.setattr(
        Regressions, "_process_regression", Regressions.__dict__["_process_regression"]
    )
    plugin.setup()
    return plugin


def _process(name, values, *, commits_per_range=1, errors=0.0, original=None):
    """Run the regression detection on steps with these levels, 3 revisions each."""
    steps = [(3 * i, 3 * i + 3, v, v, errors) for i, v in enumerate(values)]
    revision_to_hash = {r: f"{r:040x}" for r in range(3 * len(values))}
    graph = SimpleNamespace(params={"machine": MACHINE, "branch": "main"}, path="graphs/x")
    all_params = {"machine": [MACHINE], "branch": ["main"]}
    regressions = []
    args = (
        regressions,
        revision_to_hash,
        _FakeRepo(commits_per_range),
        all_params,
        (None, name, steps, 0.05),
        graph,
    )
    if original is None:
        Regressions._process_regression(*args)
    else:
        original(Regressions, *args)
    return regressions


@pytest.mark.parametrize(
    "name",
    [
        "x.Y.track_tflops",
        "forward.ForwardMetrics.track_speedup_vs_eager('chunked', 'w')",
        "train.ForwardBackwardMetrics.track_gbps",
    ],
)
def test_plugin_reports_a_drop_of_a_rising_figure(plugged, name):
    (reg,) = _process(name, [600.0, 300.0])
    entry_name, graph_path, graph_params, _idx, last_v, best_v, jumps = reg
    assert entry_name == name and graph_path == "graphs/x.json" and graph_params == {}
    assert last_v == pytest.approx(300.0)
    assert best_v == pytest.approx(600.0)
    (jump,) = jumps
    assert jump[0] is None and jump[1] == 3  # a single commit between revisions 2 and 3
    assert jump[2:] == pytest.approx((600.0, 300.0))
    # asv alone would have seen an improvement
    assert _process(name, [600.0, 300.0], original=plugged._original) == []


def test_plugin_ignores_a_rise_of_a_rising_figure(plugged):
    assert _process("x.Y.track_tflops", [300.0, 600.0]) == []
    assert _process("x.Y.track_tflops", [300.0, 600.0], original=plugged._original) != []


def test_plugin_keeps_asv_behaviour_for_times(plugged):
    (reg,) = _process("x.Y.time_forward", [1.0, 2.0], commits_per_range=2)
    assert reg[4:6] == [2.0, 1.0]
    (jump,) = reg[6]
    assert jump == (2, 3, 1.0, 2.0)  # two commits in the range: both ends kept
    assert _process("x.Y.time_forward", [2.0, 1.0]) == []
    assert _process("x.Y.track_max_error", [1e-6, 1e-3]) != []


def test_plugin_reports_the_worst_level_after_several_steps(plugged):
    (reg,) = _process("x.Y.track_tflops", [600.0, 500.0, 550.0, 200.0, 250.0])
    assert reg[4] == pytest.approx(250.0)  # latest
    assert reg[5] == pytest.approx(600.0)  # best
    assert all(before > after for _, _, before, after in reg[6])
