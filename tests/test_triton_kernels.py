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
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from attnbench import Workload, get_impl, prepare
from attnbench.catalogue import all_workloads
from attnbench.impls.math import math_attention
from attnbench.kernels.flash import configs
from attnbench.kernels.flash.configs import BwdConfig, FwdConfig
from attnbench.masks import MaskSpec, alibi_slopes
from attnbench.measure.accuracy import compare
from attnbench.sweep import sweep

from .conftest import CPU
from .test_fp8 import sink_inputs

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton is not installed"
)

SMALL_BWD = BwdConfig(16, 16, 16, 16, 1, 1)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"  # as the process started
needs_interpreter = pytest.mark.skipif(
    not INTERPRETING,
    reason="needs TRITON_INTERPRET=1 from the start (test_kernels_under_the_interpreter)",
)


@pytest.fixture(scope="module")
def kernels():
    """The kernel modules (api, forward, decode), built for the interpreter."""
    api = importlib.import_module("attnbench.kernels.flash.api")
    forward = importlib.import_module("attnbench.kernels.flash.forward")
    decode = importlib.import_module("attnbench.kernels.flash.decode")
    if not api.INTERPRETED:
        pytest.skip("the Triton kernels were compiled for CUDA in this process")
    return api, forward, decode


@pytest.mark.slow  # a child process running the kernels in Triton's interpreter: minutes
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


def _reference(q, k, v, causal, scale, spec=None):
    return math_attention(q.double(), k.double(), v.double(), causal=causal, scale=scale, mask=spec)


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


def _mask(forward, spec: MaskSpec, heads: int):
    return forward.mask_args(
        spec.causal,
        window=spec.window,
        doc_lens=spec.doc_lens,
        alibi_slopes=alibi_slopes(heads) if spec.alibi else None,
        device="cpu",
    )


# -- forward: the dense specialization and the general kernel ---------------------------------
# (batch, q_heads, kv_heads, q_len, kv_len, head_dim, v_head_dim, causal, dtype)
FWD_CASES = [
    (2, 4, 4, 40, 40, 32, 32, True, "fp32"),  # MHA, diagonal through ragged tiles
    (1, 4, 2, 37, 53, 16, 16, True, "fp32"),  # GQA, q_len < kv_len: diagonal offset 16
    (1, 4, 1, 45, 30, 64, 64, False, "fp32"),  # MQA, q_len > kv_len (full)
    (1, 2, 1, 20, 50, 32, 16, False, "fp32"),  # V head dim differs
    (1, 4, 2, 33, 70, 32, 32, True, "fp16"),
    (1, 2, 2, 48, 48, 64, 64, False, "fp16"),  # every tile whole
]
PATHS = {
    "dense": FwdConfig(16, 16, 1, 1),
    "dense-tma": FwdConfig(16, 16, 1, 1, tma=True),
    "general": FwdConfig(16, 16, 1, 1, dense=False),
    "general-tma": FwdConfig(16, 16, 1, 1, tma=True, dense=False),
    "split": FwdConfig(16, 16, 1, 1, num_splits=3, dense=False),
    "split-fused": FwdConfig(16, 16, 1, 1, num_splits=3, dense=False, fused_combine=True),
}


@needs_interpreter
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case", FWD_CASES, ids=lambda c: "-".join(map(str, c)))
def test_forward_and_lse_match_reference(kernels, case, path, seed):
    """Every forward path: the dense specialization and the general kernel, with plain
    pointers and tensor descriptors (TMA on the GPU; tiles that run past a head's rows into the
    next head's are masked, past the end zero-filled), and split keys."""
    api, forward, _ = kernels
    b, hq, hkv, sq, skv, d, dv, causal, dtype = case
    gen = torch.Generator().manual_seed(seed)
    dt = DTYPES[dtype]
    q, k = _randn(gen, b, hq, sq, d, dtype=dt), _randn(gen, b, hkv, skv, d, dtype=dt)
    v = _randn(gen, b, hkv, skv, dv, dtype=dt)
    scale = d**-0.5
    cfg = PATHS[path]
    assert forward.descriptors_apply(cfg, q, k, v) == cfg.tma
    mask = forward.MaskArgs(causal)
    assert forward.dense_applies(cfg, mask, q, k, v, 1) == path.startswith("dense")
    out, lse = api.attention_with_lse(
        q, k, v, causal=causal, scale=scale, fwd_config=cfg, bwd_config=SMALL_BWD
    )
    assert out.shape == (b, hq, sq, dv) and out.dtype == dt
    assert lse.shape == (b, hq, sq) and lse.dtype == torch.float32
    _assert_close("output", out, _reference(q, k, v, causal, scale), dtype)
    _assert_close("lse", lse, _reference_lse(q, k, causal, scale), "fp32")


