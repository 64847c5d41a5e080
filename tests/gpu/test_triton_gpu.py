"""``triton-flash`` and ``triton-decode`` on a CUDA device, bf16/fp16, at realistic sizes.

Fresh random inputs each test (seeded by the test's id); the reference is the math in float32
on the GPU for these sizes (TF32 off), itself within 1e-6 of float64. Failures print the max
abs and relative errors of each tensor, and the same figures for SDPA's FLASH_ATTENTION backend
(FlashAttention-2) on the same inputs, so a miss can be read as "worse than FA2 by x". Skipped
without CUDA or triton. Run: ``pytest tests/gpu -q``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnbench.measure.accuracy import TOLERANCES, ErrorStats, compare

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton"),
]

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@pytest.fixture(scope="module")
def kernels():
    from attnbench.kernels import triton_decode, triton_flash

    if triton_flash.INTERPRETED:
        pytest.skip("TRITON_INTERPRET=1 is set: the kernels run on the CPU interpreter")
    torch.backends.cuda.matmul.allow_tf32 = False
    return triton_flash, triton_decode


def _inputs(seed, b, hq, hkv, sq, skv, d, dtype, grad=False):
    gen = torch.Generator("cuda").manual_seed(seed)

    def randn(*shape):
        t = torch.randn(*shape, generator=gen, device="cuda", dtype=torch.float32)
        return t.to(dtype).requires_grad_(grad)

    return randn(b, hq, sq, d), randn(b, hkv, skv, d), randn(b, hkv, skv, d)


def _reference(q, k, v, causal, scale):
    """(out, lse) in float32 on the GPU: GQA by repeating heads, causal bottom-right."""
    group = q.shape[1] // k.shape[1]
    q, k, v = q.float(), k.float(), v.float()
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = q @ k.transpose(-1, -2) * scale
    if causal:
        sq, skv = q.shape[2], k.shape[2]
        rows = torch.arange(sq, device=q.device)[:, None] + (skv - sq)
        scores = scores.masked_fill(torch.arange(skv, device=q.device) > rows, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    return torch.softmax(scores, dim=-1) @ v, lse


def _fa2(q, k, v, causal, scale):
    """SDPA's FLASH_ATTENTION on the same inputs (None where it cannot run them)."""
    if causal and q.shape[2] != k.shape[2]:
        return None  # its is_causal is top-left aligned
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(
                q, k, v, is_causal=causal, scale=scale, enable_gqa=q.shape[1] != k.shape[1]
            )
    except RuntimeError:
        return None


def _fmt(err: ErrorStats) -> str:
    return f"max_abs {err.max_abs:.3g}, rel {err.rel_norm:.3g}, nonfinite {err.nonfinite}"


def _check(name: str, actual, expected, dtype: str, peer=None) -> None:
    err = compare(actual, expected)
    rel, abs_ = TOLERANCES[dtype]
    detail = f"{name}: {_fmt(err)} (tolerance rel {rel}, abs {abs_})"
    if peer is not None:
        detail += f"; FA2 on the same inputs: {_fmt(compare(peer, expected))}"
    print(detail)
    assert err.within(dtype), detail


# (batch, q_heads, kv_heads, q_len, kv_len, head_dim, causal)
FWD = [
    (2, 8, 8, 1024, 1024, 64, True),
    (2, 8, 8, 1024, 1024, 128, False),
    (2, 8, 2, 1024, 1024, 128, True),  # GQA
    (2, 8, 8, 1024, 1024, 256, True),
    (2, 8, 2, 1024, 1024, 256, False),
    (2, 8, 1, 512, 1024, 128, True),  # MQA, q_len < kv_len: diagonal offset 512
    (2, 8, 2, 1000, 1531, 64, True),  # ragged tiles
    (2, 8, 2, 1531, 1000, 128, False),  # q_len > kv_len
]


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("shape", FWD, ids=lambda s: "-".join(map(str, s)))
def test_forward_and_lse(kernels, shape, dtype, seed):
    flash, _ = kernels
    b, hq, hkv, sq, skv, d, causal = shape
    q, k, v = _inputs(seed, b, hq, hkv, sq, skv, d, DTYPES[dtype])
    scale = 1 / math.sqrt(d)
    out, lse = flash.attention_with_lse(q, k, v, causal=causal, scale=scale)
    assert out.dtype == q.dtype and out.shape == (b, hq, sq, d)
    ref, ref_lse = _reference(q, k, v, causal, scale)
    _check("out", out, ref, dtype, peer=_fa2(q, k, v, causal, scale))
    _check("lse", lse, ref_lse, "fp32")


@pytest.mark.parametrize("shape", FWD, ids=lambda s: "-".join(map(str, s)))
def test_forward_through_tensor_descriptors(kernels, shape, seed):
    """The TMA load path (FwdConfig.tma) gives the same answers as the reference."""
    from attnbench.kernels.configs import fwd_config

    flash, _ = kernels
    b, hq, hkv, sq, skv, d, causal = shape
    q, k, v = _inputs(seed, b, hq, hkv, sq, skv, d, torch.bfloat16)
    cfg = dataclasses.replace(fwd_config(d, "cuda"), tma=True)
    assert flash._descriptors_apply(cfg, q, k, v)
    out, lse = flash.attention_with_lse(q, k, v, causal=causal, scale=d**-0.5, fwd_cfg=cfg)
    ref, ref_lse = _reference(q, k, v, causal, d**-0.5)
    _check("out (descriptors)", out, ref, "bf16")
    _check("lse (descriptors)", lse, ref_lse, "fp32")


