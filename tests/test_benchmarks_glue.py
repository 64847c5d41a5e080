"""benchmarks/_common.py: parameters from the environment, and a case or a recorded skip."""

from __future__ import annotations

import importlib
import json
import sys

import pytest
import torch

from attnbench import get_impl, impl_names, workload_set


@pytest.fixture
def bench(monkeypatch, repo_root, tmp_path):
    """A freshly imported ``benchmarks`` package, on the quick set and every implementation."""
    monkeypatch.syspath_prepend(str(repo_root))
    monkeypatch.setenv("ATTNBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ATTNBENCH_SET", "quick")
    monkeypatch.delenv("ATTNBENCH_IMPLS", raising=False)
    for mod in [m for m in sys.modules if m == "benchmarks" or m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, mod)
    common = importlib.import_module("benchmarks._common")
    forward = importlib.import_module("benchmarks.forward")
    train = importlib.import_module("benchmarks.train")
    return common, forward, train


def test_parameters_follow_the_environment(bench):
    common, forward, train = bench
    quick = workload_set("quick")
    assert common.WORKLOADS == [w.name for w in quick]
    assert common.TRAIN_WORKLOADS == [w.name for w in quick if w.has_backward]
    # no GPU here: compiling implementations are left out unless named
    expected = [n for n in impl_names(benchmarked_only=True) if not get_impl(n).compiles]
    assert common.CANDIDATE_IMPLS == expected and "flex" not in expected and "eager" in expected
    # those that can run nothing here are left out of the metric classes, with their reason
    assert common.AVAILABILITY["sdpa-cudnn"] == "needs a CUDA device"
    assert common.IMPLS == [n for n in expected if common.AVAILABILITY[n] is None]
    assert "sdpa-cudnn" not in common.IMPLS and "eager" in common.IMPLS
    by_scenario = {
        s: [w.name for w in quick if w.scenario == s] for s in ("prefill", "decode", "train")
    }
    # without a GPU the wall-time classes run on every workload
    forward_names = by_scenario["prefill"] + by_scenario["decode"]
    assert forward.Forward.params == (common.IMPLS, forward_names)
    assert forward.ForwardMetrics.params == (common.IMPLS, by_scenario["prefill"])
    assert forward.DecodeMetrics.params == (common.IMPLS, by_scenario["decode"])
    assert not hasattr(forward, "MaskedMetrics")  # the quick set has no masked workload
    assert train.ForwardBackward.params == (common.IMPLS, by_scenario["train"])
    assert train.ForwardBackwardMetrics.params == (common.IMPLS, by_scenario["train"])
    assert train.ForwardBackward.mode == train.ForwardBackwardMetrics.mode == "forward_backward"
    for cls in (forward.Forward, forward.ForwardMetrics, train.ForwardBackwardMetrics):
        assert cls.version.startswith("attnbench-")  # explicit: edits do not orphan history