# (batch, q_heads, kv_heads, q_len, kv_len, head_dim, v_head_dim, mask, dtype)
MASK_CASES = [
    (1, 4, 2, 50, 50, 32, 32, MaskSpec(causal=True, window=7), "fp32"),
    (1, 4, 2, 20, 70, 32, 32, MaskSpec(causal=True, window=24), "fp32"),  # q_len < kv_len
    (1, 2, 1, 60, 60, 16, 16, MaskSpec(causal=True, doc_lens=(13, 30, 17)), "fp32"),
    (1, 2, 2, 60, 60, 16, 16, MaskSpec(causal=False, doc_lens=(25, 35)), "fp16"),
    (1, 4, 2, 40, 40, 32, 32, MaskSpec(causal=True, alibi=True), "fp32"),
    (1, 3, 3, 30, 45, 16, 16, MaskSpec(causal=False, alibi=True), "fp32"),  # 3 heads: slopes
    (1, 2, 2, 50, 50, 16, 16, MaskSpec(causal=True, window=9, doc_lens=(20, 30)), "fp32"),
    (1, 2, 2, 33, 33, 56, 56, MaskSpec(causal=True), "fp16"),  # head_dim 56: padded tiles
    (1, 2, 1, 40, 40, 48, 24, MaskSpec(causal=False), "fp32"),  # neither a power of two
    (1, 2, 2, 24, 24, 192, 128, MaskSpec(causal=True), "fp32"),  # MLA: D 192, Dv 128
]


@needs_interpreter
@pytest.mark.parametrize("case", MASK_CASES, ids=lambda c: "-".join(map(str, c[:7])))
def test_masks_and_head_dims_match_reference(kernels, case, seed):
    """Windows, packed documents and ALiBi in the kernel; head dims that are not powers of two
    and V's differing from Q/K's: the general kernel (the dense one declines them)."""
    api, forward, _ = kernels
    b, hq, hkv, sq, skv, d, dv, spec, dtype = case
    gen = torch.Generator().manual_seed(seed)
    dt = DTYPES[dtype]
    q, k = _randn(gen, b, hq, sq, d, dtype=dt), _randn(gen, b, hkv, skv, d, dtype=dt)
    v = _randn(gen, b, hkv, skv, dv, dtype=dt)
    mask = _mask(forward, spec, hq)
    cfg = FwdConfig(16, 16, 1, 1)  # dense asked for: must fall back where it cannot run
    assert not forward.dense_applies(cfg, mask, q, k, v, 1) or (not spec.features and d == dv)
    out = api.attention(q, k, v, scale=0.3, mask=mask, fwd_config=cfg)
    assert out.shape == (b, hq, sq, dv)
    _assert_close("output", out, _reference(q, k, v, spec.causal, 0.3, spec), dtype)


# -- backward (deterministic: no atomics) -----------------------------------------------------
BWD_CASES = [
    (1, 4, 2, 37, 53, 32, 32, MaskSpec(causal=True), "fp32"),  # GQA: dK/dV over the group
    (1, 2, 1, 30, 30, 16, 16, MaskSpec(causal=False), "fp32"),  # MQA
    (1, 2, 2, 40, 40, 64, 64, MaskSpec(causal=True), "fp16"),
    (1, 2, 1, 48, 48, 32, 32, MaskSpec(causal=True, window=10), "fp32"),
    (1, 2, 2, 40, 40, 16, 16, MaskSpec(causal=True, doc_lens=(15, 25)), "fp32"),
    (1, 2, 2, 32, 32, 16, 16, MaskSpec(causal=True, alibi=True), "fp32"),
    (1, 2, 2, 20, 20, 56, 56, MaskSpec(causal=False), "fp32"),
    (1, 1, 1, 20, 20, 192, 128, MaskSpec(causal=True), "fp32"),
]


def _grads(api, forward, leaves, grad_out, spec, bwd_config):
    hq, d = leaves[0].shape[1], leaves[0].shape[-1]
    out = api.attention(
        *leaves, scale=d**-0.5, mask=_mask(forward, spec, hq),
        fwd_config=FwdConfig(16, 16, 1, 1), bwd_config=bwd_config,
    )  # fmt: skip
    return torch.autograd.grad(out, leaves, grad_out)


def _backward_inputs(case, seed):
    b, hq, hkv, sq, skv, d, dv, _, dtype = case
    gen = torch.Generator().manual_seed(seed)
    dt = DTYPES[dtype]
    leaves = [
        _randn(gen, b, hq, sq, d, dtype=dt, grad=True),
        _randn(gen, b, hkv, skv, d, dtype=dt, grad=True),
        _randn(gen, b, hkv, skv, dv, dtype=dt, grad=True),
    ]
    return leaves, _randn(gen, b, hq, sq, dv, dtype=dt)


def _assert_grads_match_float64(actual, leaves, grad_out, spec, dtype):
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    scale = leaves[0].shape[-1] ** -0.5
    ref = math_attention(*ref_leaves, causal=spec.causal, scale=scale, mask=spec)
    expected = torch.autograd.grad(ref, ref_leaves, grad_out.double())
    for name, a, e in zip(("dq", "dk", "dv"), actual, expected, strict=True):
        assert a.dtype == DTYPES[dtype] and a.shape == e.shape
        _assert_close(name, a, e, dtype)


