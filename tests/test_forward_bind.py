"""An implementation writes ``forward`` or ``bind``, never both: the base class derives the other.

``forward`` derived from ``bind`` runs what is timed on the tensors' own workload (the call's
scale and mask, not the ones a :class:`Workload` would derive); ``bind`` derived from
``forward`` times ``forward``. Inputs are seeded random, never constants."""

from __future__ import annotations

import pytest
import torch

from attnbench import Implementation, Workload, get_impl
from attnbench.errors import InvalidWorkloadError
from attnbench.impls.base import ALL_MASKS
from attnbench.impls.eager import Eager
from attnbench.impls.math import bound_attention
from attnbench.masks import MaskSpec
from attnbench.workload import CallWorkload, workload_of

from .conftest import CPU


class _BindOnly(Implementation):
    """Writes ``bind`` alone (eager's math, masks built in ``bind``), and counts its binds."""

    name = "test-bind-only"
    family = "test"
    mask_features = ALL_MASKS

    def __init__(self):
        self.bound: list[Workload] = []

    def bind(self, workload, device):
        self.bound.append(workload)
        w = workload
        return bound_attention(w.mask, w.q_heads, w.q_len, w.kv_len, w.scale, device, torch.float32)


class _Doubled(Eager):
    """Writes ``forward`` over a parent that writes ``bind``: bound through its own forward."""

    name = "test-doubled-eager"

    def forward(self, q, k, v, *, causal, scale, mask=None):
        return 2 * super().forward(q, k, v, causal=causal, scale=scale, mask=mask)


def _qkv(hq, hkv, sq, skv, d, seed=0, dv=None, grad=False):
    gen = torch.Generator().manual_seed(seed)
    shapes = ((hq, sq, d), (hkv, skv, d), (hkv, skv, dv or d))
    return [torch.randn(2, *s, generator=gen).requires_grad_(grad) for s in shapes]


def _reference(q, k, v, **kwargs):
    return get_impl("reference").forward(q, k, v, **kwargs).float()


# -- the contract at class creation ---------------------------------------------------------
def test_writing_both_is_refused():
    with pytest.raises(TypeError, match="writes both forward and bind"):

        class _Both(Implementation):
            name = "test-both"

            def forward(self, q, k, v, *, causal, scale, mask=None):
                return q

            def bind(self, workload, device):
                return lambda q, k, v: q


def test_writing_neither_is_refused_for_a_named_class():
    with pytest.raises(TypeError, match="writes neither forward nor bind"):

        class _Neither(Implementation):
            name = "test-neither"

    class _AbstractBase(Implementation):  # no name: an abstract base, refused nowhere
        family = "test"

    class _Concrete(_AbstractBase):
        name = "test-concrete"

        def forward(self, q, k, v, *, causal, scale, mask=None):
            return q

    assert _Concrete._writes == "forward"


def test_both_only_with_a_reason_and_only_then():
    with pytest.raises(TypeError, match="not both written"):

        class _Claims(Implementation, forward_and_bind="a reason"):
            name = "test-claims"

            def bind(self, workload, device):
                return lambda q, k, v: q

    class _Allowed(Implementation, forward_and_bind="a reason"):
        name = "test-allowed"

        def forward(self, q, k, v, *, causal, scale, mask=None):
            return q

        def bind(self, workload, device):
            return lambda q, k, v: k

    assert _Allowed._writes == "both"
    assert get_impl("sdpa-fa3")._writes == "both"  # the one adapter with a reason (sdpa_fa.py)


def test_every_registered_implementation_writes_one():
    from attnbench import impl_names

    writes = {n: type(get_impl(n))._writes for n in impl_names()}
    assert {n for n, x in writes.items() if x == "both"} == {"sdpa-fa3", "sdpa-fa4"}, writes
    assert writes["eager"] == writes["sdpa"] == writes["triton-flash"] == "bind"
    assert writes["chunked"] == writes["reference"] == "forward"


# -- forward derived from bind ----------------------------------------------------------------
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize(
    ("hq", "hkv", "sq", "skv"), [(8, 2, 40, 64), (4, 1, 1, 33), (6, 3, 24, 24)],
    ids=["gqa", "mqa-decode", "gqa-square"],
)  # fmt: skip
def test_derived_forward_is_what_bind_times(causal, hq, hkv, sq, skv):
    impl = _BindOnly()
    q, k, v = _qkv(hq, hkv, sq, skv, 32, seed=hq + sq)
    w = Workload(2, hq, hkv, sq, skv, 32, causal=causal, dtype="fp32")
    out = impl.forward(q, k, v, causal=causal, scale=w.scale)
    assert torch.equal(out, impl.bind(w, CPU)(q, k, v))
    bound = impl.bound[0]
    assert bound.name == w.name and (bound.scale, bound.mask) == (w.scale, w.mask)
    torch.testing.assert_close(out, _reference(q, k, v, causal=causal, scale=w.scale))


def test_derived_forward_carries_the_calls_scale():
    """A scale other than 1/sqrt(head_dim) reaches ``bind`` (a Workload cannot say it)."""
    impl = _BindOnly()
    q, k, v = _qkv(8, 2, 40, 64, 32, seed=1)
    out = impl.forward(q, k, v, causal=True, scale=0.3)
    assert impl.bound[-1].scale == 0.3 and isinstance(impl.bound[-1], CallWorkload)
    torch.testing.assert_close(out, _reference(q, k, v, causal=True, scale=0.3))
    plain = impl.forward(q, k, v, causal=True, scale=32**-0.5)
    assert not torch.allclose(out, plain)


