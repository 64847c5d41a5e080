"""Every registered implementation against the float64 reference on a CUDA device.

Parametrized over the registry (adapters that other modules register are covered as they
appear) x a compact list of small GPU workloads: fp16/bf16, causal/full, MHA/GQA/MQA, decode,
sliding window, packed documents, ALiBi, MLA's 192/128 head dims, head_dim 64/128/256.

A pair the implementation *declares* unsupported (``unsupported_reasons``) is a skip with that
reason. A pair it declares supported must run: a crash in ``prepare()`` is a failure, never a
skip. Inputs are fresh standard-normal tensors, seeded per test from its id (the ``seed``
fixture). Run with ``python -m pytest tests/gpu -q -rs``.
"""

from __future__ import annotations

import pytest
import torch

from attnbench import UnsupportedError, Workload, get_impl, impl_names, prepare
from attnbench.dtypes import to_torch
from attnbench.measure.accuracy import TOLERANCES, ErrorStats, compare

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")
IMPLS = [n for n in impl_names() if n != "reference"]  # the judge is not judged
#: gradients are sums over many rows, larger than unit and rounded to the dtype: twice the
#: forward tolerance
GRAD_FACTOR = 2.0


def W(b, hq, hkv, sq, skv, d, *, causal=True, dtype="bf16", scenario="prefill", **mask):
    return Workload(b, hq, hkv, sq, skv, d, causal=causal, dtype=dtype, scenario=scenario, **mask)


FORWARD = [
    W(2, 8, 8, 256, 256, 64),  # MHA, causal, bf16, head_dim 64
    W(2, 8, 8, 256, 256, 128, causal=False, dtype="fp16"),
    W(1, 8, 2, 384, 384, 128),  # GQA 4:1
    W(1, 8, 1, 200, 333, 64, causal=False, dtype="fp16"),  # MQA, lengths off every block size
    W(1, 8, 2, 128, 512, 128),  # q_len < kv_len: causal aligned bottom-right
    W(1, 4, 4, 256, 256, 256),  # head_dim 256
    W(4, 32, 8, 1, 4096, 128, scenario="decode"),  # decode, GQA 32/8
    W(8, 16, 1, 1, 3000, 64, dtype="fp16", scenario="decode"),  # decode, MQA, odd cache length
    W(1, 8, 2, 512, 512, 128, window=128),  # sliding window
    W(2, 8, 8, 512, 512, 64, documents=4),  # packed documents, causal
    W(1, 4, 4, 300, 300, 128, causal=False, dtype="fp16", documents=3),  # documents, full
    W(1, 8, 8, 256, 256, 128, alibi=True),  # ALiBi
    W(1, 16, 16, 256, 256, 192, v_head_dim=128),  # MLA: Q/K 192, V 128
    W(1, 8, 2, 384, 384, 128, dtype="fp8"),  # fp8 e4m3 in, bf16 out: whoever takes it
    W(4, 32, 8, 1, 4096, 128, dtype="fp8", scenario="decode"),  # an fp8 KV cache
]

TRAIN = [
    W(2, 8, 8, 256, 256, 64, scenario="train"),
    W(1, 8, 2, 200, 200, 128, causal=False, dtype="fp16", scenario="train"),  # GQA, odd length
    W(1, 4, 4, 128, 128, 256, scenario="train"),  # head_dim 256
    W(1, 8, 2, 256, 256, 128, scenario="train", window=64),
    W(1, 8, 8, 256, 256, 64, dtype="fp16", scenario="train", documents=3),
    W(1, 4, 4, 256, 256, 64, scenario="train", alibi=True),
    W(1, 8, 8, 256, 256, 192, scenario="train", v_head_dim=128),  # MLA
]


def _ready(impl_name: str, workload: Workload, seed: int, mode: str = "forward"):
    """A prepared case, a skip if the implementation declares the pair unsupported, or a
    failure if it declares support and then cannot run it."""
    impl = get_impl(impl_name)
    reasons = impl.unsupported_reasons(workload, CUDA)
    if reasons:
        pytest.skip(f"{impl_name} declares {workload.name} unsupported: {'; '.join(reasons)}")
    try:
        return prepare(impl, workload, CUDA, seed=seed, mode=mode)
    except UnsupportedError as exc:
        pytest.fail(
            f"{impl_name} declares support for {workload.name} on CUDA, but prepare() failed: "
            f"{exc}\n(declare the limit in its unsupported_reasons, or fix the adapter)",
            pytrace=False,
        )