def test_one_class_per_scenario_and_a_timed_subset_on_gpu(monkeypatch, bench):
    """On a GPU the Metrics classes split the set by scenario (each sweep a few minutes) and the
    wall-time classes take only the first workload of each scenario (a process each)."""
    common, _, _ = bench
    monkeypatch.setenv("ATTNBENCH_SET", "gpu")
    monkeypatch.setenv("ATTNBENCH_PROBE", "0")  # a child process would find no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for mod in ("benchmarks._common", "benchmarks.forward", "benchmarks.train"):
        monkeypatch.delitem(sys.modules, mod)
    common = importlib.import_module("benchmarks._common")
    forward = importlib.import_module("benchmarks.forward")
    train = importlib.import_module("benchmarks.train")
    gpu = workload_set("gpu")
    swept = (
        forward.ForwardMetrics.params[1]
        + forward.MaskedMetrics.params[1]
        + forward.DecodeMetrics.params[1]
        + train.ForwardBackwardMetrics.params[1]
    )
    assert sorted(swept) == sorted(w.name for w in gpu)  # every workload, exactly once
    assert all(
        "-win" in n or "-docs" in n or "-alibi" in n for n in forward.MaskedMetrics.params[1]
    )
    # decode's wall time is launch and synchronization: its device time is the figure
    assert forward.Forward.params[1] == [next(w.name for w in gpu if w.scenario == "prefill")]
    assert not hasattr(train, "ForwardBackward")  # train's wall time: ATTNBENCH_TIMED_SET
    # each commit's GPU run leaves the nightly-only ones out; ATTNBENCH_IMPLS=all has them
    nightly = {n for n in impl_names(benchmarked_only=True) if get_impl(n).nightly_only}
    assert {"eager-compiled", "sdpa-compiled", "sdpa-math", "chunked", "flex"} <= nightly
    assert not nightly & set(common.CANDIDATE_IMPLS) and "eager" in common.CANDIDATE_IMPLS
    assert {"triton-flash", "triton-decode", "sdpa-cudnn", "fa4"} <= set(common.CANDIDATE_IMPLS)
    monkeypatch.setenv("ATTNBENCH_IMPLS", "all")
    monkeypatch.delitem(sys.modules, "benchmarks._common")
    common = importlib.import_module("benchmarks._common")
    assert common.CANDIDATE_IMPLS == impl_names(benchmarked_only=True)
    monkeypatch.delenv("ATTNBENCH_IMPLS")

    monkeypatch.setenv("ATTNBENCH_TIMED_SET", "gpu-inhouse")
    monkeypatch.delitem(sys.modules, "benchmarks._common")
    common = importlib.import_module("benchmarks._common")
    inhouse = {w.name for w in workload_set("gpu-inhouse")}
    assert common.TIMED_WORKLOADS == [n for n in common.FORWARD_WORKLOADS if n in inhouse]


def test_sweeps_keep_their_records(monkeypatch, tmp_path, bench):
    """ATTNBENCH_RECORDS: each record as a JSON line, GPU state and wall seconds included."""
    _, forward, _ = bench
    monkeypatch.setenv("ATTNBENCH_RECORDS", str(tmp_path / "records"))
    monkeypatch.setenv("ASV_COMMIT", "0123456789abcdef")
    workload = "h8d64/prefill/s128/b1/full/fp32"

    class Small(forward.ForwardMetrics):
        params = (["chunked", "sdpa-cudnn"], [workload])

    cache = Small().setup_cache()
    lines = (tmp_path / "records" / "01234567.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    assert [(r["impl"], r["suite"]) for r in recs] == [
        ("chunked", "Small"),
        ("sdpa-cudnn", "Small"),
    ]
    assert recs[0]["tflops"] == cache[("chunked", workload)]["tflops"] > 0
    assert "needs a CUDA device" in recs[1]["reason"]
    assert all(r["extra"]["wall_seconds"] >= 0 for r in recs)
    # how long the process had lived when its sweep began (asv's start of a class's process)
    assert all(0 < r["process_age"] < 3600 for r in recs)


def test_availability_benchmark_records_why(monkeypatch, tmp_path, bench, capsys):
    """Every candidate is a parameter of Availability: 1 if it can run here, else 0 and why."""
    common, _, _ = bench
    availability = importlib.import_module("benchmarks.availability")
    monkeypatch.setenv("ATTNBENCH_RECORDS", str(tmp_path / "records"))
    monkeypatch.setenv("ASV_COMMIT", "0123456789abcdef")
    bench_ = availability.Availability()
    assert bench_.params == (common.CANDIDATE_IMPLS,)
    assert bench_.track_available("eager") == 1.0
    assert bench_.track_available("sdpa-cudnn") == 0.0
    assert "sdpa-cudnn cannot run here: needs a CUDA device" in capsys.readouterr().err
    lines = (tmp_path / "records" / "01234567.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    assert [(r["suite"], r["impl"], r["reason"]) for r in recs] == [
        ("Availability", "eager", None),
        ("Availability", "sdpa-cudnn", "needs a CUDA device"),
    ]