@pytest.mark.parametrize(
    "mask",
    [MaskSpec(True, window=7), MaskSpec(True, doc_lens=(5, 30, 13)), MaskSpec(False, alibi=True),
     MaskSpec(True, doc_lens=(48,)), MaskSpec(True, 9, (20, 28), True)],
    ids=["window", "documents", "alibi", "one-document", "all"],
)  # fmt: skip
def test_derived_forward_carries_the_calls_mask(mask):
    """Document lengths of the caller's choosing, not the ones a Workload seeds."""
    impl = _BindOnly()
    q, k, v = _qkv(8, 2, 48, 48, 16, seed=2)
    out = impl.forward(q, k, v, causal=mask.causal, scale=0.2, mask=mask)
    assert impl.bound[-1].mask == mask and impl.bound[-1].doc_lens == mask.doc_lens
    expected = _reference(q, k, v, causal=mask.causal, scale=0.2, mask=mask)
    torch.testing.assert_close(out, expected)


def test_derived_forward_is_differentiable_and_says_train():
    impl = _BindOnly()
    q, k, v = _qkv(4, 2, 16, 24, 16, seed=3, dv=8, grad=True)
    out = impl.forward(q, k, v, causal=True, scale=0.25)
    assert impl.bound[-1].scenario == "train" and impl.bound[-1].dv == 8
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = get_impl("reference").forward(*leaves, causal=True, scale=0.25)
    expected = torch.autograd.grad(ref.sum(), leaves)
    for a, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(a, e.float())
    with torch.no_grad():
        impl.forward(q, k, v, causal=True, scale=0.25)
    assert impl.bound[-1].scenario == "prefill"


def test_derived_forward_keeps_the_contract():
    impl = _BindOnly()
    q, k, v = _qkv(8, 3, 40, 64, 32)
    with pytest.raises(InvalidWorkloadError, match="must divide"):
        impl.forward(q, k, v, causal=True, scale=0.2)
    assert impl.bound == []


def test_derived_forward_keeps_forward_cache_bound_callables(monkeypatch):
    impl = _BindOnly()
    monkeypatch.setattr(_BindOnly, "forward_cache", 2)
    a, b, c = (_qkv(4, 2, s, s, 16, seed=s) for s in (8, 16, 24))
    impl.forward(*a, causal=True, scale=0.25)
    impl.forward(*a, causal=True, scale=0.25)
    assert len(impl.bound) == 1  # bound once for one workload and device
    impl.forward(*a, causal=True, scale=0.3)  # another scale: another workload
    impl.forward(*b, causal=False, scale=0.25)
    impl.forward(*c, causal=True, scale=0.25)
    assert len(impl.bound) == 4 and len(impl._forward_cache) == 2
    impl.forward(*a, causal=True, scale=0.25)  # evicted (least recently used): bound again
    assert len(impl.bound) == 5
    fresh = _BindOnly()  # no forward_cache (the default): bound on every call
    monkeypatch.setattr(_BindOnly, "forward_cache", 0)
    fresh.forward(*a, causal=True, scale=0.25)
    fresh.forward(*a, causal=True, scale=0.25)
    assert len(fresh.bound) == 2


def test_workload_of_the_tensors():
    q, k, v = _qkv(8, 2, 40, 64, 32, dv=16)
    w = workload_of(q.bfloat16(), k.bfloat16(), v.bfloat16(), causal=True, scale=0.5)
    assert (w.batch, w.q_heads, w.kv_heads, w.q_len, w.kv_len, w.head_dim, w.dv) == (
        2, 8, 2, 40, 64, 32, 16)  # fmt: skip
    assert (w.dtype, w.scenario, w.scale, w.mask) == ("bf16", "prefill", 0.5, MaskSpec(True))
    with pytest.raises(InvalidWorkloadError, match="no short name"):
        workload_of(q.half().to(torch.float8_e5m2), k, v, causal=True, scale=0.5)


# -- bind derived from forward, over a parent that writes bind ----------------------------------
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
def test_a_subclass_writing_forward_is_bound_through_it(causal):
    """What the subclass changes is what is timed; its ``super().forward`` is eager's."""
    w = Workload(2, 8, 2, 40, 64, 32, causal=causal, dtype="fp32", alibi=True)
    q, k, v = _qkv(8, 2, 40, 64, 32, seed=4)
    eager = get_impl("eager").bind(w, CPU)(q, k, v)
    assert torch.equal(_Doubled().bind(w, CPU)(q, k, v), 2 * eager)
    direct = _Doubled().forward(q, k, v, causal=causal, scale=w.scale, mask=w.mask)
    torch.testing.assert_close(direct, 2 * eager)


@pytest.mark.parametrize("impl", ["eager", "sdpa", "sdpa-math", "sdpa-flash"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
def test_cpu_adapters_forward_matches_bind(impl, causal):
    w = Workload(2, 8, 2, 24, 40, 32, causal=causal, dtype="fp32")
    q, k, v = _qkv(8, 2, 24, 40, 32, seed=5)
    out = get_impl(impl).forward(q, k, v, causal=causal, scale=w.scale)
    torch.testing.assert_close(out, get_impl(impl).bind(w, CPU)(q, k, v), rtol=0, atol=0)
