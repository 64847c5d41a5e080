"""The in-house Triton kernels (``triton-fused``) on a CUDA device, against the float64 reference.

Skipped without CUDA or without the ``triton`` package (the CPU CI skips the whole module).
Forward: MHA/GQA/MQA, causal and full, q_len != kv_len, odd lengths, head_dim 32-256 (56, 80
and MLA's 192/128 too), fp16/bf16/fp32, decode (packed GQA, split keys), every mask (window,
packed documents, ALiBi). Backward: dQ/dK/dV against float64 autograd. Then what the kernels
promise beyond numbers: each path (one pass, packed, split) gives the same output, results are
deterministic, strided inputs work, memory stays linear in length, and every workload of the
default ``gpu`` set runs within its dtype's tolerance.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from attnbench import Workload, prepare, workload_set
from attnbench.measure.accuracy import TOLERANCES, compare

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton"),
]

IMPL = "triton-fused"


def W(b, hq, hkv, sq, skv, d, *, causal=True, dtype="bf16", scenario="prefill", dv=None, **mask):
    return Workload(
        b, hq, hkv, sq, skv, d, causal=causal, dtype=dtype, scenario=scenario, v_head_dim=dv,
        **mask,
    )  # fmt: skip


def _cuda():
    return torch.device("cuda")


def _assert_within(case, err, dtype: str, what: str = "output") -> None:
    assert err.within(dtype), f"{case.label} {what}: {err} outside {dtype} {TOLERANCES[dtype]}"


FORWARD = [
    # MHA / GQA / MQA, causal and full
    W(2, 8, 8, 256, 256, 64),
    W(1, 8, 8, 256, 256, 64, causal=False),
    W(1, 8, 2, 1000, 1000, 128),  # odd length: partial blocks
    W(1, 8, 2, 1000, 1000, 128, causal=False),
    W(2, 8, 1, 513, 513, 128, dtype="fp16"),
    W(1, 8, 2, 77, 1000, 128),  # q_len < kv_len: bottom-right causal
    W(1, 8, 2, 300, 4000, 64, causal=False),
    # head dims that are not powers of two, large ones, and V's differing from Q/K's
    W(1, 4, 4, 333, 333, 56, causal=False, dtype="fp16"),
    W(1, 4, 2, 200, 200, 80, dtype="fp16"),
    W(1, 4, 4, 256, 256, 256),
    W(1, 4, 4, 300, 300, 192, dv=128),
    W(1, 4, 4, 100, 100, 32),
    # float32: exact products
    W(2, 4, 2, 129, 129, 32, dtype="fp32"),
    W(1, 4, 4, 128, 128, 128, causal=False, dtype="fp32"),
    W(1, 2, 2, 64, 96, 256, dtype="fp32"),
    # decode and short queries: packed GQA, split keys
    W(4, 32, 8, 1, 4096, 128, scenario="decode"),
    W(2, 32, 1, 1, 5000, 128, dtype="fp16", scenario="decode"),
    W(1, 32, 8, 1, 131072, 128, scenario="decode"),
    W(2, 8, 8, 1, 2048, 64, causal=False, scenario="decode"),
    W(1, 16, 4, 4, 1000, 64, scenario="decode"),
    W(2, 8, 2, 16, 3000, 128),
    W(1, 8, 8, 1, 1000, 256, scenario="decode"),
    W(1, 4, 2, 1, 777, 64, dtype="fp32", scenario="decode"),
    W(1, 2, 2, 200, 20000, 64),  # few programs: one-pass kernel with split keys
]

MASKED = [
    W(1, 8, 2, 1000, 1000, 64, window=100),
    W(1, 8, 2, 1000, 1000, 128, window=1),
    W(1, 8, 2, 64, 3000, 128, window=700),
    W(2, 8, 8, 1, 3000, 128, window=512, scenario="decode"),
    W(1, 8, 2, 1000, 1000, 64, documents=5),
    W(1, 8, 2, 1000, 1000, 64, causal=False, documents=7),
    W(1, 8, 2, 999, 999, 128, documents=3, window=200),
    W(1, 8, 4, 700, 700, 64, alibi=True),
    W(1, 8, 4, 700, 700, 64, causal=False, alibi=True),
    W(1, 12, 12, 300, 300, 64, alibi=True, window=64),  # 12 heads: interleaved slopes
    W(2, 8, 2, 1, 2048, 128, alibi=True, scenario="decode"),
]

TRAIN = [
    W(2, 4, 4, 256, 256, 64, scenario="train"),
    W(1, 8, 2, 300, 300, 128, causal=False, scenario="train"),
    W(1, 8, 2, 300, 300, 128, scenario="train"),
    W(1, 4, 1, 128, 200, 64, dtype="fp16", scenario="train"),
    W(1, 4, 4, 256, 256, 192, dv=128, scenario="train"),
    W(1, 4, 4, 128, 128, 256, scenario="train"),
    W(1, 4, 4, 200, 200, 56, causal=False, dtype="fp16", scenario="train"),
    W(1, 4, 2, 100, 100, 64, dtype="fp32", scenario="train"),
    W(1, 4, 2, 512, 512, 64, window=100, scenario="train"),
    W(1, 4, 2, 512, 512, 128, documents=4, scenario="train"),
    W(1, 4, 2, 512, 512, 64, causal=False, documents=3, scenario="train"),
    W(1, 4, 2, 384, 384, 64, alibi=True, scenario="train"),
]


@pytest.mark.parametrize("workload", FORWARD + MASKED, ids=lambda w: w.name)
def test_forward_matches_reference(workload, seed):
    case = prepare(IMPL, workload, _cuda(), seed=seed)
    out = case.forward()
    assert out.shape == (workload.batch, workload.q_heads, workload.q_len, workload.dv)
    assert out.dtype == workload.torch_dtype
    _assert_within(case, case.forward_error(), workload.dtype)


@pytest.mark.parametrize("workload", TRAIN, ids=lambda w: w.name)
def test_gradients_match_reference(workload, seed):
    case = prepare(IMPL, workload, _cuda(), seed=seed, mode="forward_backward")
    _assert_within(case, case.forward_error(), workload.dtype)
    for name, err in case.gradient_errors().items():
        _assert_within(case, err, workload.dtype, name)


def test_large_magnitude_inputs_stay_finite(seed):
    """Scores of 1e3-scaled inputs reach ~1e4: the online softmax must not overflow."""
    w = W(1, 8, 2, 512, 512, 128, scenario="train")
    case = prepare(IMPL, w, _cuda(), seed=seed, magnitude=30.0, mode="forward_backward")
    err = case.forward_error()
    assert err.nonfinite == 0 and err.rel_norm < 10 * TOLERANCES["bf16"][0], err
    assert all(torch.isfinite(g).all() for g in case.forward_backward())


# -- the paths agree ------------------------------------------------------------------------
def _qkv(b, hq, hkv, sq, skv, d, dtype=torch.float32, seed=0):
    gen = torch.Generator("cuda").manual_seed(seed)
    return [
        torch.randn(b, h, s, d, generator=gen, device="cuda", dtype=dtype)
        for h, s in ((hq, sq), (hkv, skv), (hkv, skv))
    ]


@pytest.mark.parametrize(
    "shape, causal",
    [
        ((2, 16, 4, 3, 1500, 64), True),
        ((1, 8, 1, 1, 2000, 128), False),
        ((1, 4, 2, 40, 900, 64), True),
    ],
)
def test_every_forward_path_gives_the_same_output(shape, causal):
    from attnbench.kernels import triton_attention as ta

    q, k, v = _qkv(*shape)
    mask = ta.mask_args(causal, device="cuda")
    out = {}
    for cfg in (
        ta.FwdConfig(64, 64, 4, 2),
        ta.FwdConfig(16, 32, 4, 2, num_splits=5),
        ta.FwdConfig(64, 64, 4, 2, packed=True),
        ta.FwdConfig(64, 32, 4, 2, packed=True, num_splits=7),
        ta.FwdConfig(64, 64, 4, 2, tma=True),  # tensor descriptors (where the GPU has TMA)
    ):
        o, lse = ta.attention_forward(q, k, v, shape[-1] ** -0.5, mask, cfg, need_lse=True)
        out[cfg] = (o, lse)
    (o0, lse0), *others = out.values()
    for o, lse in others:
        torch.testing.assert_close(o, o0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(lse, lse0, rtol=1e-5, atol=1e-5)


def test_lse_is_the_log_sum_exp():
    from attnbench.kernels import triton_attention as ta

    q, k, v = _qkv(1, 4, 2, 100, 300, 64)
    scale = 64**-0.5
    _, lse = ta.attention_forward(q, k, v, scale, ta.mask_args(True, device="cuda"), need_lse=True)
    scores = torch.einsum("bhqd,bhkd->bhqk", q.double(), k.repeat_interleave(2, 1).double())
    scores = scores * scale
    allowed = torch.ones(100, 300, dtype=torch.bool, device="cuda").tril(200)
    expected = torch.logsumexp(scores.masked_fill(~allowed, float("-inf")), -1)
    torch.testing.assert_close(lse.double() / 1.4426950408889634, expected, rtol=1e-5, atol=1e-5)


def test_strided_inputs(seed):
    """(B, S, H, D) storage seen through a transposed view gives the contiguous result."""
    from attnbench.kernels import triton_attention as ta

    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in _qkv(2, 8, 2, 200, 200, 64))
    assert not q.is_contiguous()
    mask = ta.mask_args(True, device="cuda")
    strided = ta.attention(q, k, v, mask=mask)
    dense = ta.attention(q.contiguous(), k.contiguous(), v.contiguous(), mask=mask)
    torch.testing.assert_close(strided, dense, rtol=0, atol=0)


def test_deterministic_forward_and_backward(seed):
    w = W(1, 8, 2, 512, 512, 128, scenario="train")
    case = prepare(IMPL, w, _cuda(), seed=seed, mode="forward_backward")
    assert case.deterministic()
    first = [g.clone() for g in case.forward_backward()]
    second = case.forward_backward()
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    decode = prepare(IMPL, W(4, 32, 8, 1, 8192, 128, scenario="decode"), _cuda(), seed=seed)
    assert decode.deterministic()


def test_config_is_chosen_in_bind_and_recorded():
    decode = prepare(IMPL, W(1, 32, 8, 1, 65536, 128, scenario="decode"), _cuda())
    fwd = decode.config["forward"]
    assert fwd["packed"] and fwd["num_splits"] > 1, fwd
    train = prepare(IMPL, W(1, 8, 8, 256, 256, 64, scenario="train"), _cuda(), mode="forward")
    assert set(train.config) == {"forward", "backward"}


def test_memory_is_linear_in_length():
    w = W(1, 32, 8, 16384, 16384, 128)
    case = prepare(IMPL, w, _cuda())
    peak = case.memory().gpu_peak_allocated
    inputs_and_output = w.forward_bytes
    assert peak < 2 * inputs_and_output, (peak, inputs_and_output)  # a score matrix: 16 GiB


def test_unbound_forward_matches_bound(seed):
    """``forward`` (configuration and mask tables per call) agrees with the bound callable."""
    from attnbench.impls import get_impl

    w = W(1, 8, 2, 300, 300, 64, documents=3, alibi=True)
    case = prepare(IMPL, w, _cuda(), seed=seed)
    i = case.inputs
    unbound = get_impl(IMPL).forward(i.q, i.k, i.v, causal=w.causal, scale=w.scale, mask=w.mask)
    torch.testing.assert_close(unbound, case.forward(), rtol=0, atol=0)
    plain = prepare(IMPL, W(1, 8, 2, 300, 300, 64), _cuda(), seed=seed)
    j = plain.inputs
    out = get_impl(IMPL).forward(j.q, j.k, j.v, causal=True, scale=plain.workload.scale)
    assert compare(out, plain.forward()).max_abs == 0.0


# -- the default GPU set ----------------------------------------------------------------------
GPU_SET = workload_set("gpu")


@pytest.mark.parametrize("workload", GPU_SET, ids=lambda w: w.name)
def test_gpu_set_runs_within_tolerance(workload, seed):
    mode = "forward_backward" if workload.has_backward else "forward"
    case = prepare(IMPL, workload, _cuda(), seed=seed, mode=mode)
    _assert_within(case, case.forward_error(), workload.dtype)
    if workload.has_backward:
        grads = case.forward_backward()
        assert all(bool(torch.isfinite(g).all()) for g in grads)