@needs_interpreter
@pytest.mark.parametrize("case", BWD_CASES, ids=lambda c: "-".join(map(str, c[:7])))
def test_backward_matches_float64_autograd(kernels, case, seed):
    api, forward, _ = kernels
    spec, dtype = case[7], case[8]
    leaves, grad_out = _backward_inputs(case, seed)
    actual = _grads(api, forward, leaves, grad_out, spec, SMALL_BWD)
    again = _grads(api, forward, leaves, grad_out, spec, SMALL_BWD)
    assert all(torch.equal(a, b) for a, b in zip(actual, again, strict=True))  # deterministic
    _assert_grads_match_float64(actual, leaves, grad_out, spec, dtype)


# -- backward with dQ by atomic adds in the dK/dV kernel (BwdConfig.atomic_dq, v5) -------------
ATOMIC_BWD_CASES = [
    *BWD_CASES,
    (1, 2, 2, 40, 40, 16, 16, MaskSpec(causal=False), "fp16"),  # full, every tile whole
    (1, 4, 1, 45, 30, 32, 32, MaskSpec(causal=False), "fp32"),  # MQA, q_len > kv_len
    (1, 4, 2, 20, 70, 32, 32, MaskSpec(causal=True, window=24), "fp16"),  # q_len < kv_len
    (1, 2, 1, 60, 60, 16, 16, MaskSpec(causal=False, doc_lens=(25, 35)), "fp32"),
    (1, 3, 3, 30, 45, 16, 16, MaskSpec(causal=False, alibi=True), "fp32"),
    (1, 2, 2, 50, 50, 16, 16, MaskSpec(causal=True, window=9, doc_lens=(20, 30)), "fp16"),
]
ATOMIC_BWD = {
    "atomic": replace(SMALL_BWD, atomic_dq=True, keys_first=False),  # v3's launch order
    "atomic-kf": replace(SMALL_BWD, atomic_dq=True, keys_first=True),  # a head's keys first
    "atomic-kf-m32": replace(SMALL_BWD, atomic_dq=True, keys_first=True, block_m1=32),
}


class _NotLaunched:
    """Stands in for ``_bwd_dq_kernel``: the atomic path must not launch it."""

    def __getitem__(self, grid):
        raise AssertionError("the dQ kernel ran: dQ did not come from the atomic adds")


@needs_interpreter
@pytest.mark.parametrize("variant", list(ATOMIC_BWD))
@pytest.mark.parametrize("case", ATOMIC_BWD_CASES, ids=lambda c: "-".join(map(str, c[:8])))
def test_atomic_dq_backward_matches_float64_autograd(kernels, case, variant, seed, monkeypatch):
    """Every mask, GQA/MQA, q_len != kv_len, odd head dims: dQ summed by atomic adds in the
    dK/dV kernel (the dQ kernel does not run), dK and dV as before, all against float64."""
    api, forward, _ = kernels
    backward = importlib.import_module("attnbench.kernels.flash.backward")
    spec, dtype = case[7], case[8]
    leaves, grad_out = _backward_inputs(case, seed)
    monkeypatch.setattr(backward, "_bwd_dq_kernel", _NotLaunched())
    actual = _grads(api, forward, leaves, grad_out, spec, ATOMIC_BWD[variant])
    _assert_grads_match_float64(actual, leaves, grad_out, spec, dtype)


@needs_interpreter
@pytest.mark.parametrize("atomic", [False, True])
@pytest.mark.parametrize("keys_first", [True, False], ids=["keys-first", "v3-order"])
def test_dkdv_launch_order(kernels, atomic, keys_first, seed, monkeypatch):
    """``keys_first`` (the default): the dK/dV grid is (key blocks, B * Hkv); without it
    (B * Hkv, key blocks); the gradients match float64 either way, and the
    deterministic kernels give bitwise the same gradients in both orders."""
    api, forward, _ = kernels
    backward = importlib.import_module("attnbench.kernels.flash.backward")
    case = (2, 4, 2, 37, 70, 32, 32, MaskSpec(causal=True), "fp32")
    leaves, grad_out = _backward_inputs(case, seed)
    grids, kernel = [], backward._bwd_dkdv_kernel

    class Spy:
        def __getitem__(self, grid):
            grids.append(tuple(grid))
            return kernel[grid]

    monkeypatch.setattr(backward, "_bwd_dkdv_kernel", Spy())
    cfg = replace(SMALL_BWD, atomic_dq=atomic, keys_first=keys_first)
    actual = _grads(api, forward, leaves, grad_out, case[7], cfg)
    # 70 keys / 16 = 5 key blocks, B * Hkv = 4
    assert grids == [(5, 2 * 2) if keys_first else (2 * 2, 5)]
    _assert_grads_match_float64(actual, leaves, grad_out, case[7], "fp32")
    if not atomic:
        flipped = replace(cfg, keys_first=not keys_first)
        other = _grads(api, forward, leaves, grad_out, case[7], flipped)
        for a, b in zip(actual, other, strict=True):
            assert torch.equal(a, b)


