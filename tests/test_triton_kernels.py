"""The in-house Triton kernels on the CPU, under Triton's interpreter (``TRITON_INTERPRET=1``).

The interpreter runs each kernel step by step in NumPy: slow, so shapes are small and tiles are
16 wide to cross many tile boundaries (ragged ends, the causal diagonal, GQA groups, splits).
fp32 and fp16 only: the interpreter's bf16 ``tl.dot`` is wrong (bf16 is tested on the GPU,
``tests/gpu/test_triton_gpu.py``).

Triton reads ``TRITON_INTERPRET`` when it is imported, and importing torch imports Triton: the
variable must be set before the process starts. So in an ordinary session the kernel tests
here skip, and :func:`test_kernels_under_the_interpreter` runs this module again in a child
process with the variable set (a failure there shows the child's report). A session started
with ``TRITON_INTERPRET=1`` runs them directly; ``tests/test_correctness.py`` then runs
``triton-flash`` too (about 100 s on 2 cores, hence not by default).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import subprocess
import sys

import pytest
import torch

from attnbench import Workload, get_impl, prepare
from attnbench.catalogue import all_workloads
from attnbench.impls.math import math_attention
from attnbench.kernels import configs
from attnbench.kernels.configs import BwdConfig, DecodeConfig, FwdConfig
from attnbench.measure.accuracy import compare
from attnbench.sweep import sweep

from .conftest import CPU

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton is not installed"
)

SMALL_FWD = FwdConfig(16, 16, 1, 1)
SMALL_BWD = BwdConfig(16, 16, 16, 16, 1, 1)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"  # as the process started
needs_interpreter = pytest.mark.skipif(
    not INTERPRETING,
    reason="needs TRITON_INTERPRET=1 from the start (test_kernels_under_the_interpreter)",
)


@pytest.fixture(scope="module")
def kernels():
    """The kernel modules, built for the interpreter."""
    flash = importlib.import_module("attnbench.kernels.triton_flash")
    decode = importlib.import_module("attnbench.kernels.triton_decode")
    if not (flash.INTERPRETED and decode.INTERPRETED):
        pytest.skip("the Triton kernels were compiled for CUDA in this process")
    return flash, decode


def test_kernels_under_the_interpreter(repo_root):
    """This module's interpreter tests, in a child process started with TRITON_INTERPRET=1."""
    if INTERPRETING:
        pytest.skip("this session runs them directly")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"],
        env={**os.environ, "TRITON_INTERPRET": "1"},
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = (proc.stdout[-6000:] + proc.stderr[-2000:]).strip()
    assert proc.returncode == 0, f"interpreter tests failed:\n{report}"
    assert " passed" in proc.stdout.strip().splitlines()[-1], report


def _randn(gen, *shape, dtype=torch.float32, grad=False):
    return torch.randn(*shape, generator=gen).to(dtype).requires_grad_(grad)


def _reference(q, k, v, causal, scale):
    return math_attention(q.double(), k.double(), v.double(), causal=causal, scale=scale)


def _reference_lse(q, k, causal, scale):
    """Natural-log log-sum-exp of each row's scaled scores, float64, GQA and bottom-right."""
    group = q.shape[1] // k.shape[1]
    kk = k.double().repeat_interleave(group, dim=1)
    scores = q.double() @ kk.transpose(-1, -2) * scale
    if causal:
        sq, skv = q.shape[2], k.shape[2]
        rows = torch.arange(sq)[:, None] + (skv - sq)
        scores = scores.masked_fill(torch.arange(skv)[None, :] > rows, float("-inf"))
    return torch.logsumexp(scores, dim=-1)


def _assert_close(name, actual, expected, dtype):
    err = compare(actual, expected)
    assert err.within(dtype), f"{name}: {err} outside the {dtype} tolerance"


# (batch, q_heads, kv_heads, q_len, kv_len, head_dim, v_head_dim, causal, dtype)
FWD_CASES = [
    (2, 4, 4, 40, 40, 32, 32, True, "fp32"),  # MHA, diagonal through ragged tiles
    (1, 4, 2, 37, 53, 16, 16, True, "fp32"),  # GQA, q_len < kv_len: diagonal offset 16
    (1, 4, 1, 45, 30, 64, 64, False, "fp32"),  # MQA, q_len > kv_len (full)
    (1, 2, 1, 20, 50, 32, 16, False, "fp32"),  # V head dim differs
    (1, 4, 2, 33, 70, 32, 32, True, "fp16"),
    (1, 2, 2, 48, 48, 64, 64, False, "fp16"),  # every tile whole
]


