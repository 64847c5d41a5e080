"""Implementations that compile on their first call (flex, eager-compiled, sdpa-compiled...) on
the CPU: a few workloads each, since every new shape costs seconds of compilation here. Their
full coverage runs on a GPU (tests/gpu). Also flex's mask_mod/score_mod against MaskSpec,
which needs no compilation."""

from __future__ import annotations

import pytest
import torch

import attnbench
from attnbench import Workload, get_impl, prepare
from attnbench.impls.flex import mask_mod_for, score_mod_for
from attnbench.masks import MaskSpec
from attnbench.measure.accuracy import TOLERANCES

from .conftest import CPU

COMPILING = [
    n
    for n in attnbench.impl_names(benchmarked_only=True)
    if getattr(get_impl(n), "compiles", False)
]

WORKLOADS = [
    Workload(1, 8, 2, 40, 130, 32, dtype="fp32"),  # GQA, causal bottom-right, ragged lengths
    Workload(2, 8, 1, 1, 700, 32, dtype="fp32", scenario="decode"),  # MQA decode
    Workload(1, 4, 4, 96, 96, 32, dtype="fp32", window=20, documents=3, alibi=True),
]


def test_the_compiling_implementations_are_found():
    assert {"flex", "eager-compiled", "sdpa-compiled"} <= set(COMPILING)


@pytest.mark.parametrize("workload", WORKLOADS, ids=[w.name for w in WORKLOADS])
@pytest.mark.parametrize("impl", COMPILING)
def test_forward_matches_reference(impl, workload, seed):
    reasons = get_impl(impl).unsupported_reasons(workload, CPU)
    if reasons:
        pytest.skip(f"{impl}: {'; '.join(reasons)}")
    case = prepare(impl, workload, CPU, seed=seed)
    assert case.first_call_seconds is not None and case.first_call_seconds > 0
    err = case.forward_error()
    assert err.within("fp32"), f"{case.label}: {err} outside {TOLERANCES['fp32']}"


@pytest.mark.parametrize("impl", COMPILING)
def test_gradients_match_reference(impl, seed):
    workload = Workload(1, 4, 2, 48, 48, 32, dtype="fp32", scenario="train")
    reasons = get_impl(impl).unsupported_reasons(workload, CPU)
    if reasons:
        assert impl != "eager-compiled", reasons
        pytest.skip(f"{impl}: {'; '.join(reasons)}")
    case = prepare(impl, workload, CPU, seed=seed, mode="forward_backward")
    bad = {n: e for n, e in case.gradient_errors().items() if not e.within("fp32")}
    assert not bad, f"{case.label}: {bad}"


@pytest.mark.parametrize("impl", COMPILING)
def test_direct_forward_compiles_once_per_shape(impl, seed):
    """``forward``, derived from ``bind``, keeps what it bound (``forward_cache``): a second
    call on the same shapes compiles nothing; the answer is the reference's."""
    from attnbench.inputs import make_inputs

    w = WORKLOADS[0]  # compiled by test_forward_matches_reference already
    i = make_inputs(w, CPU, seed=seed)
    impl_ = get_impl(impl)
    impl_.__dict__.pop("_forward_cache", None)
    first = impl_.forward(i.q, i.k, i.v, causal=w.causal, scale=w.scale)
    second = impl_.forward(i.q, i.k, i.v, causal=w.causal, scale=w.scale)
    assert len(impl_._forward_cache) == 1 and torch.equal(first, second)
    ref = get_impl("reference").forward(i.q, i.k, i.v, causal=w.causal, scale=w.scale)
    torch.testing.assert_close(first, ref.float(), atol=1e-5, rtol=1e-5)


def test_flex_declares_no_backward_on_the_cpu():
    reasons = get_impl("flex").unsupported_reasons(
        Workload(1, 2, 2, 8, 8, 32, dtype="fp32", scenario="train"), CPU
    )
    assert any("backward" in r for r in reasons), reasons


SPECS = [
    (MaskSpec(causal=True), 33, 70),
    (MaskSpec(causal=False), 33, 70),
    (MaskSpec(causal=True, window=7), 50, 50),
    (MaskSpec(causal=True, window=16), 20, 90),
    (MaskSpec(causal=True, doc_lens=(10, 25, 5)), 40, 40),
    (MaskSpec(causal=False, doc_lens=(3, 30, 7)), 40, 40),
    (MaskSpec(causal=True, window=5, doc_lens=(12, 28)), 40, 40),
    (MaskSpec(causal=True), 1, 64),
]


@pytest.mark.parametrize(("spec", "q_len", "kv_len"), SPECS, ids=[str(s) for s in SPECS])
def test_flex_mask_mod_is_the_mask_spec(spec, q_len, kv_len):
    from torch.nn.attention.flex_attention import create_mask

    mod = mask_mod_for(spec, q_len, kv_len, CPU)
    expected = spec.allowed(q_len, kv_len)
    if mod is None:
        assert bool(expected.all())
        return
    dense = create_mask(mod, 1, 1, q_len, kv_len, device="cpu")[0, 0]
    assert torch.equal(dense, expected)


def test_flex_alibi_score_mod_is_the_mask_spec_bias():
    heads, q_len, kv_len = 6, 9, 23  # 6 heads: the slopes' interleaved case
    spec = MaskSpec(causal=True, alibi=True)
    mod = score_mod_for(spec, heads, q_len, kv_len, CPU)
    h = torch.arange(heads).view(-1, 1, 1)
    q_idx = torch.arange(q_len).view(1, -1, 1)
    kv_idx = torch.arange(kv_len).view(1, 1, -1)
    score = torch.randn(heads, q_len, kv_len)
    got = mod(score, torch.tensor(0), h, q_idx, kv_idx)
    assert torch.allclose(got, score + spec.bias(heads, q_len, kv_len))
    assert score_mod_for(MaskSpec(causal=True), heads, q_len, kv_len, CPU) is None