@needs_interpreter
def test_keys_first_falls_back_past_the_grid_limit(kernels, seed, monkeypatch):
    """B * Hkv over CUDA's 65535 on the grid's second axis: v3's order, same gradients."""
    api, forward, _ = kernels
    backward = importlib.import_module("attnbench.kernels.flash.backward")
    case = (2, 4, 2, 37, 70, 32, 32, MaskSpec(causal=True), "fp32")
    leaves, grad_out = _backward_inputs(case, seed)
    grids, kernel = [], backward._bwd_dkdv_kernel

    class Spy:
        def __getitem__(self, grid):
            grids.append(tuple(grid))
            return kernel[grid]

    monkeypatch.setattr(backward, "_bwd_dkdv_kernel", Spy())
    monkeypatch.setattr(backward, "MAX_GRID_Y", 3)  # B * Hkv = 4 "too many"
    actual = _grads(api, forward, leaves, grad_out, case[7], SMALL_BWD)
    assert SMALL_BWD.keys_first and grids == [(2 * 2, 5)]
    _assert_grads_match_float64(actual, leaves, grad_out, case[7], "fp32")


# -- decode: packed GQA rows, split keys ------------------------------------------------------
@needs_interpreter
@pytest.mark.parametrize(
    ("hq", "hkv", "sq", "skv", "d", "splits", "dtype"),
    [
        (8, 2, 1, 300, 32, 1, "fp32"),  # one split: no combine
        (8, 2, 1, 300, 32, 3, "fp32"),  # shares of 112 keys (7 tiles), last one ragged
        (4, 1, 1, 100, 64, 7, "fp32"),  # MQA, shares of one tile each
        (4, 4, 1, 200, 16, 4, "fp16"),  # MHA: a group of one row padded to 16
        (8, 2, 3, 150, 32, 2, "fp32"),  # several query rows (speculative decode), causal
    ],
)
def test_decode_matches_reference(kernels, hq, hkv, sq, skv, d, splits, dtype, seed):
    api, _, decode = kernels
    gen = torch.Generator().manual_seed(seed)
    dt = DTYPES[dtype]
    q, k = _randn(gen, 2, hq, sq, d, dtype=dt), _randn(gen, 2, hkv, skv, d, dtype=dt)
    v = _randn(gen, 2, hkv, skv, d, dtype=dt)
    cfg = FwdConfig(16, 16, 1, 1, packed=True, num_splits=splits, dense=False)
    if sq == 1:
        out = decode.decode(q, k, v, scale=0.3, config=cfg)
    else:
        out = api.attention(q, k, v, scale=0.3, causal=True, fwd_config=cfg)
    assert out.shape == (2, hq, sq, d) and out.dtype == dt
    _assert_close("decode", out, _reference(q, k, v, sq > 1, 0.3), dtype)


@needs_interpreter
@pytest.mark.parametrize("splits", [2, 3, 7])
@pytest.mark.parametrize("spec", [MaskSpec(causal=True), MaskSpec(causal=True, window=90),
                                  MaskSpec(causal=False, alibi=True)], ids=str)  # fmt: skip
def test_fused_combine_merges_as_the_combine_kernel(kernels, splits, spec, seed):
    """The last split of each row block merges the partials itself (one launch): the same
    output and log-sum-exp as the combine kernel's, within float32 rounding (the merge runs
    online, in split order), on packed GQA rows, with a window and ALiBi; and its tickets are
    back at zero after each call, so a second call (a graph replay) merges again."""
    _, forward, _ = kernels
    gen = torch.Generator().manual_seed(seed)
    q, k, v = _randn(gen, 2, 8, 1, 32), _randn(gen, 2, 2, 300, 32), _randn(gen, 2, 2, 300, 32)
    mask = _mask(forward, spec, 8)
    two = FwdConfig(16, 16, 1, 1, packed=True, num_splits=splits, dense=False)
    one = FwdConfig(16, 16, 1, 1, packed=True, num_splits=splits, dense=False, fused_combine=True)
    ref, ref_lse = forward.attention_forward(q, k, v, 0.3, mask, two, need_lse=True)
    for _ in range(2):
        out, lse = forward.attention_forward(q, k, v, 0.3, mask, one, need_lse=True)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(lse, ref_lse, rtol=1e-5, atol=1e-6)
        assert not forward.split_counters(q.device, 1).any()
    _assert_close("decode", out, _reference(q, k, v, False, 0.3, spec), "fp32")


# -- fp8: e4m3 in, bf16 out, forward ------------------------------------------------------------
FP8 = torch.float8_e4m3fn
# (batch, q_heads, kv_heads, q_len, kv_len, head_dim, causal)
FP8_CASES = [
    (2, 4, 2, 37, 53, 32, True),
    (1, 2, 2, 48, 48, 64, False),  # keys a multiple of 16: V goes transposed through TMA
    (1, 4, 2, 40, 64, 32, True),  # and causal, q_len < kv_len
]


def _fp8(gen, *shape):
    return torch.randn(*shape, generator=gen).to(FP8)


