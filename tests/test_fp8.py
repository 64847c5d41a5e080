"""fp8 (float8 e4m3 Q/K/V, bf16 output, forward only): the dtype, its workloads and costs, the
float64 reference on the same fp8 values, the error tolerance, and who takes it and why not."""

from __future__ import annotations

import pytest
import torch

from attnbench import Workload, get_impl
from attnbench.catalogue import workload_set
from attnbench.devices import dtype_problem
from attnbench.errors import InvalidWorkloadError
from attnbench.impls import impl_names
from attnbench.inputs import make_inputs
from attnbench.measure.accuracy import compare
from attnbench.measure.peaks import peak_for

from .test_adapters import CPU, fa_math, fake_module

FP8 = torch.float8_e4m3fn
W = Workload(2, 8, 2, 64, 64, 32, causal=True, dtype="fp8")  # GQA


def test_fp8_workload_costs_and_output_dtype():
    w = Workload(1, 4, 4, 256, 256, 64, causal=False, dtype="fp8")
    assert (w.torch_dtype, w.out_dtype, w.name) == (FP8, "bf16", "h4d64/prefill/s256/b1/full/fp8")
    qkv = 3 * 4 * 256 * 64  # one byte each
    assert w.forward_bytes == qkv + 2 * 4 * 256 * 64  # the output is bf16
    assert w.kv_bytes == 2 * 4 * 256 * 64
    assert w.forward_flops == w.with_(dtype="bf16").forward_flops
    with pytest.raises(InvalidWorkloadError, match="dtype fp8 is forward-only"):
        Workload(1, 4, 4, 64, 64, 64, dtype="fp8", scenario="train")


def test_fp8_inputs_are_random_e4m3_values():
    i = make_inputs(W, CPU, seed=3)
    assert i.q.dtype == i.k.dtype == i.v.dtype == FP8 and i.grad_out is None
    ref = make_inputs(W.with_(dtype="fp32"), CPU, seed=3)  # same numbers, before rounding
    assert torch.equal(i.q.float(), ref.q.to(FP8).float())
    assert i.q.float().std() > 0.5 and len(i.v.float().unique()) > 50  # not constant


def _fp8_attention(q, k, v, scale, causal, p_shift=0.0):
    """What an fp8 kernel computes: exact scores from the fp8 inputs, P (times 2^p_shift)
    rounded to e4m3 before the PV product, a bf16 output (FlashAttention-3's fp8 forward;
    attnbench's Triton kernels scale P by 2^8 first)."""
    qd, kd, vd = (t.double() for t in (q, k, v))
    g = q.shape[1] // k.shape[1]
    kd, vd = kd.repeat_interleave(g, 1), vd.repeat_interleave(g, 1)
    s = (qd @ kd.transpose(-1, -2)) * scale
    if causal:
        sq, sk = s.shape[-2:]
        keep = torch.ones(sq, sk, dtype=torch.bool).tril(sk - sq)
        s = s.masked_fill(~keep, float("-inf"))
    p = torch.exp(s - s.amax(-1, keepdim=True)) * 2.0**p_shift
    out = (p.to(FP8).double() @ vd) / p.sum(-1, keepdim=True)
    return out.to(torch.bfloat16)


@pytest.mark.parametrize("shape", [W, W.with_(causal=False, q_len=16), W.with_(kv_heads=1)])
def test_fp8_tolerance_passes_fp8_arithmetic_and_fails_a_wrong_mask(shape):
    """The fp8 tolerance admits what fp8 arithmetic does (P in e4m3, bf16 out) against the
    float64 reference on the same fp8 inputs, and still rejects a wrong mask."""
    i = make_inputs(shape, CPU, seed=1)
    ref = get_impl("reference").forward(i.q, i.k, i.v, causal=shape.causal, scale=shape.scale)
    good = compare(_fp8_attention(i.q, i.k, i.v, shape.scale, shape.causal), ref)
    print(f"\n{shape.name}: fp8 arithmetic {good}")  # the figures docs quote (pytest -s)
    assert good.within("fp8") and good.rel_norm > 1e-3  # fp8's rounding is there, and allowed
    if shape.causal:
        wrong = compare(_fp8_attention(i.q, i.k, i.v, shape.scale, False), ref)
        print(f"{shape.name}: wrong mask {wrong}")
        assert not wrong.within("fp8")


def sink_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fp8 Q, K, V (1 x 2 heads, 32 queries, 512 keys, D=32) where every query meets key 0
    about 7 nats above the 511 others (4 * 10 / sqrt(32)): an attention sink."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 32, 32, generator=gen) * 0.3
    k = torch.randn(1, 2, 512, 32, generator=gen) * 0.3
    v = torch.randn(1, 2, 512, 32, generator=gen)
    q[..., 0], k[:, :, 0, 0] = 4.0, 10.0
    return q.to(FP8), k.to(FP8), v.to(FP8)