def test_impl_and_set_selection(monkeypatch, bench):
    monkeypatch.setenv("ATTNBENCH_SET", "h8kv1d64/decode/*, cpu-train")
    monkeypatch.setenv("ATTNBENCH_IMPLS", "chunked,sdpa-*")
    monkeypatch.delitem(sys.modules, "benchmarks._common")
    common = importlib.import_module("benchmarks._common")
    assert (
        common.IMPLS[0] == "chunked" and "sdpa-math" in common.IMPLS and "eager" not in common.IMPLS
    )
    assert common.WORKLOADS[0] == "h8kv1d64/decode/kv2048/b4/causal/fp32"
    assert common.WORKLOADS[1:] == [w.name for w in workload_set("cpu-train")]


def test_case_or_skip_records_why(bench, capsys):
    common, _, _ = bench
    workload = workload_set("quick")[0].name
    with pytest.raises(NotImplementedError, match="needs a CUDA device"):
        common.case_or_skip("sdpa-cudnn", workload)
    err = capsys.readouterr().err
    assert "attnbench: skipped:" in err
    assert "sdpa-cudnn" in err and "needs a CUDA device" in err


def test_case_or_skip_returns_a_case(bench, capsys):
    common, _, _ = bench
    workload = workload_set("quick")[1].name
    case = common.case_or_skip("eager", workload)
    assert case.impl.name == "eager" and case.workload.name == workload
    assert case.forward_error().within("fp32")
    assert "skipped" not in capsys.readouterr().err


def test_timed_benchmarks_run_a_step(bench):
    _, forward, train = bench
    workload = "h8kv2d64/prefill/s256/b2/full/fp32"
    b = forward.Forward()
    b.setup("chunked", workload)
    assert b.case.impl.name == "chunked"
    b.time_forward("chunked", workload)
    b.peakmem_forward("chunked", workload)
    with pytest.raises(NotImplementedError):
        forward.Forward().setup("sdpa-efficient", workload)

    train_workload = next(w.name for w in workload_set("quick") if w.has_backward)
    t = train.ForwardBackward()
    t.setup("eager", train_workload)
    t.time_forward_backward("eager", train_workload)
    with pytest.raises(NotImplementedError):
        train.ForwardBackward().setup("sdpa-efficient", train_workload)


def test_swept_benchmarks_read_one_sweep(bench, capsys):
    _, forward, _ = bench
    workload = "h8d64/prefill/s128/b1/full/fp32"  # of the cpu-seeds set

    class Small(forward.ForwardMetrics):
        params = (["chunked", "eager", "sdpa-cudnn"], [workload])

    cache = Small().setup_cache()
    assert set(cache) == {(i, workload) for i in Small.params[0]}
    b = Small()
    b.setup(cache, "chunked", workload)
    assert b.track_tflops(cache, "chunked", workload) > 0
    assert b.track_gbps(cache, "chunked", workload) > 0
    assert b.track_seconds(cache, "chunked", workload) > 0
    assert 0 <= b.track_max_error(cache, "chunked", workload) < 2e-4
    assert 0 <= b.track_rel_error(cache, "chunked", workload) < 2e-5
    speedup = b.track_speedup_vs_eager(cache, "chunked", workload)
    assert speedup > 0 and speedup == speedup  # not NaN
    e = Small()
    e.setup(cache, "eager", workload)
    assert e.track_speedup_vs_eager(cache, "eager", workload) == pytest.approx(1.0)
    capsys.readouterr()
    with pytest.raises(NotImplementedError, match="needs a CUDA device"):
        Small().setup(cache, "sdpa-cudnn", workload)
    assert "attnbench: skipped:" in capsys.readouterr().err
    assert Small.track_tflops.unit == "TFLOP/s"
    assert "higher is better" in Small.track_speedup_vs_eager.pretty_name