@needs_interpreter
@pytest.mark.parametrize("path", ["dense", "dense-tma", "general", "split"])
@pytest.mark.parametrize("case", FP8_CASES, ids=lambda c: "-".join(map(str, c)))
def test_fp8_forward_and_lse_match_reference(kernels, case, path, seed):
    """fp8 Q/K/V through every forward path: a bf16 output within fp8's tolerance of the
    float64 reference on the same fp8 values, and the exact log-sum-exp (the 2^8 scaling of P
    taken out again)."""
    api, forward, _ = kernels
    b, hq, hkv, sq, skv, d, causal = case
    gen = torch.Generator().manual_seed(seed)
    q, k, v = _fp8(gen, b, hq, sq, d), _fp8(gen, b, hkv, skv, d), _fp8(gen, b, hkv, skv, d)
    cfg = PATHS[path]
    dense = forward.dense_applies(cfg, forward.MaskArgs(causal), q, k, v, 1)
    assert dense == path.startswith("dense")
    v_t = forward.v_transposed_applies(q, k, forward.descriptors_apply(cfg, q, k, v), dense)
    assert v_t == (path.endswith("tma") and skv % 16 == 0)
    out, lse = api.attention_with_lse(q, k, v, causal=causal, scale=d**-0.5, fwd_config=cfg)
    assert out.dtype == torch.bfloat16 and out.shape == (b, hq, sq, d)
    _assert_close("output", out, _reference(q, k, v, causal, d**-0.5), "fp8")
    _assert_close("lse", lse, _reference_lse(q, k, causal, d**-0.5), "fp32")


@needs_interpreter
@pytest.mark.parametrize("path", ["dense", "general", "split"])
def test_fp8_keeps_the_small_probabilities_beside_an_attention_sink(kernels, path):
    """A sink key about 7 nats above 511 others: their probabilities are ~2^-10 of the sink's
    and, rounded to e4m3 unscaled, would mostly flush to zero (the CPU emulation of
    ``tests/test_fp8.py``). Scaled by 2^8 before the rounding they survive."""
    api, _, _ = kernels
    q, k, v = sink_inputs()
    out = api.attention(q, k, v, scale=32**-0.5, fwd_config=PATHS[path])
    err = compare(out, _reference(q, k, v, False, 32**-0.5))
    assert err.rel_norm < 5e-3, err


@needs_interpreter
def test_fp8_decode_against_an_fp8_cache(kernels, seed):
    """Packed GQA rows, split keys, the combine kernel: fp8 in, bf16 out."""
    _, _, decode = kernels
    gen = torch.Generator().manual_seed(seed)
    q, k, v = _fp8(gen, 2, 8, 1, 32), _fp8(gen, 2, 2, 300, 32), _fp8(gen, 2, 2, 300, 32)
    cfg = FwdConfig(16, 16, 1, 1, packed=True, num_splits=3, dense=False)
    out = decode.decode(q, k, v, scale=0.3, config=cfg)
    assert out.dtype == torch.bfloat16
    _assert_close("decode", out, _reference(q, k, v, False, 0.3), "fp8")


@needs_interpreter
def test_bad_inputs_get_one_clear_message(kernels):
    api, _, decode = kernels
    q, k = torch.randn(1, 3, 8, 16), torch.randn(1, 2, 8, 16)
    with pytest.raises(ValueError, match="must divide"):
        api.attention(q, k, k, causal=False)
    with pytest.raises(ValueError, match="q_len"):
        api.attention(torch.randn(1, 2, 9, 16), k, k, causal=True)
    with pytest.raises(ValueError, match="one query row"):
        decode.decode(torch.randn(1, 2, 2, 16), k, k)
    with pytest.raises(ValueError, match="head_dim 320"):
        big = torch.randn(1, 2, 8, 320)
        api.attention(big, big, big)


# -- through attnbench: the same checks as every implementation --------------------------------
def W(b, hq, hkv, sq, skv, d, *, causal=True, dtype="fp32", scenario="prefill", **kw):
    return Workload(b, hq, hkv, sq, skv, d, causal=causal, dtype=dtype, scenario=scenario, **kw)


