"""Masks beyond causal: window, packed documents, ALiBi; exact pair counts; support as data."""

import pytest
import torch

from attnbench import prepare
from attnbench.errors import InvalidWorkloadError, UnsupportedError
from attnbench.impls import get_impl
from attnbench.masks import MaskSpec, alibi_slopes
from attnbench.measure.peaks import ImplausibleRateError, check_plausible, peak_for
from attnbench.workload import Workload

MASKED = [
    dict(causal=True, window=7),
    dict(causal=True, documents=3),
    dict(causal=False, documents=4),
    dict(causal=False, alibi=True),
    dict(causal=True, window=5, documents=3, alibi=True),
]


@pytest.mark.parametrize("kw", MASKED)
@pytest.mark.parametrize("lengths", [(29, 29), (6, 29), (1, 29)])
def test_pairs_match_the_mask(kw, lengths):
    q_len, kv_len = lengths
    if kw.get("documents", 1) > 1 and q_len != kv_len:
        with pytest.raises(InvalidWorkloadError, match="q_len == kv_len"):
            Workload(1, 2, 1, q_len, kv_len, 8, **kw)
        return
    w = Workload(1, 2, 1, q_len, kv_len, 8, **kw)
    allowed = w.mask.allowed(q_len, kv_len)
    assert int(allowed.sum()) == w.attended_pairs
    assert allowed.any(dim=1).all(), "every query sees at least one key"


def test_names_and_documents_are_stable():
    w = Workload(2, 4, 2, 64, 64, 16, causal=True, window=16, documents=4, alibi=True)
    assert w.name.endswith("/causal-win16-docs4-alibi/bf16")
    assert sum(w.doc_lens) == 64 and len(w.doc_lens) == 4
    assert w.doc_lens == Workload(2, 4, 2, 64, 64, 16, documents=4).doc_lens
    assert len(set(w.doc_lens)) > 1, "varied lengths"


def test_window_needs_causal():
    with pytest.raises(InvalidWorkloadError, match="window"):
        Workload(1, 2, 2, 8, 8, 8, causal=False, window=4)


def test_alibi_slopes_follow_the_paper():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    assert alibi_slopes(12).shape == (12,)
    bias = MaskSpec(alibi=True).bias(8, 3, 5)
    assert bias.shape == (8, 3, 5) and bias[0, -1, -1] == 0 and bias[0, 0, 0] < 0


@pytest.mark.parametrize("kw", MASKED)
@pytest.mark.parametrize("impl", ["eager", "sdpa", "sdpa-math"])
def test_masked_implementations_match_reference(kw, impl):
    w = Workload(2, 4, 2, 48, 48, 16, dtype="fp32", **kw)
    err = prepare(impl, w, "cpu").forward_error()
    assert err.max_abs < 1e-4, err


def test_masked_gradients_match_reference():
    w = Workload(1, 4, 2, 32, 32, 16, dtype="fp32", scenario="train", window=8, documents=3)
    for name, err in prepare("eager", w, "cpu", mode="forward_backward").gradient_errors().items():
        assert err.max_abs < 1e-4, (name, err)


def test_masks_must_change_the_output():
    base = Workload(1, 2, 2, 32, 32, 16, dtype="fp32")
    outs = [prepare("eager", base.with_(**kw), "cpu").forward() for kw in MASKED]
    plain = prepare("eager", base, "cpu").forward()
    for out in outs:
        assert not torch.allclose(out, plain, atol=1e-3)


def test_unsupported_mask_is_a_reason():
    w = Workload(1, 2, 2, 32, 32, 16, dtype="fp32", window=8)
    reasons = get_impl("chunked").unsupported_reasons(w, torch.device("cpu"))
    assert reasons == ["no support for sliding-window masks"]
    with pytest.raises(UnsupportedError, match="sliding-window"):
        prepare("chunked", w, "cpu")


def test_peak_table_and_plausibility():
    assert peak_for("NVIDIA H100 80GB HBM3", "bf16").tflops == pytest.approx(989.4)
    assert peak_for("NVIDIA H100 PCIe", "bf16").tflops == 756.0
    assert peak_for("NVIDIA A100-SXM4-80GB", "fp16").tbps == pytest.approx(2.039)
    assert peak_for("Intel Xeon", "bf16") is None
    assert check_plausible("NVIDIA H200", "bf16", 700.0, 4000.0) is None
    assert "not checked" in check_plausible("AMD EPYC", "fp32", 1e9, None)
    with pytest.raises(ImplausibleRateError, match="exceeds"):
        check_plausible("NVIDIA H100 80GB HBM3", "bf16", 1200.0, None)
    with pytest.raises(ImplausibleRateError, match="bandwidth"):
        check_plausible("NVIDIA B200", "bf16", None, 9000.0)


def test_sdpa_builds_its_mask_once_per_case(monkeypatch):
    """The materialized attn_mask is made in bind(), outside the timed call."""
    calls = []
    real = MaskSpec.additive
    monkeypatch.setattr(MaskSpec, "additive", lambda *a: calls.append(1) or real(*a))
    case = prepare("sdpa", Workload(1, 4, 2, 32, 32, 16, dtype="fp32", window=8), "cpu")
    for _ in range(3):
        case.forward()
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(causal="yes"), "causal"),
        (dict(causal=True, window=0), "window"),
        (dict(causal=True, window=2.5), "window"),
        (dict(causal=False, window=4), "window needs causal"),
        (dict(doc_lens=(3, 0, 5)), "doc_lens"),
        (dict(doc_lens=[3, 5]), "doc_lens"),
        (dict(alibi=1), "alibi"),
    ],
)
def test_mask_spec_fields_are_checked(kwargs, words):
    """A window without causal meant different keys to eager (both sides) and to flash-attn
    (left only): refused, as Workload refuses it."""
    with pytest.raises(InvalidWorkloadError, match=words):
        MaskSpec(**kwargs)


def test_documents_must_tile_the_sequence_in_a_direct_call():
    q = k = v = torch.randn(1, 2, 8, 16)
    for bad in ((3, 4), (3, 6)):  # sums 7 and 9, not kv_len 8
        with pytest.raises(InvalidWorkloadError, match="document lengths"):
            get_impl("eager").forward(
                q, k, v, causal=True, scale=0.25, mask=MaskSpec(True, None, bad)
            )
    with pytest.raises(InvalidWorkloadError, match="q_len == kv_len"):
        get_impl("eager").forward(
            q[:, :, :4], k, v, causal=True, scale=0.25, mask=MaskSpec(True, None, (3, 5))
        )