BWD = [
    (2, 8, 8, 1024, 1024, 64, True),
    (2, 8, 2, 1024, 1024, 128, True),  # GQA: dK/dV summed over 4 query heads
    (2, 8, 8, 1024, 1024, 128, False),
    (2, 8, 2, 1024, 1024, 256, True),
    (2, 8, 1, 512, 1024, 128, True),  # MQA, q_len < kv_len
    (2, 8, 2, 1000, 1531, 64, False),  # ragged tiles
]


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("shape", BWD, ids=lambda s: "-".join(map(str, s)))
def test_backward(kernels, shape, dtype, seed):
    flash, _ = kernels
    b, hq, hkv, sq, skv, d, causal = shape
    leaves = _inputs(seed, b, hq, hkv, sq, skv, d, DTYPES[dtype], grad=True)
    scale = 1 / math.sqrt(d)
    gen = torch.Generator("cuda").manual_seed(seed + 1)
    grad_out = torch.randn(b, hq, sq, d, generator=gen, device="cuda").to(DTYPES[dtype])
    out = flash.attention(*leaves, causal=causal, scale=scale)
    actual = torch.autograd.grad(out, leaves, grad_out)
    ref_leaves = [t.detach().float().requires_grad_() for t in leaves]
    ref, _ = _reference(*ref_leaves, causal, scale)
    expected = torch.autograd.grad(ref, ref_leaves, grad_out.float())
    peer = None
    fa2 = _fa2(*leaves, causal, scale)
    if fa2 is not None:
        try:
            peer = torch.autograd.grad(fa2, leaves, grad_out)
        except RuntimeError:
            peer = None
    failures = []
    for i, name in enumerate(("dq", "dk", "dv")):
        assert actual[i].dtype == leaves[i].dtype and actual[i].shape == leaves[i].shape
        try:
            _check(name, actual[i], expected[i], dtype, peer=None if peer is None else peer[i])
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


# (batch, q_heads, kv_heads, kv_len, head_dim)
DECODE = [
    (8, 32, 8, 16384, 128),  # the workload (GQA 4)
    (8, 32, 8, 4099, 128),  # ragged last split
    (4, 32, 32, 2048, 128),  # MHA: a group of one
    (2, 16, 1, 8192, 64),  # MQA: a group of 16
    (2, 8, 2, 3000, 256),
]


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("shape", DECODE, ids=lambda s: "-".join(map(str, s)))
def test_decode(kernels, shape, dtype, seed):
    _, decode = kernels
    b, hq, hkv, skv, d = shape
    q, k, v = _inputs(seed, b, hq, hkv, 1, skv, d, DTYPES[dtype])
    scale = 1 / math.sqrt(d)
    out = decode.decode(q, k, v, scale=scale)
    assert out.dtype == q.dtype and out.shape == (b, hq, 1, d)
    ref, _ = _reference(q, k, v, False, scale)
    _check("decode", out, ref, dtype)


@pytest.mark.parametrize("splits", [1, 3, 16, 64])
def test_decode_any_split_count_gives_the_same_answer(kernels, splits, seed):
    from attnbench.kernels.configs import DecodeConfig

    _, decode = kernels
    q, k, v = _inputs(seed, 2, 32, 8, 1, 10000, 128, torch.bfloat16)
    out = decode.decode(q, k, v, scale=0.1, cfg=DecodeConfig(64, splits))
    ref, _ = _reference(q, k, v, False, 0.1)
    _check(f"decode, {splits} splits", out, ref, "bf16")


def test_impls_run_through_attnbench(kernels, seed):
    """prepare -> forward_error / gradient_errors, with the config recorded."""
    from attnbench import Workload, prepare

    w = Workload(2, 8, 2, 1024, 1024, 128, causal=True, dtype="bf16", scenario="train")
    case = prepare("triton-flash", w, "cuda", seed=seed, mode="forward_backward")
    assert case.config and case.config["kernel"] == "fwd" and "bwd_block_n1" in case.config
    _ok = case.forward_error()
    assert _ok.within("bf16"), _fmt(_ok)
    bad = {n: _fmt(e) for n, e in case.gradient_errors().items() if not e.within("bf16")}
    assert not bad, bad
    d = Workload(8, 32, 8, 1, 16384, 128, dtype="bf16", scenario="decode")
    case = prepare("triton-decode", d, "cuda", seed=seed)
    assert case.config and case.config["splits"] >= 1
    err = case.forward_error()
    assert err.within("bf16"), _fmt(err)


def test_forward_memory_is_inputs_plus_outputs(kernels):
    """Peak allocation of a forward: inputs + output + LSE, nothing quadratic, within 10%."""
    flash, _ = kernels
    q, k, v = _inputs(0, 2, 16, 16, 8192, 8192, 128, torch.bfloat16)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    with torch.no_grad():
        out = flash.attention(q, k, v, causal=True)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - before
    expected = out.numel() * out.element_size() + 4 * q.shape[0] * q.shape[1] * q.shape[2]
    assert extra <= 1.1 * expected, f"forward allocated {extra} bytes, expected ~{expected}"
