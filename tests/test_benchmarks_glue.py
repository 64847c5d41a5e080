"""benchmarks/_common.py: parameters from the environment, and a case or a recorded skip."""

from __future__ import annotations

import importlib
import sys

import pytest

from attnbench import get_impl, impl_names, workload_set


@pytest.fixture
def bench(monkeypatch, repo_root):
    """A freshly imported ``benchmarks`` package, on the quick set and every implementation."""
    monkeypatch.syspath_prepend(str(repo_root))
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
    assert common.IMPLS == expected and "flex" not in expected and "eager" in expected
    assert forward.Forward.params == (common.IMPLS, common.WORKLOADS)
    train_classes = [
        c for c in vars(train).values() if isinstance(c, type) and c.__module__ == train.__name__
    ]
    assert train_classes
    for cls in train_classes:
        assert cls.mode == "forward_backward"
        assert cls.params == (common.IMPLS, common.TRAIN_WORKLOADS)


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


def _swept_class(module):
    """The module's class measured by attnbench's sweep (a ``setup_cache`` over its params)."""
    (cls,) = [
        c
        for c in vars(module).values()
        if isinstance(c, type) and hasattr(c, "setup_cache") and c.__module__ == module.__name__
    ]
    return cls


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

    class Small(_swept_class(forward)):
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
