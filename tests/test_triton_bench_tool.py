"""tools/triton_bench.py without a GPU: the variant options' parsing and the report's tables,
on a made-up result (the measuring itself needs CUDA)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from attnbench.measure.timing import TimingStats
from attnbench.sweep import Record

from .conftest import ROOT


@pytest.fixture(scope="module")
def bench():
    path = ROOT / "tools" / "triton_bench.py"
    spec = importlib.util.spec_from_file_location("triton_bench", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["triton_bench"] = mod  # dataclasses and contextmanager look the module up
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("triton_bench", None)


def _rec(impl: str, workload: str, mode: str, seconds: float, **kw) -> dict:
    t = TimingStats.from_samples([seconds], "cuda_event")
    return Record(impl, workload, mode, "cuda", time=t, tflops=1.0, gbps=1.0, **kw).as_dict()


def test_bwd_variant_names_are_checked(bench):
    # the default (v5) is triton-flash itself; v3 (the order before v5) is a variant now
    assert bench.parse_bwd_variants("atomic, v3,v5,atomic-kf") == ["atomic", "v3", "atomic-kf"]
    assert bench.parse_bwd_variants("v5") == []
    assert bench.parse_bwd_variants(None) == []
    with pytest.raises(SystemExit, match="unknown"):
        bench.parse_bwd_variants("atomic,nope")
    with pytest.raises(SystemExit, match="--bwd-variants: unknown"):
        bench.main(["--bwd-variants", "nope"])  # checked before looking for CUDA


def test_bwd_variant_table(bench):
    """bwd TFLOP/s = backward FLOPs / (t(fwd+bwd) - t(fwd)), the variants' from triton-flash's
    forward; ratios to the default backward and fa4."""
    pre, train = "h32d128/prefill/s4096/b4/causal/bf16", "h32d128/train/s4096/b4/causal/bf16"
    w = {w.name: w for w in bench._all_workloads()}[train]
    records = [
        _rec("triton-flash", pre, "forward", 1e-3),
        _rec("fa4", pre, "forward", 1e-3),
        _rec("triton-flash", train, "forward_backward", 5e-3),  # default: 4 ms of backward
        _rec("fa4", train, "forward_backward", 3e-3),  # 2 ms
        _rec(
            "triton-flash[bwd:atomic]",
            train,
            "forward_backward",
            4e-3,
            max_abs_error=0.01,
            extra={"config": {"kernel": "fwd", "bwd_atomic_dq": True}},
        ),
        Record(
            "triton-flash[bwd:atomic-kf-n64]",
            train,
            "forward_backward",
            "cuda",
            reason="OutOfResources",
        ).as_dict(),
    ]
    result = {"device": "test", "matmul_tflops": 700.0, "copy_tbps": 3.0, "records": records}
    rows = {r["variant"]: r for r in bench.bwd_variant_rows(result)}
    atomic = rows["atomic"]
    assert atomic["bwd_tflops"] == pytest.approx(w.backward_flops / 3e-3 / 1e12)
    assert atomic["vs_default"] == pytest.approx(4 / 3)
    assert atomic["vs_fa4"] == pytest.approx(2 / 3) and atomic["default_vs_fa4"] == 0.5
    assert rows["atomic-kf-n64"]["bwd_tflops"] is None and rows["atomic-kf-n64"]["reason"]
    result["bwd_variants"] = list(rows.values())
    text = bench.report(result)
    assert "backward variants" in text and "atomic-kf-n64" in text and "1.333" in text
    # the main table derives the variant's backward rate from triton-flash's forward too
    line = next(x for x in text.splitlines() if "triton-flash[bwd:atomic]" in x)
    assert f"{w.backward_flops / 3e-3 / 1e12:.0f}" in line


def test_fp8_check_says_what_it_needs_without_a_gpu():
    """``tools/fp8_check.py`` measures on a GPU only: elsewhere one line and exit code 2."""
    tool = ROOT / "tools" / "fp8_check.py"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(tool)], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert "needs a CUDA GPU with fp8" in done.stderr
