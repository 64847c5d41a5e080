"""Bad input gives an error that names the problem."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import attnbench
from attnbench import (
    AttnbenchError,
    InvalidWorkloadError,
    UnknownNameError,
    UnsupportedError,
    Workload,
    prepare,
)
from attnbench.catalogue import model_workload
from attnbench.devices import resolve_device
from attnbench.impls.base import Implementation
from attnbench.impls.eager import Eager
from attnbench.masks import MaskSpec

from .conftest import CPU

SMALL = Workload(1, 4, 2, 16, 24, 32, causal=True, dtype="fp32")


# -- unknown names ----------------------------------------------------------------------------
def test_unknown_implementation_name():
    with pytest.raises(UnknownNameError) as info:
        attnbench.get_impl("nope")
    msg = str(info.value)
    assert "nope" in msg and "implementation" in msg
    assert "eager" in msg  # lists what is known
    assert isinstance(info.value, KeyError) and isinstance(info.value, AttnbenchError)


@pytest.mark.parametrize(("typo", "meant"), [("sdpa-flsh", "sdpa-flash"), ("chunkd", "chunked")])
def test_unknown_implementation_suggests_close_match(typo, meant):
    with pytest.raises(UnknownNameError, match=f"did you mean .*{meant}"):
        attnbench.get_impl(typo)
    with pytest.raises(UnknownNameError, match=typo):
        prepare(typo, SMALL, CPU)


def test_unknown_implementation_pattern():
    with pytest.raises(UnknownNameError, match="zzz"):
        attnbench.select_impls(["eager", "zzz*"])


def test_unknown_workload_name():
    bad = "llama3-8b/prefill/s4096/b1/causal/bf17"
    with pytest.raises(UnknownNameError) as info:
        attnbench.get_workload(bad)
    msg = str(info.value)
    assert bad in msg and "workload" in msg
    assert "did you mean" in msg and "llama3-8b/prefill/s4096/b1/causal/bf16" in msg
    with pytest.raises(UnknownNameError, match="no-such-workload"):
        prepare("eager", "no-such-workload", CPU)


def test_unknown_set_name():
    with pytest.raises(UnknownNameError, match=r"workload set 'quik'.*did you mean quick"):
        attnbench.workload_set("quik")
    with pytest.raises(UnknownNameError, match=r"nothing-matches-this/\*"):
        attnbench.select_workloads(["quick", "nothing-matches-this/*"])


def test_unknown_model():
    with pytest.raises(UnknownNameError, match=r"model 'llama3-9b'.*did you mean llama3-8b"):
        model_workload("llama3-9b", "prefill", 128)


# -- invalid workloads ------------------------------------------------------------------------
FIELDS = ["batch", "q_heads", "kv_heads", "q_len", "kv_len", "head_dim"]
VALID = {"batch": 2, "q_heads": 8, "kv_heads": 8, "q_len": 16, "kv_len": 16, "head_dim": 32}


@pytest.mark.parametrize("value", [0, -3])
@pytest.mark.parametrize("field", FIELDS)
def test_zero_and_negative_sizes_name_the_field(field, value):
    with pytest.raises(InvalidWorkloadError) as info:
        Workload(**{**VALID, field: value})
    msg = str(info.value)
    assert msg.startswith(field), msg
    assert str(value) in msg


@pytest.mark.parametrize("value", [0, -64])
def test_bad_v_head_dim(value):
    with pytest.raises(InvalidWorkloadError, match=rf"v_head_dim .*{value}"):
        Workload(**VALID, v_head_dim=value)


@pytest.mark.parametrize("value", [2.0, True, "8"])
def test_non_integer_size(value):
    with pytest.raises(InvalidWorkloadError, match="batch"):
        Workload(**{**VALID, "batch": value})


@pytest.mark.parametrize(("q_heads", "kv_heads"), [(8, 3), (12, 5), (4, 8)])
def test_kv_heads_must_divide_q_heads(q_heads, kv_heads):
    with pytest.raises(InvalidWorkloadError) as info:
        Workload(**{**VALID, "q_heads": q_heads, "kv_heads": kv_heads})
    msg = str(info.value)
    assert f"kv_heads ({kv_heads})" in msg and f"q_heads ({q_heads})" in msg


def test_causal_with_more_queries_than_keys():
    with pytest.raises(InvalidWorkloadError) as info:
        Workload(**{**VALID, "q_len": 100, "kv_len": 17}, causal=True)
    msg = str(info.value)
    assert "causal" in msg and "q_len 100" in msg and "kv_len 17" in msg
    Workload(**{**VALID, "q_len": 100, "kv_len": 17}, causal=False)  # fine without the mask


def test_unknown_dtype():
    with pytest.raises(InvalidWorkloadError, match=r"unknown dtype 'fp4'.*bf16"):
        Workload(**VALID, dtype="fp4")


def test_unknown_scenario():
    with pytest.raises(InvalidWorkloadError, match=r"unknown scenario 'inference'.*decode"):
        Workload(**VALID, scenario="inference")  # type: ignore[arg-type]


def test_unknown_device():
    with pytest.raises(AttnbenchError, match="nodevice"):
        resolve_device("nodevice")
    if not torch.cuda.is_available():
        with pytest.raises(AttnbenchError, match="no CUDA device"):
            prepare("eager", SMALL, "cuda")


# -- what a device or an implementation cannot do ---------------------------------------------
@pytest.mark.parametrize("impl", ["sdpa-cudnn", "sdpa-efficient"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_cuda_only_backends_on_cpu(impl, dtype):
    with pytest.raises(UnsupportedError, match="needs a CUDA device") as info:
        prepare(impl, SMALL.with_(dtype=dtype), CPU)
    assert impl in str(info.value)


def test_reference_on_fp16_is_fine(seed):
    case = prepare("reference", SMALL.with_(dtype="fp16"), CPU, seed=seed)
    out = case.forward()
    assert out.dtype == torch.float64
    assert out.shape == (1, 4, 16, 32)
    assert case.forward_error().within("fp64")


class _Fp32Only(Eager):
    name = "test-fp32-only"
    dtypes = {"cpu": frozenset({"fp32"})}


def test_dtype_an_implementation_does_not_support():
    impl = _Fp32Only()
    reasons = impl.unsupported_reasons(SMALL.with_(dtype="bf16"), CPU)
    assert reasons == ["dtype bf16 unsupported on cpu (supports fp32)"]
    assert impl.unsupported_reasons(SMALL, CPU) == []
    with pytest.raises(UnsupportedError, match=r"test-fp32-only: dtype fp16 unsupported on cpu"):
        prepare(impl, SMALL.with_(dtype="fp16"), CPU)
    assert "test-fp32-only" not in attnbench.impl_names()  # never registered


def test_forward_backward_needs_a_train_workload():
    with pytest.raises(UnsupportedError, match="forward_backward needs a train workload"):
        prepare("eager", SMALL, CPU, mode="forward_backward")
    case = prepare("eager", SMALL, CPU)
    with pytest.raises(UnsupportedError, match="not a train workload"):
        case.forward_backward()
    with pytest.raises(ValueError, match="unknown mode 'backwards'"):
        case.step("backwards")


# -- failures inside prepare() ----------------------------------------------------------------
class _Raises(Implementation):
    name = "test-raises"
    family = "test"

    def forward(self, q, k, v, *, causal, scale):
        raise RuntimeError("kernel exploded: 42 is not a valid tile size")


class _OutOfMemory(Implementation):
    name = "test-oom"
    family = "test"

    def forward(self, q, k, v, *, causal, scale):
        raise torch.OutOfMemoryError("Tried to allocate 64.00 GiB")


class _WrongLayout(Eager):
    name = "test-wrong-layout"

    def forward(self, q, k, v, *, causal, scale):
        return super().forward(q, k, v, causal=causal, scale=scale).transpose(1, 2)


class _BackwardRaises(Eager):
    name = "test-backward-raises"

    def forward(self, q, k, v, *, causal, scale):
        return _Boom.apply(super().forward(q, k, v, causal=causal, scale=scale))


class _Boom(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("no backward kernel for this shape")


def test_prepare_reports_the_original_error():
    with pytest.raises(UnsupportedError) as info:
        prepare(_Raises(), SMALL, CPU)
    msg = str(info.value)
    assert "test-raises" in msg and SMALL.name in msg
    assert "RuntimeError: kernel exploded: 42 is not a valid tile size" in msg
    assert isinstance(info.value.__cause__, RuntimeError)


def test_prepare_reports_out_of_memory():
    with pytest.raises(UnsupportedError) as info:
        prepare(_OutOfMemory(), SMALL, CPU)
    msg = str(info.value)
    assert "out of memory" in msg
    assert "Tried to allocate 64.00 GiB" in msg
    assert "test-oom" in msg and SMALL.name in msg


def test_prepare_reports_a_wrong_layout():
    with pytest.raises(UnsupportedError, match="layout") as info:
        prepare(_WrongLayout(), SMALL, CPU)
    msg = str(info.value)
    assert "(1, 16, 4, 32)" in msg and "(1, 4, 16, 32)" in msg


def test_prepare_reports_a_failing_backward():
    train = SMALL.with_(scenario="train")
    prepare(_BackwardRaises(), train, CPU)  # forward alone is fine
    with pytest.raises(UnsupportedError, match="no backward kernel for this shape"):
        prepare(_BackwardRaises(), train, CPU, mode="forward_backward")


def test_prepare_reports_warnings_with_the_error():
    class _WarnsThenRaises(Implementation):
        name = "test-warns"
        family = "test"

        def forward(self, q, k, v, *, causal, scale):
            import warnings

            warnings.warn(
                "Flash attention kernel not used because head_dim is odd", UserWarning, stacklevel=1
            )
            raise RuntimeError("No available kernel. Aborting execution.")

    with pytest.raises(UnsupportedError) as info:
        prepare(_WarnsThenRaises(), SMALL, CPU)
    msg = str(info.value)
    assert "No available kernel" in msg and "head_dim is odd" in msg


# -- Workload fields are type-checked ---------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("causal", "no"),
        ("causal", 1),
        ("alibi", "yes"),
        ("documents", True),
        ("documents", 2.0),
        ("window", 4.0),
        ("dtype", torch.float16),
        ("scenario", 3),
        ("model", 7),
    ],
)
def test_workload_fields_have_their_types(field, value):
    with pytest.raises(InvalidWorkloadError, match=field):
        Workload(**VALID, **{field: value})


# -- one input contract for every implementation's direct call --------------------------------
def _tensors(q=(1, 4, 8, 16), k=(1, 2, 8, 16), v=(1, 2, 8, 16), dtypes=(torch.float32,) * 3):
    return [torch.randn(s).to(d) for s, d in zip((q, k, v), dtypes, strict=True)]


BAD_INPUTS = {  # what is wrong: (tensors, causal, words the error must say)
    "3-D": (_tensors(q=(4, 8, 16)), False, "4-D"),
    "batch": (_tensors(q=(2, 4, 8, 16)), False, "batch"),
    "k and v lengths": (_tensors(v=(1, 2, 9, 16)), False, "lengths"),
    "k and v heads": (_tensors(v=(1, 1, 8, 16)), False, "heads"),
    "gqa": (_tensors(k=(1, 3, 8, 16), v=(1, 3, 8, 16)), False, "divide"),
    "head dims": (_tensors(k=(1, 2, 8, 32), v=(1, 2, 8, 32)), False, "head_dim"),
    "dtypes": (_tensors(dtypes=(torch.float32, torch.float16, torch.float32)), False, "dtype"),
    "empty": (_tensors(q=(1, 4, 0, 16)), False, "empty"),
    "no key": (_tensors(q=(1, 4, 9, 16)), True, "no key"),
}


@pytest.mark.parametrize("what", BAD_INPUTS)
@pytest.mark.parametrize("impl", attnbench.impl_names())
def test_direct_calls_share_one_input_contract(impl, what):
    """Every implementation refuses the same inputs with the same message, before its backend
    runs (so GPU-only backends too): no NaN, no zeros, no batch of 2 from a query of 1."""
    (q, k, v), causal, words = BAD_INPUTS[what]
    with pytest.raises(InvalidWorkloadError, match=words):
        attnbench.get_impl(impl).forward(q, k, v, causal=causal, scale=0.25)


def test_rows_that_see_no_key_are_refused_as_workloads_are():
    q, k, v = _tensors(q=(1, 4, 10, 16))
    with pytest.raises(InvalidWorkloadError, match=r"q_len 10 > kv_len 8.*2 query rows"):
        attnbench.get_impl("reference").forward(q, k, v, causal=True, scale=0.25)
    out = attnbench.get_impl("eager").forward(q, k, v, causal=False, scale=0.25)
    assert out.shape == (1, 4, 10, 16)  # without the causal mask every row sees every key


def test_a_mask_that_contradicts_causal_is_refused():
    q, k, v = _tensors()
    with pytest.raises(InvalidWorkloadError, match="causal"):
        attnbench.get_impl("eager").forward(
            q, k, v, causal=False, scale=0.25, mask=MaskSpec(causal=True, window=2)
        )


@pytest.mark.parametrize(
    ("impl", "mask", "feature"),
    [
        ("chunked", MaskSpec(causal=True, window=3), "sliding-window"),
        ("chunked", MaskSpec(causal=True, doc_lens=(3, 5)), "documents"),
        ("chunked", MaskSpec(causal=True, alibi=True), "ALiBi"),
        ("sdpa-flash", MaskSpec(causal=True, window=3), "sliding-window"),
    ],
)
def test_unsupported_mask_features_are_refused_never_ignored(impl, mask, feature):
    """chunked ignored a window (error 2.89 against the reference): refused now, in forward and
    in bind alike."""
    q, k, v = _tensors()
    with pytest.raises(UnsupportedError, match=f"{impl}: no support for .*{feature}"):
        attnbench.get_impl(impl).forward(q, k, v, causal=True, scale=0.25, mask=mask)
    workload = Workload(1, 4, 2, 8, 8, 16, dtype="fp32", window=mask.window, alibi=mask.alibi,
                        documents=len(mask.doc_lens or (1,)))  # fmt: skip
    with pytest.raises(UnsupportedError, match=f"{impl}: no support for .*{feature}"):
        attnbench.get_impl(impl).bind(workload, CPU)


@pytest.mark.parametrize("impl", ["chunked", "eager", "sdpa", "reference"])
def test_the_contract_is_checked_once_in_bind_not_per_timed_call(impl, monkeypatch):
    calls = []
    original = Implementation.check_call

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Implementation, "check_call", counted)
    w = Workload(1, 4, 2, 8, 8, 16, dtype="fp32")
    fn = attnbench.get_impl(impl).bind(w, CPU)
    q, k, v = _tensors()
    for _ in range(3):
        fn(q, k, v)
    assert calls == []
    attnbench.get_impl(impl).forward(q, k, v, causal=True, scale=0.25)
    assert calls == [1]


# -- the kernels' own API ---------------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize(
    ("tensors", "words"),
    [
        (_tensors(dtypes=(torch.float64,) * 3), "float64"),
        ([t.to(torch.int32) for t in _tensors()], "int32"),
        (_tensors(q=(1, 4, 0, 16)), "empty"),
        (_tensors(k=(1, 2, 0, 16), v=(1, 2, 0, 16)), "empty"),
    ],
)
def test_kernel_api_refuses_dtypes_and_empty_sizes_clearly(tensors, words):
    """An interpreter assertion and a ZeroDivisionError before: a message naming the problem."""
    from attnbench.kernels.flash.api import attention

    with pytest.raises(ValueError, match=words):
        attention(*tensors, causal=False)