def _explain(label: str, what: str, err: ErrorStats, dtype: str, factor: float = 1.0) -> str:
    rel, abs_ = TOLERANCES[dtype]
    return (
        f"{label}: {what} rel_norm {err.rel_norm:.3g} (tolerance {rel * factor:.3g}), "
        f"max_abs {err.max_abs:.3g} (tolerance {abs_ * factor:.3g}), "
        f"{err.nonfinite} NaN/Inf"
    )


@pytest.mark.parametrize("workload", FORWARD, ids=[w.name for w in FORWARD])
@pytest.mark.parametrize("impl", IMPLS)
def test_forward_matches_reference(impl, workload, seed):
    case = _ready(impl, workload, seed)
    out = case.forward()
    expected = (workload.batch, workload.q_heads, workload.q_len, workload.dv)
    assert tuple(out.shape) == expected, f"{case.label}: shape {tuple(out.shape)} != {expected}"
    assert out.dtype == to_torch(workload.out_dtype), f"{case.label}: output dtype {out.dtype}"
    assert out.device.type == "cuda", f"{case.label}: output on {out.device}"
    err = case.forward_error()
    assert err.within(workload.dtype), _explain(case.label, "output", err, workload.dtype)


@pytest.mark.parametrize("workload", TRAIN, ids=[w.name for w in TRAIN])
@pytest.mark.parametrize("impl", IMPLS)
def test_gradients_match_reference(impl, workload, seed):
    case = _ready(impl, workload, seed, mode="forward_backward")
    errors = case.gradient_errors()
    bad = [
        _explain(case.label, name, err, workload.dtype, GRAD_FACTOR)
        for name, err in errors.items()
        if not err.within(workload.dtype, GRAD_FACTOR)
    ]
    assert not bad, "\n".join(bad)
    err = case.forward_error()
    assert err.within(workload.dtype), _explain(case.label, "output", err, workload.dtype)


@pytest.mark.parametrize("impl", IMPLS)
def test_two_calls_agree(impl, seed):
    """The bound callable is reusable: a second call (what timing repeats) gives the same
    output to within the dtype's tolerance (bitwise need not hold: split-KV kernels)."""
    workload = W(2, 8, 2, 1, 2048, 128, scenario="decode")
    case = _ready(impl, workload, seed)
    first = case.forward().float()
    second = case.forward().float()
    rel = float(torch.linalg.vector_norm(first - second) / torch.linalg.vector_norm(first))
    assert rel <= TOLERANCES["bf16"][0], f"{case.label}: two calls differ by rel_norm {rel:.3g}"


DIRECT = [
    W(1, 8, 2, 384, 384, 128),  # GQA, causal
    W(1, 8, 1, 200, 333, 64, causal=False, dtype="fp16"),  # MQA, full, odd lengths
    W(2, 8, 8, 512, 512, 64, documents=4),  # packed documents
]


@pytest.mark.parametrize("workload", DIRECT, ids=[w.name for w in DIRECT])
@pytest.mark.parametrize("impl", IMPLS)
def test_direct_forward_is_the_bound_call(impl, workload, seed):
    """A direct ``forward`` (derived from ``bind`` where the adapter writes ``bind``) gives
    what the timed callable gives, and honours a scale other than the workload's."""
    case = _ready(impl, workload, seed)
    q, k, v = case.inputs.leaves()
    mask = workload.mask if workload.mask.features else None
    direct = get_impl(impl).forward(q, k, v, causal=workload.causal, scale=workload.scale,
                                    mask=mask)  # fmt: skip
    err = compare(direct, case.forward())
    assert err.within(workload.dtype), _explain(case.label, "forward vs bind", err, workload.dtype)
    other = get_impl(impl).forward(
        q, k, v, causal=workload.causal, scale=2 * workload.scale, mask=mask
    )
    ref = get_impl("reference").forward(
        q, k, v, causal=workload.causal, scale=2 * workload.scale, mask=mask
    )
    err = compare(other, ref)
    assert err.within(workload.dtype), _explain(case.label, "twice the scale", err, workload.dtype)


def test_every_declared_reason_is_readable():
    """Each reason an implementation gives for a GPU workload is a non-empty sentence."""
    for name in IMPLS:
        for workload in FORWARD + TRAIN:
            for reason in get_impl(name).unsupported_reasons(workload, CUDA):
                assert isinstance(reason, str) and len(reason.strip()) > 5, (name, reason)