@needs_interpreter
@pytest.mark.parametrize("tma", [False, True], ids=["pointers", "descriptors"])
@pytest.mark.parametrize("case", FWD_CASES, ids=lambda c: "-".join(map(str, c)))
def test_forward_and_lse_match_reference(kernels, case, tma, seed):
    """Both load paths: plain pointers, and tensor descriptors (TMA on the GPU) whose tiles
    run past a head's rows into the next head's (masked) or past the end (zero-filled)."""
    flash, _ = kernels
    b, hq, hkv, sq, skv, d, dv, causal, dtype = case
    gen = torch.Generator().manual_seed(seed)
    dt = DTYPES[dtype]
    q, k = _randn(gen, b, hq, sq, d, dtype=dt), _randn(gen, b, hkv, skv, d, dtype=dt)
    v = _randn(gen, b, hkv, skv, dv, dtype=dt)
    scale = d**-0.5
    cfg = FwdConfig(16, 16, 1, 1, tma=tma)
    assert flash._descriptors_apply(cfg, q, k, v) == tma
    out, lse = flash.attention_with_lse(
        q, k, v, causal=causal, scale=scale, fwd_cfg=cfg, bwd_cfg=SMALL_BWD
    )
    assert out.shape == (b, hq, sq, dv) and out.dtype == dt
    assert lse.shape == (b, hq, sq) and lse.dtype == torch.float32
    _assert_close("output", out, _reference(q, k, v, causal, scale), dtype)
    _assert_close("lse", lse, _reference_lse(q, k, causal, scale), "fp32")


BWD_CASES = [
    (1, 4, 2, 37, 53, 32, True, "fp32"),  # GQA: dK/dV summed over the group's heads
    (1, 2, 1, 30, 30, 16, False, "fp32"),  # MQA
    (1, 2, 2, 40, 40, 64, True, "fp16"),
]


@needs_interpreter
@pytest.mark.parametrize("case", BWD_CASES, ids=lambda c: "-".join(map(str, c)))
def test_backward_matches_float64_autograd(kernels, case, seed):
    flash, _ = kernels
    b, hq, hkv, sq, skv, d, causal, dtype = case
    gen = torch.Generator().manual_seed(seed)
    dt = DTYPES[dtype]
    leaves = [
        _randn(gen, b, hq, sq, d, dtype=dt, grad=True),
        _randn(gen, b, hkv, skv, d, dtype=dt, grad=True),
        _randn(gen, b, hkv, skv, d, dtype=dt, grad=True),
    ]
    grad_out = _randn(gen, b, hq, sq, d, dtype=dt)
    scale = d**-0.5
    out = flash.attention(*leaves, causal=causal, scale=scale, fwd_cfg=SMALL_FWD, bwd_cfg=SMALL_BWD)
    actual = torch.autograd.grad(out, leaves, grad_out)
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    ref = math_attention(*ref_leaves, causal=causal, scale=scale)
    expected = torch.autograd.grad(ref, ref_leaves, grad_out.double())
    for name, a, e in zip(("dq", "dk", "dv"), actual, expected, strict=True):
        assert a.dtype == dt
        _assert_close(name, a, e, dtype)


@needs_interpreter
@pytest.mark.parametrize(
    ("hq", "hkv", "skv", "d", "splits", "dtype"),
    [
        (8, 2, 300, 32, 1, "fp32"),  # one split: the combine is a no-op
        (8, 2, 300, 32, 3, "fp32"),  # shares of 112 keys (7 tiles), last one ragged
        (4, 1, 100, 64, 7, "fp32"),  # MQA, shares of one tile each
        (4, 4, 200, 16, 4, "fp16"),  # MHA: a group of one row padded to 16
    ],
)
def test_decode_matches_reference(kernels, hq, hkv, skv, d, splits, dtype, seed):
    _, decode = kernels
    gen = torch.Generator().manual_seed(seed)
    dt = DTYPES[dtype]
    q, k = _randn(gen, 2, hq, 1, d, dtype=dt), _randn(gen, 2, hkv, skv, d, dtype=dt)
    v = _randn(gen, 2, hkv, skv, d, dtype=dt)
    out = decode.decode(q, k, v, scale=0.3, cfg=DecodeConfig(16, splits, 1, 1))
    assert out.shape == (2, hq, 1, d) and out.dtype == dt
    _assert_close("decode", out, _reference(q, k, v, False, 0.3), dtype)


@needs_interpreter
def test_bad_inputs_get_one_clear_message(kernels):
    flash, decode = kernels
    q, k = torch.randn(1, 3, 8, 16), torch.randn(1, 2, 8, 16)
    with pytest.raises(ValueError, match="must divide"):
        flash.attention(q, k, k, causal=False)
    with pytest.raises(ValueError, match="q_len"):
        flash.attention(torch.randn(1, 2, 9, 16), k, k, causal=True)
    with pytest.raises(ValueError, match="one query row"):
        decode.decode(torch.randn(1, 2, 2, 16), k, k)