def test_no_baseline_times_no_eager_and_leaves_speedups_nan(monkeypatch, bench):
    """ATTNBENCH_BASELINE=none (a long history): the sweep times only the named ones."""
    monkeypatch.setenv("ATTNBENCH_BASELINE", "none")
    monkeypatch.delitem(sys.modules, "benchmarks._common")
    monkeypatch.delitem(sys.modules, "benchmarks.forward")
    common = importlib.import_module("benchmarks._common")
    forward = importlib.import_module("benchmarks.forward")
    assert common.BASELINE is None
    workload = "h8d64/prefill/s128/b1/full/fp32"

    class Small(forward.ForwardMetrics):
        params = (["chunked"], [workload])

    cache = Small().setup_cache()
    assert set(cache) == {("chunked", workload)}  # eager not timed
    b = Small()
    b.setup(cache, "chunked", workload)
    assert b.track_seconds(cache, "chunked", workload) > 0
    speedup = b.track_speedup_vs_eager(cache, "chunked", workload)
    assert speedup != speedup  # NaN: asv's n/a


def test_history_set_is_spelled_out_for_older_commits(monkeypatch, bench):
    """The ``history`` set resolves from benchmarks' own list where the catalogue lacks it
    (commits before it existed), and that list is the catalogue's set."""
    common, _, _ = bench
    history = [w.name for w in workload_set("history")]
    assert common.NEWER_SETS["history"] == history
    from attnbench import catalogue

    monkeypatch.delitem(catalogue._SETS, "history")  # as an older commit's catalogue
    monkeypatch.setenv("ATTNBENCH_SET", "history")
    monkeypatch.setenv("ATTNBENCH_IMPLS", "eager")
    monkeypatch.delitem(sys.modules, "benchmarks._common")
    common = importlib.import_module("benchmarks._common")
    assert common.WORKLOADS == history
    assert common.DECODE_WORKLOADS and common.TRAIN_WORKLOADS


@pytest.mark.slow
@pytest.mark.parametrize("commit", ["3c5dbc8", "3b7d2fa"])
def test_benchmarks_import_against_an_old_commit(repo_root, tmp_path, commit):
    """The working tree's benchmarks/ against an old commit's library, as asv runs them."""
    import os
    import subprocess

    tree = tmp_path / "tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(repo_root), "archive", commit, "src"], capture_output=True, check=False
    )
    if archive.returncode:
        pytest.skip(f"{commit} is not in this clone")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    code = (
        "import attnbench, benchmarks._common as c, benchmarks.forward, benchmarks.train;"
        f"assert attnbench.__file__.startswith({str(tree)!r}), attnbench.__file__;"
        "print(len(c.WORKLOADS), c.IMPLS)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tree / 'src'}:{repo_root}",
        "ATTNBENCH_SET": "history",
        "ATTNBENCH_IMPLS": "eager",
        "ATTNBENCH_PROBE": "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == str(len(workload_set("history")))


@pytest.mark.parametrize("how", ["ATTNBENCH_PROBE=0", "a library without the probe"])
def test_availability_is_unknown_where_it_was_not_asked(bench, monkeypatch, how):
    """Unprobed (a commit older than attnbench.availability, or the probe switched off), an
    implementation's availability is n/a, not "can run": history shows no backend vanishing at
    the commit that added the probe. Probed, the quick set's sdpa-cudnn reads 0 on a CPU."""
    common, _, _ = bench
    from benchmarks.availability import Availability

    assert common.PROBED and Availability().track_available("sdpa-cudnn") == 0.0
    assert Availability().track_available("eager") == 1.0
    if how.startswith("ATTNBENCH_PROBE"):
        monkeypatch.setenv("ATTNBENCH_PROBE", "0")
    else:
        monkeypatch.setitem(sys.modules, "attnbench.availability", None)  # import fails
    for mod in ("benchmarks._common", "benchmarks.availability"):
        monkeypatch.delitem(sys.modules, mod)
    common = importlib.import_module("benchmarks._common")
    from benchmarks.availability import Availability

    assert not common.PROBED
    assert all(v is None for v in common.AVAILABILITY.values())  # nothing ruled out
    assert torch.isnan(torch.tensor(Availability().track_available("sdpa-cudnn")))
