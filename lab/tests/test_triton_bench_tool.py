"""lab/triton_bench.py without a GPU: the variant options' parsing and the report's tables,
on a made-up result (the measuring itself needs CUDA)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from attnbench.measure.timing import TimingStats
from attnbench.sweep import Record

LAB = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    from lab import triton_bench

    return triton_bench


def _rec(impl: str, workload: str, mode: str, seconds: float, **kw) -> dict:
    t = TimingStats.from_samples([seconds], "cuda_event")
    return Record(impl, workload, mode, "cuda", time=t, tflops=1.0, gbps=1.0, **kw).as_dict()


def test_variant_names_are_checked(bench):
    """Names of configs.VARIANTS become their implementations' names; unknown names stop."""
    assert bench.parse_variants(" atomic-dq") == ["triton-flash-atomic-dq"]
    assert bench.parse_variants("all") == ["triton-flash-atomic-dq"]
    assert bench.parse_variants(None) == []
    with pytest.raises(SystemExit, match="unknown"):
        bench.parse_variants("atomic-dq,nope")
    with pytest.raises(SystemExit, match="--variants: unknown"):
        bench.main(["--variants", "nope"])  # checked before looking for CUDA


def test_variant_table(bench):
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
            "triton-flash-atomic",
            train,
            "forward_backward",
            4e-3,
            max_abs_error=0.01,
            extra={"config": {"kernel": "fwd", "bwd_atomic_dq": True}},
        ),
        Record(
            "triton-flash-slow",
            train,
            "forward_backward",
            "cuda",
            reason="OutOfResources",
        ).as_dict(),
    ]
    result = {"device": "test", "matmul_tflops": 700.0, "copy_tbps": 3.0, "records": records}
    rows = {r["variant"]: r for r in bench.variant_rows(result)}
    atomic = rows["atomic"]
    assert atomic["bwd_tflops"] == pytest.approx(w.backward_flops / 3e-3 / 1e12)
    assert atomic["vs_default"] == pytest.approx(4 / 3)
    assert atomic["vs_fa4"] == pytest.approx(2 / 3) and atomic["default_vs_fa4"] == 0.5
    assert rows["slow"]["bwd_tflops"] is None and rows["slow"]["reason"]
    result["variants"] = list(rows.values())
    text = bench.report(result)
    assert "variants (bwd TFLOP/s" in text and "slow" in text and "1.333" in text
    # the main table derives the variant's backward rate from triton-flash's forward too
    line = next(x for x in text.splitlines() if "triton-flash-atomic " in x)
    assert f"{w.backward_flops / 3e-3 / 1e12:.0f}" in line


def test_fp8_check_says_what_it_needs_without_a_gpu():
    """``lab/fp8_check.py`` measures on a GPU only: elsewhere one line and exit code 2."""
    tool = LAB / "fp8_check.py"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(tool)], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert "needs a CUDA GPU with fp8" in done.stderr


def test_bwd_configs_are_parsed_in_order(bench):
    """``--bwd-configs``: m1,n1,m2,n2,warps,stages[,atomic] per item, the pass's only
    candidates."""
    got = bench.parse_bwd_configs("64,32,64,32,8,2; 16,64,64,32,8,2, atomic;")
    assert [(c.block_m1, c.block_n1, c.block_m2, c.block_n2, c.num_warps, c.num_stages,
             c.atomic_dq) for c in got] == [(64, 32, 64, 32, 8, 2, False),
                                            (16, 64, 64, 32, 8, 2, True)]  # fmt: skip
    for bad in ("64,32,64,32,8", "64,32,64,32,8,atomic", "64,32,64,32,8,2,fast"):
        with pytest.raises(ValueError):
            bench.parse_bwd_configs(bad)