# -- through attnbench: the same checks as every implementation --------------------------------
def W(b, hq, hkv, sq, skv, d, *, causal=True, dtype="fp32", scenario="prefill"):
    return Workload(b, hq, hkv, sq, skv, d, causal=causal, dtype=dtype, scenario=scenario)


@needs_interpreter
@pytest.mark.parametrize(
    ("impl", "workload"),
    [
        ("triton-flash", W(1, 4, 2, 100, 130, 32)),
        ("triton-flash", W(1, 4, 1, 70, 70, 64, causal=False, dtype="fp16")),
        ("triton-decode", W(2, 8, 2, 1, 1000, 64, scenario="decode")),
    ],
    ids=lambda x: getattr(x, "name", x),
)
def test_forward_through_attnbench(kernels, impl, workload, seed):
    case = prepare(impl, workload, CPU, seed=seed)
    err = case.forward_error()
    assert err.within(workload.dtype), f"{case.label}: {err}"
    assert case.config and case.config["kernel"] in ("fwd", "decode")


@needs_interpreter
def test_gradients_through_attnbench(kernels, seed):
    workload = W(1, 4, 2, 40, 64, 32, scenario="train")
    case = prepare("triton-flash", workload, CPU, seed=seed, mode="forward_backward")
    bad = {n: e for n, e in case.gradient_errors().items() if not e.within("fp32")}
    assert not bad, bad


@needs_interpreter
def test_sweep_records_the_config(kernels):
    workload = W(1, 2, 1, 1, 128, 16, scenario="decode")
    (rec,) = sweep(["triton-decode"], [workload], device=CPU, baseline=None)
    assert rec.ok, rec.reason
    assert rec.extra["config"]["kernel"] == "decode"
    assert rec.extra["config"]["splits"] >= 1


@needs_interpreter
def test_unsupported_workloads_say_why(kernels):
    flash, decode = get_impl("triton-flash"), get_impl("triton-decode")
    prefill = W(1, 4, 2, 64, 64, 32)
    assert any("q_len must be 1" in r for r in decode.unsupported_reasons(prefill, CPU))
    odd = W(1, 2, 2, 16, 16, 56)
    assert any("head_dim 56" in r for r in flash.unsupported_reasons(odd, CPU))
    assert flash.unsupported_reasons(prefill, CPU) == []


def test_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reasons = get_impl("triton-flash").unsupported_reasons(W(1, 2, 2, 16, 16, 32), CPU)
    assert any("TRITON_INTERPRET=1" in r for r in reasons), reasons


# -- the configuration table -------------------------------------------------------------------
def _pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def test_table_has_valid_configs_for_every_catalogued_gpu_workload():
    checked = 0
    for w in all_workloads().values():
        d = max(w.head_dim, w.dv)
        if d not in configs.HEAD_DIMS:
            with pytest.raises(ValueError, match=f"head_dim {d}"):
                configs.fwd_config(d, "cuda")
            continue
        f = configs.fwd_config(d, "cuda", causal=w.causal)
        assert all(_pow2(x) and x >= 16 for x in (f.block_m, f.block_n)), (w.name, f)
        assert f.num_warps in (4, 8) and f.num_stages >= 1, (w.name, f)
        bw = configs.bwd_config(d, "cuda", causal=w.causal)
        blocks = (bw.block_m1, bw.block_n1, bw.block_m2, bw.block_n2)
        assert all(_pow2(x) and x >= 16 for x in blocks), (w.name, bw)
        if w.q_len == 1:
            dc = configs.decode_config(w.batch, w.kv_heads, w.kv_len, d, "cuda", num_sms=132)
            share = configs.keys_per_split(w.kv_len, dc.block_n, dc.splits)
            assert share % dc.block_n == 0
            # every split has keys, and together they cover the cache
            assert (dc.splits - 1) * share < w.kv_len <= dc.splits * share, (w.name, dc)
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("kv_len", [1, 63, 256, 16384, 65536, 100003])
def test_decode_splits_fill_the_gpu_and_cover_the_cache(kv_len):
    dc = configs.decode_config(8, 8, kv_len, 128, "cuda", num_sms=132)
    share = configs.keys_per_split(kv_len, dc.block_n, dc.splits)
    assert (dc.splits - 1) * share < kv_len <= dc.splits * share
    if kv_len >= 16384:  # long caches: at least a few programs per SM
        assert 8 * 8 * dc.splits >= 2 * 132
    assert math.ceil(kv_len / share) == dc.splits