@needs_interpreter
@pytest.mark.parametrize(
    ("impl", "workload"),
    [
        ("triton-flash", W(1, 4, 2, 100, 130, 32)),
        ("triton-flash", W(1, 4, 1, 70, 70, 64, causal=False, dtype="fp16")),
        ("triton-flash", W(1, 2, 2, 64, 64, 56, window=16)),
        ("triton-flash", W(1, 4, 2, 64, 64, 32, alibi=True, documents=2)),
        ("triton-flash", W(1, 2, 2, 40, 40, 192, v_head_dim=128)),
        ("triton-decode", W(2, 8, 2, 1, 1000, 64, scenario="decode")),
        ("triton-decode", W(1, 4, 2, 1, 300, 32, scenario="decode", alibi=True)),
        ("triton-flash", W(1, 4, 2, 64, 80, 32, dtype="fp8")),
        ("triton-flash", W(1, 2, 2, 48, 48, 32, dtype="fp8", window=20)),
        ("triton-decode", W(2, 8, 2, 1, 400, 64, scenario="decode", dtype="fp8")),
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
    assert "bwd_block_n1" in case.config


@needs_interpreter
def test_atomic_gradients_through_attnbench(kernels, seed):
    """``triton-flash-atomic-dq`` binds the atomic-dQ backward, records it, and its gradients
    pass attnbench's own check."""
    workload = W(1, 4, 2, 40, 64, 32, scenario="train", window=20)
    case = prepare("triton-flash-atomic-dq", workload, CPU, seed=seed, mode="forward_backward")
    assert case.config["bwd_atomic_dq"] is True
    bad = {n: e for n, e in case.gradient_errors().items() if not e.within("fp32")}
    assert not bad, bad


@needs_interpreter
@pytest.mark.parametrize(
    ("impl", "workload"),
    [("triton-flash", W(1, 4, 2, 48, 48, 32, documents=3, alibi=True)),
     ("triton-flash", W(1, 4, 2, 24, 40, 32, causal=False)),
     ("triton-decode", W(2, 4, 2, 1, 200, 32, scenario="decode"))],
    ids=lambda x: getattr(x, "name", x),
)  # fmt: skip
def test_direct_forward_is_the_bound_call(kernels, impl, workload, seed):
    """``forward`` is derived from ``bind``: the bound call's configuration and mask tables,
    the same numbers; another scale reaches the kernel."""
    case = prepare(impl, workload, CPU, seed=seed)
    q, k, v = case.inputs.leaves()
    w, mask = workload, workload.mask if workload.mask.features else None
    out = get_impl(impl).forward(q, k, v, causal=w.causal, scale=w.scale, mask=mask)
    torch.testing.assert_close(out, case.forward(), rtol=0, atol=0)
    other = get_impl(impl).forward(q, k, v, causal=w.causal, scale=0.3, mask=mask)
    ref = math_attention(q.double(), k.double(), v.double(), causal=w.causal, scale=0.3,
                         mask=mask)  # fmt: skip
    assert compare(other, ref).within("fp32")


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
    assert any("head_dim 320" in r for r in flash.unsupported_reasons(W(1, 2, 2, 8, 8, 320), CPU))
    assert flash.unsupported_reasons(prefill, CPU) == []
    assert flash.unsupported_reasons(W(1, 2, 2, 16, 16, 56, window=4), CPU) == []


def test_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    for name in ("triton-flash", "triton-decode"):
        w = W(1, 2, 2, 1 if name == "triton-decode" else 16, 16, 32)
        reasons = get_impl(name).unsupported_reasons(w, CPU)
        assert any("TRITON_INTERPRET=1" in r for r in reasons), reasons


# -- the configuration chooser -----------------------------------------------------------------
def _pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def test_chooser_has_valid_configs_for_every_catalogued_gpu_workload():
    checked = 0
    for w in all_workloads().values():
        if max(w.head_dim, w.dv) > configs.MAX_HEAD_DIM:
            continue
        f = configs.choose_fwd_config(
            w.batch, w.q_heads, w.kv_heads, w.q_len, w.kv_len, w.head_dim, w.dv,
            itemsize=w.torch_dtype.itemsize, causal=w.causal, dense_mask=not w.mask.features,
        )  # fmt: skip
        assert all(_pow2(x) and x >= 16 for x in (f.block_m, f.block_n)), (w.name, f)
        assert f.num_warps in (4, 8) and f.num_stages >= 1 and f.num_splits >= 1, (w.name, f)
        if f.dense:  # only where the dense specialization can run
            assert not w.mask.features and w.head_dim == w.dv and _pow2(w.head_dim), w.name
            assert f.num_splits == 1 and not f.packed
        bw = configs.choose_bwd_config(w.head_dim, w.dv, w.torch_dtype.itemsize)
        blocks = (bw.block_m1, bw.block_n1, bw.block_m2, bw.block_n2)
        assert all(_pow2(x) and x >= 16 for x in blocks), (w.name, bw)
        if w.q_len == 1:
            assert f.packed, (w.name, f)
            share = configs.keys_per_split(w.kv_len, f.block_n, f.num_splits)
            splits = configs.splits_for(w.kv_len, f.block_n, f.num_splits)
            assert share % f.block_n == 0
            assert (splits - 1) * share < w.kv_len <= splits * share, (w.name, f)
        checked += 1
    assert checked > 20


def test_dense_d128_uses_the_measured_v2_table():
    """bf16 D=128 causal/full prefill: triton-flash v2's 128x128, 8 warps, 3 stages, TMA."""
    for causal in (True, False):
        f = configs.choose_fwd_config(4, 32, 32, 4096, 4096, 128, 128, causal=causal)
        assert f == configs.FwdConfig(128, 128, 8, 3, tma=True)
        d = f.as_dict()
        assert {"block_m", "block_n", "num_warps", "num_stages", "tma"} <= set(d)
    masked = configs.choose_fwd_config(4, 32, 32, 4096, 4096, 128, 128, dense_mask=False)
    assert not masked.dense
    fp32 = configs.choose_fwd_config(4, 32, 32, 4096, 4096, 128, 128, itemsize=4)
    assert not fp32.dense


def test_only_fp8_through_dense_descriptors_sends_v_transposed():
    """V goes transposed (``forward._v_tile``) for fp8 on the dense TMA path with a key count
    whose fp8 rows are whole 16 bytes; bf16 never (its wgmma reads V as stored)."""
    from attnbench.kernels.flash import forward

    def qk(dtype, skv):
        return torch.zeros(1, 2, 8, 64).to(dtype), torch.zeros(1, 2, skv, 64).to(dtype)

    assert forward.v_transposed_applies(*qk(FP8, 64), use_desc=True, dense=True)
    assert not forward.v_transposed_applies(*qk(FP8, 72), use_desc=True, dense=True)
    assert not forward.v_transposed_applies(*qk(FP8, 64), use_desc=False, dense=True)
    assert not forward.v_transposed_applies(*qk(FP8, 64), use_desc=True, dense=False)
    assert not forward.v_transposed_applies(*qk(torch.bfloat16, 64), use_desc=True, dense=True)


def test_fp8_decode_moves_the_bytes_of_bf16_per_tile_with_twice_the_programs():
    """fp8 decode (H200 measured, ``tools/fp8_check.py``): 128-key tiles and twice bf16's key
    splits; bf16 keeps the H100-measured 64 keys and its splits."""
    for kv, bf16_splits in ((16384, 2), (65536, 2)):
        bf16 = configs.choose_fwd_config(8, 32, 8, 1, kv, 128, 128)
        fp8 = configs.choose_fwd_config(8, 32, 8, 1, kv, 128, 128, itemsize=1)
        assert (bf16.block_n, bf16.num_splits) == (64, bf16_splits)
        assert (fp8.block_n, fp8.num_splits) == (128, 2 * bf16_splits)
        assert fp8.packed and not fp8.dense and fp8.num_stages == bf16.num_stages


def test_backward_default_is_deterministic_keys_first():
    """The chooser's backward: no atomics, a head's key blocks launched first, for every
    shape; the recorded dict always carries both booleans."""
    default = configs.choose_bwd_config(128, 128)
    assert default == BwdConfig(64, 128, 128, 64, 8, 3, atomic_dq=False, keys_first=True)
    fields = {"kernel", "block_m1", "block_n1", "block_m2", "block_n2", "num_warps",
              "num_stages", "atomic_dq", "keys_first"}  # fmt: skip
    assert set(default.as_dict()) == fields
    for d, size in ((64, 2), (128, 4), (256, 2), (256, 4), (56, 2)):
        chosen = configs.choose_bwd_config(d, d, size)
        assert chosen.keys_first and not chosen.atomic_dq, (d, size)


def test_each_variant_is_an_implementation_of_its_own():
    """Each entry of ``configs.VARIANTS`` is registered as ``triton-flash-<name>``, listed but
    not benchmarked by default, with the default's forward and the variant's backward."""
    from attnbench import impl_names

    assert "atomic-dq" in configs.VARIANTS
    default = get_impl("triton-flash")
    w = Workload(4, 32, 32, 4096, 4096, 128, causal=True, dtype="fp16", scenario="train")
    for name, variant in configs.VARIANTS.items():
        impl = get_impl(f"triton-flash-{name}")
        assert impl.variant is variant and impl.description == variant.description
        assert impl.name in impl_names() and impl.name not in impl_names(benchmarked_only=True)
        fwd, bwd = impl.configs(w, CPU)
        assert fwd == default.configs(w, CPU)[0]
        assert bwd == variant.bwd_config(default.configs(w, CPU)[1]) != default.configs(w, CPU)[1]
    cfg = get_impl("triton-flash-atomic-dq").config(w, CPU)
    assert cfg["bwd_atomic_dq"] is True and cfg["bwd_keys_first"] is True
    assert cfg["block_n"] == default.config(w, CPU)["block_n"]


def test_no_environment_variable_changes_the_configuration(monkeypatch):
    """Variants are chosen by name, never by the environment (the former variables are
    ignored): the same workload records the same configuration whatever they say."""
    impl = get_impl("triton-flash")
    w = Workload(4, 32, 32, 4096, 4096, 128, causal=True, dtype="fp16", scenario="train")
    before = impl.config(w, CPU)
    monkeypatch.setenv("ATTNBENCH_TRITON_FWD_VARIANT", "v4")
    monkeypatch.setenv("ATTNBENCH_TRITON_BWD_VARIANT", "atomic-kf")
    assert impl.config(w, CPU) == before


@pytest.mark.parametrize("kv_len", [1, 63, 256, 16384, 65536, 100003])
def test_decode_splits_fill_the_gpu_and_cover_the_cache(kv_len):
    f = configs.choose_fwd_config(8, 32, 8, 1, kv_len, 128, 128, num_sms=132)
    assert f.packed and f.block_m == 16  # the group of 4 rows in one 16-row tile
    splits = configs.splits_for(kv_len, f.block_n, f.num_splits)
    share = configs.keys_per_split(kv_len, f.block_n, f.num_splits)
    assert (splits - 1) * share < kv_len <= splits * share
    if kv_len >= 16384:  # long caches: about one wave of programs (H100-measured choice)
        assert 8 * 8 * splits >= 0.9 * 132
    d = configs.decode_dict(f)
    assert d["kernel"] == "decode" and "block_m" not in d and d["splits"] == f.num_splits


# -- the default configurations, pinned ---------------------------------------------------------
_FLASH_KEYS = ("block_m", "block_n", "num_warps", "num_stages", "tma", "packed", "num_splits",
               "dense")  # fmt: skip
_BWD_KEYS = ("bwd_block_m1", "bwd_block_n1", "bwd_block_m2", "bwd_block_n2", "bwd_num_warps",
             "bwd_num_stages", "bwd_atomic_dq", "bwd_keys_first")  # fmt: skip
_DECODE_KEYS = ("block_n", "splits", "num_warps", "num_stages", "rows")
_TRAIN_BWD_128 = (64, 128, 128, 64, 8, 3, False, True)
_DENSE_128 = (128, 128, 8, 3, True, False, 1, True)
#: what triton-flash / triton-decode record on a 132-SM GPU (H100, H200), as chosen at 829cb97,
#: but for the D>128 backward tiles and the decode's fused merge (both measured on an H200)
PINNED_CONFIGS = [
    ("mha32-d128/prefill/s4096/b4/causal/bf16", (128, 128, 8, 3, True, False, 1, True)),
    ("mha32-d128/train/s8192/b4/full/bf16", (*_DENSE_128, *_TRAIN_BWD_128)),
    ("mha32-d128/prefill/s4096/b4/causal/fp8", (128, 128, 8, 3, True, False, 1, True)),
    ("mha32-d128/train/s4096/b1/causal-alibi/bf16",
     (128, 32, 4, 4, False, False, 1, False, *_TRAIN_BWD_128)),
    ("llama3-8b/prefill/s8192/b1/causal-docs16/bf16", (128, 32, 4, 4, False, False, 1, False)),
    ("llama3-8b/train/s4096/b4/causal/bf16", (*_DENSE_128, *_TRAIN_BWD_128)),
    ("llama3-405b/prefill/s4096/b1/causal/bf16", (128, 128, 8, 3, True, False, 1, True)),
    ("gpt2-small/prefill/s1024/b8/causal/fp16", (128, 64, 8, 4, False, False, 1, False)),
    ("gpt2-small/train/s512/b1/causal/bf16",
     (128, 64, 8, 4, False, False, 1, False, 64, 128, 128, 64, 8, 3, False, True)),
    ("mla-192-128/train/s2048/b1/causal/bf16",
     (128, 32, 8, 3, False, False, 1, False, 64, 32, 64, 32, 8, 2, False, True)),
    ("h8d64/train/s128/b2/full/fp32",
     (64, 32, 4, 2, False, False, 1, False, 32, 64, 64, 32, 4, 1, False, True)),
    (Workload(1, 8, 8, 1024, 1024, 64, causal=True, dtype="fp16"),
     (128, 64, 8, 4, False, False, 2, False)),  # too few programs: the keys split
    (Workload(1, 8, 2, 64, 4096, 128, causal=True, dtype="bf16", window=256),
     (128, 32, 4, 4, False, False, 8, False)),
    ("llama3-8b/decode/kv4096/b8/causal/bf16", (64, 8, 4, 3, 16)),
    ("llama3-8b/decode/kv131072/b1/causal/bf16", (64, 16, 4, 3, 16)),
    ("mqa32-d128/decode/kv8192/b1/causal/bf16", (64, 32, 4, 3, 32)),
    ("gemma-d256-gqa/decode/kv4096/b8/causal/bf16", (32, 8, 4, 2, 16)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("workload", "values"), PINNED_CONFIGS, ids=lambda x: getattr(x, "name", x)
)
def test_default_configs_are_pinned(workload, values, monkeypatch):
    """The configuration each default implementation chooses and records on a 132-SM GPU,
    key by key: a refactor of the chooser must leave every one of these as it is."""
    from types import SimpleNamespace

    from attnbench import get_workload

    w = get_workload(workload) if isinstance(workload, str) else workload
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda d: SimpleNamespace(multi_processor_count=132)
    )
    if w.q_len == 1:
        impl, keys = get_impl("triton-decode"), ("kernel", *_DECODE_KEYS)
        expected = dict(zip(keys, ("decode", *values), strict=True))
    else:
        impl, keys = get_impl("triton-flash"), ("kernel", *_FLASH_KEYS, *_BWD_KEYS)
        expected = dict(zip(keys, ("fwd", *values), strict=False))
    # the decode's split finishing last merges the partials; nothing else fuses by default
    expected["fused_combine"] = w.q_len == 1 and expected["splits"] > 1
    assert impl.config(w, torch.device("cuda")) == expected