def test_scaling_p_keeps_the_small_probabilities_beside_a_sink():
    """Beside a sink the other probabilities are ~2^-10 of its own: rounded to e4m3 unscaled
    most flush to zero; scaled by 2^8 first (the Triton kernels' FP8_P_SHIFT) they survive."""
    q, k, v = sink_inputs()
    ref = get_impl("reference").forward(q, k, v, causal=False, scale=32**-0.5)
    plain, shifted = (
        compare(_fp8_attention(q, k, v, 32**-0.5, False, shift), ref) for shift in (0.0, 8.0)
    )
    print(f"\nsink, P unscaled: {plain}\nsink, P x 2^8: {shifted}")  # pytest -s
    assert plain.rel_norm > 1e-2 and shifted.rel_norm < 5e-3


def test_fa3_takes_fp8_through_its_entry_point(monkeypatch):
    seen = []

    def flash_attn_func(q, k, v, softmax_scale=None, causal=False, **kw):
        seen.append((q.dtype, k.dtype, v.dtype, tuple(q.shape), tuple(k.shape)))
        qd, kd, vd = (t.transpose(1, 2) for t in (q, k, v))  # (B, S, H, D) -> canonical
        return _fp8_attention(qd, kd, vd, softmax_scale, causal).transpose(1, 2)

    fake_module(monkeypatch, "flash_attn_interface", flash_attn_func=flash_attn_func,
                flash_attn_varlen_func=fa_math)  # fmt: skip
    fa3 = get_impl("fa3")
    assert "fp8" in fa3.dtypes["cuda"]
    i = make_inputs(W, CPU)
    out = fa3.bind(W, CPU)(i.q, i.k, i.v)
    assert seen == [(FP8, FP8, FP8, (2, 64, 8, 32), (2, 64, 2, 32))]  # fp8, BSHD, GQA native
    assert out.dtype == torch.bfloat16 and out.shape == (2, 8, 64, 32)
    ref = get_impl("reference").forward(i.q, i.k, i.v, causal=True, scale=W.scale)
    assert compare(out, ref).within("fp8")


def test_fp8_reasons(monkeypatch):
    """Who takes fp8 and, for everyone else, why not: every implementation says."""
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    fa4 = get_impl("fa4")
    monkeypatch.setattr(fa4, "availability", lambda: None)
    assert fa4.extra_reasons(W, cuda) == [
        "flash-attn-4's fp8 forward needs sm_100; this GPU is sm_90"
    ]
    assert fa4.extra_reasons(W.with_(dtype="bf16"), cuda) == []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (10, 0))
    assert fa4.extra_reasons(W, cuda) == []
    for name in impl_names():
        impl = get_impl(name)
        takes = "fp8" in set().union(*impl.dtypes.values())
        inhouse = name.startswith("triton-")  # triton-flash, its variants, triton-decode
        assert takes == (name in ("reference", "fa3", "fa4") or inhouse), name
        if not takes and "cuda" in impl.dtypes:
            why = " ".join(impl.unsupported_reasons(W, cuda))
            assert "dtype fp8 unsupported on cuda" in why or "needs" in why, (name, why)
    sdpa = " ".join(get_impl("sdpa").unsupported_reasons(W, CPU))
    assert "PyTorch's matmul and SDPA kernels take no float8 inputs" in sdpa
    fa2 = get_impl("fa2")
    monkeypatch.setattr(fa2, "availability", lambda: None)
    assert "FlashAttention-2 has no fp8 kernels" in " ".join(fa2.unsupported_reasons(W, cuda))


def test_fp8_needs_sm89_and_has_peaks(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (8, 0))
    assert dtype_problem(torch.device("cuda"), FP8) == (
        "fp8 tensor cores need sm_89 or newer; this GPU is sm_80"
    )
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    assert dtype_problem(torch.device("cuda"), FP8) is None
    assert peak_for("NVIDIA H100 80GB HBM3", "fp8").tflops == 1978.9
    assert peak_for("NVIDIA H200", "fp8").tflops == 1978.9
    assert peak_for("NVIDIA A100-SXM4-80GB", "fp8") is None  # no fp8 tensor cores


def test_fp8_workloads_in_the_catalogue():
    names = [w.name for w in workload_set("gpu-fp8")]
    assert "mha32-d128/prefill/s4096/b4/causal/fp8" in names
    assert "llama3-8b/decode/kv65536/b8/causal/fp8" in names
    assert all(w.dtype == "fp8" and not w.has_backward for w in workload_set("gpu-fp8"))
    assert [w.name for w in workload_set("gpu") if w.dtype == "fp8"] == [
        "llama3-8b/prefill/s4096/b1/causal/fp8"
    ]


def test_fp8_matmul_ceiling_through_the_scaled_gemm(monkeypatch):
    """torch.mm takes no float8: the fp8 roof is torch._scaled_mm's (bf16 out), timed."""
    from attnbench.measure import ceilings

    monkeypatch.setitem(ceilings.SIZES, "cpu", (128, 4))
    c = ceilings.measure_ceilings("cpu", "fp8")
    assert c.matmul_tflops > 0 and c.copy_gbps > 0
    assert "torch._scaled_mm (bf16 out) 128x128 fp8" in c.how
