"""External backend adapters on the CPU: FAKE flash-attn / xFormers / torch.nn.attention modules
that check the layout and arguments they receive and compute attention from each package's
documented semantics (not attnbench's), compared with attnbench's reference. Also the precise
reasons for a missing package, a package whose extension fails to import, and a failing _C."""

from __future__ import annotations

import gc
import os
import sys
import types

import pytest
import torch

from attnbench import Workload, get_impl
from attnbench.impls import sdpa_fa

CPU = torch.device("cpu")


# -- attention as flash-attn documents it, in (B, S, H, D) ---------------------------------
def fa_math(q, k, v, softmax_scale, causal, window_size=(-1, -1), alibi_slopes=None):
    """FlashAttention's semantics: bottom-right causal, window (left, right) around
    i + Sk - Sq, ALiBi ``-slope * |i + Sk - Sq - j|``; GQA by head groups."""
    sq, h = q.shape[1], q.shape[2]
    sk, hk = k.shape[1], k.shape[2]
    assert h % hk == 0, "Hq must be a multiple of Hkv"
    g = h // hk
    kk, vv = (t.double().repeat_interleave(g, 2) for t in (k, v))
    s = torch.einsum("bqhd,bkhd->bhqk", q.double(), kk) * softmax_scale
    i = torch.arange(sq).view(-1, 1) + sk - sq
    j = torch.arange(sk).view(1, -1)
    ok = torch.ones(sq, sk, dtype=torch.bool)
    left, right = (-1 if x is None else x for x in window_size)
    if causal:
        right = 0 if right < 0 else min(right, 0)
    if left >= 0:
        ok &= j >= i - left
    if right >= 0:
        ok &= j <= i + right
    if alibi_slopes is not None:
        assert alibi_slopes.dtype == torch.float32 and alibi_slopes.shape == (h,)
        s = s - alibi_slopes.double().view(1, h, 1, 1) * (i - j).abs()
    s = s.masked_fill(~ok, float("-inf"))
    return torch.einsum("bhqk,bkhd->bqhd", s.softmax(-1), vv).to(q.dtype)


def fa_varlen_math(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, **kwargs):
    """flash-attn 2's varlen signature (same parameter names as the real one)."""
    cu_q, cu_k, max_q, max_k = cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k
    assert q.dim() == 3 and cu_q.dtype == torch.int32 and cu_k.dtype == torch.int32
    lens = (cu_q[1:] - cu_q[:-1]).tolist()
    assert max_q == max(lens) and max_k == max(lens)
    out = []
    for a, z in zip(cu_q[:-1].tolist(), cu_q[1:].tolist(), strict=True):
        out.append(fa_math(q[None, a:z], k[None, a:z], v[None, a:z], **kwargs)[0])
    return torch.cat(out)


class Calls:
    """What the fake entry points were called with."""

    def __init__(self):
        self.log: list[tuple[str, tuple, dict]] = []

    def wrap(self, name, fn, ret=lambda out: out):
        def entry(*args, **kwargs):
            self.log.append((name, tuple(a.shape for a in args if hasattr(a, "shape")), kwargs))
            return ret(fn(*args, **kwargs))

        return entry


def fake_module(monkeypatch, name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    monkeypatch.setitem(sys.modules, name, mod)
    if "." in name:
        parent, child = name.rsplit(".", 1)
        if parent not in sys.modules:
            fake_module(monkeypatch, parent)
        monkeypatch.setattr(sys.modules[parent], child, mod, raising=False)
    return mod


@pytest.fixture
def calls():
    return Calls()


def run(impl: str, w: Workload, seed: int = 0):
    """The adapter's bound call on CPU fp32 inputs, and attnbench's reference output."""
    from attnbench.inputs import make_inputs

    i = make_inputs(w.with_(dtype="fp32"), CPU, seed=seed)
    out = get_impl(impl).bind(w, CPU)(i.q, i.k, i.v)
    mask = w.mask if w.mask.features else None
    ref = get_impl("reference").forward(i.q, i.k, i.v, causal=w.causal, scale=w.scale, mask=mask)
    return out, ref.to(out.dtype)


GQA = Workload(2, 8, 2, 48, 48, 32, causal=True)
SHAPES = {
    "gqa-causal": GQA,
    "mha-full": Workload(1, 4, 4, 40, 40, 32, causal=False),
    "q<kv-causal": Workload(2, 4, 1, 16, 64, 32, causal=True),
    "decode": Workload(3, 8, 2, 1, 64, 32, causal=True, scenario="decode"),
    "window": GQA.with_(window=9),
    "alibi": GQA.with_(alibi=True),
    "documents": GQA.with_(documents=3),
    "docs-window": GQA.with_(documents=3, window=7),
}


# -- flash-attn 2 ---------------------------------------------------------------------------
@pytest.fixture
def fa2(monkeypatch, calls):
    return fake_module(
        monkeypatch,
        "flash_attn",
        flash_attn_func=calls.wrap("func", fa_math),
        flash_attn_varlen_func=calls.wrap("varlen", fa_varlen_math),
        flash_attn_with_kvcache=calls.wrap("kvcache", fa_math),
    )


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_fa2_matches_reference(fa2, calls, shape):
    w = SHAPES[shape]
    assert get_impl("fa2").availability() is None
    out, ref = run("fa2", w)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    name, shapes, kwargs = calls.log[-1]
    assert kwargs["softmax_scale"] == pytest.approx(w.scale) and kwargs["causal"] == w.causal
    if w.documents > 1:  # varlen: (B*S, H, D), K/V with their own (unrepeated) head count
        assert name == "varlen"
        assert shapes[:3] == ((w.batch * w.q_len, w.q_heads, w.head_dim),
                              (w.batch * w.kv_len, w.kv_heads, w.head_dim),
                              (w.batch * w.kv_len, w.kv_heads, w.dv))  # fmt: skip
        assert kwargs["cu_seqlens_q"].shape == (w.batch * w.documents + 1,)
    else:  # (B, S, H, D), GQA native: K/V keep Hkv heads
        assert name == "func"
        assert shapes == ((w.batch, w.q_len, w.q_heads, w.head_dim),
                          (w.batch, w.kv_len, w.kv_heads, w.head_dim),
                          (w.batch, w.kv_len, w.kv_heads, w.dv))  # fmt: skip
    assert ("window_size" in kwargs) == (w.window is not None)
    if w.window is not None:
        assert kwargs["window_size"] == (w.window - 1, 0)
    assert ("alibi_slopes" in kwargs) == w.alibi


def test_fa2_kvcache_decode(fa2, calls):
    w = SHAPES["decode"]
    out, ref = run("fa2-kvcache", w)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert calls.log[-1][0] == "kvcache"
    reasons = get_impl("fa2-kvcache").unsupported_reasons(GQA, CPU)
    assert any("CUDA" in r for r in reasons)  # declared CUDA-only


def test_fa2_kvcache_only_for_decode():
    reasons = get_impl("fa2-kvcache").extra_reasons(GQA, CPU)
    assert reasons == ["for decode workloads only (queries against a KV cache); see fa2"]


def test_fa2_tuple_return_and_gradients(monkeypatch, calls):
    # return_attn_probs-style tuple: the adapter must take the output, and stay differentiable
    as_tuple = calls.wrap("func", fa_math, ret=lambda o: (o, None, None))
    fake_module(monkeypatch, "flash_attn", flash_attn_func=as_tuple)
    w = Workload(1, 4, 2, 16, 16, 16, causal=True, scenario="train")
    from attnbench.inputs import make_inputs

    i = make_inputs(w.with_(dtype="fp32"), CPU)
    out = get_impl("fa2").bind(w, CPU)(i.q, i.k, i.v)
    assert out.shape == (1, 4, 16, 16)
    (dq,) = torch.autograd.grad(out.sum(), (i.q,))
    assert dq.shape == i.q.shape and torch.isfinite(dq).all()


# -- flash-attn 3 and 4: their return conventions --------------------------------------------
@pytest.mark.parametrize("returns_tuple", [False, True])
@pytest.mark.parametrize("shape", ["gqa-causal", "window", "documents", "decode"])
def test_fa3_both_return_forms(monkeypatch, calls, returns_tuple, shape):
    ret = (lambda o: (o, torch.zeros(1))) if returns_tuple else (lambda o: o)
    fake_module(monkeypatch, "flash_attn_interface",
                flash_attn_func=calls.wrap("func", fa_math, ret),
                flash_attn_varlen_func=calls.wrap("varlen", fa_varlen_math, ret))  # fmt: skip
    out, ref = run("fa3", SHAPES[shape])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", ["gqa-causal", "mha-full", "window", "documents", "decode"])
def test_fa4_cute_returns_out_lse(monkeypatch, calls, shape):
    def cute_func(q, k, v, softmax_scale=None, causal=False, window_size=(None, None)):
        return fa_math(q, k, v, softmax_scale, causal, window_size), None

    def cute_varlen(  # flash-attn-4 4.0.0b36: seqused_q/k come before max_seqlen_q/k
        q, k, v, cu_seqlens_q=None, cu_seqlens_k=None, seqused_q=None, seqused_k=None,
        max_seqlen_q=None, max_seqlen_k=None, **kw,
    ):  # fmt: skip
        assert seqused_q is None and seqused_k is None
        out = fa_varlen_math(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, **kw)
        return out, None

    fake_module(monkeypatch, "flash_attn.cute", flash_attn_func=calls.wrap("func", cute_func),
                flash_attn_varlen_func=calls.wrap("varlen", cute_varlen))  # fmt: skip
    out, ref = run("fa4", SHAPES[shape])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert "alibi_slopes" not in calls.log[-1][2]


def test_fa4_disk_cache_only_when_asked(monkeypatch, tmp_path):
    """``ATTNBENCH_FA4_DISK_CACHE=1`` sets flash-attn-4's cache switches before its import (a
    folder in attnbench's cache folder), keeps a user's own, and the config records it."""
    from attnbench.impls.flash_attn import FA4_DISK_CACHE_ENV

    names = ("FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED", "FLASH_ATTENTION_CUTE_DSL_CACHE_DIR")
    for name in (*names, FA4_DISK_CACHE_ENV):  # set first: monkeypatch then restores them
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("ATTNBENCH_CACHE_DIR", str(tmp_path))
    w = Workload(1, 2, 2, 8, 8, 16, causal=True, dtype="bf16")
    for name in ("fa4", "sdpa-fa4"):
        get_impl(name).availability()
    assert not any(n in os.environ for n in names)
    assert get_impl("fa4").config(w, torch.device("cpu"))["disk_cache"] is False
    monkeypatch.setenv(FA4_DISK_CACHE_ENV, "1")
    get_impl("sdpa-fa4").availability()  # whichever imports flash-attn-4 first
    env = os.environ
    assert env[names[0]] == "1" and env[names[1]] == str(tmp_path / "fa4-cute-dsl")
    assert get_impl("fa4").config(w, torch.device("cpu"))["disk_cache"] is True
    monkeypatch.setenv(names[1], "/somewhere/else")
    get_impl("fa4").availability()
    assert env[names[1]] == "/somewhere/else"


def test_declared_support():
    for name in ("fa3", "fa4"):
        assert "alibi" not in get_impl(name).mask_features
    assert get_impl("fa2").mask_features == {"window", "documents", "alibi"}
    assert not get_impl("fa2-kvcache").supports_backward
    assert get_impl("fa2").unsupported_reasons(GQA.with_(v_head_dim=64), CPU)  # CUDA, dv


# -- precise reasons ------------------------------------------------------------------------
def test_missing_packages_say_not_installed(monkeypatch):
    for mod in ("flash_attn", "flash_attn_interface", "xformers"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    assert get_impl("fa2").availability() == "needs flash-attn (module flash_attn), not installed"
    assert "flash-attn-3 (module flash_attn_interface), not installed" in (
        get_impl("fa3").availability()
    )
    assert get_impl("xformers").availability() == (
        "needs xformers (module xformers.ops), not installed"
    )


def test_broken_extension_is_quoted(monkeypatch, tmp_path):
    pkg = tmp_path / "flash_attn"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "raise ImportError('libcudart.so.12: cannot open shared object file: No such file')\n"
    )
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    reason = get_impl("fa2").availability()
    assert reason.startswith("flash-attn")
    assert "installed but flash_attn fails to import" in reason
    assert "ImportError: libcudart.so.12: cannot open shared object file" in reason
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)


def test_bare_flash_attn_package_is_not_fa2(monkeypatch):
    fake_module(monkeypatch, "flash_attn")  # what flash-attn-4 alone leaves: flash_attn.cute
    assert get_impl("fa2").availability() == (
        "module flash_attn imports but has no flash_attn_func: flash-attn is not installed "
        "(another package provides the module)"
    )


def test_capability_reason(monkeypatch):
    dev = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (8, 0))
    for name in ("fa2", "fa3"):  # as if installed: the GPU generation is what is checked
        monkeypatch.setattr(get_impl(name), "availability", lambda: None)
    assert get_impl("fa3").device_problem(dev) == "fa3 needs sm_90 (Hopper); this GPU is sm_80"
    assert get_impl("fa3").unsupported_reasons(GQA, dev) == [
        "fa3 needs sm_90 (Hopper); this GPU is sm_80"
    ]
    assert get_impl("fa2").device_problem(dev) is None


# -- xFormers ---------------------------------------------------------------------------------
class _Bias:
    def allowed(self, sq, sk):  # bottom-right aligned, as xFormers documents these masks
        i = torch.arange(sq).view(-1, 1) + sk - sq
        return torch.arange(sk).view(1, -1) <= i


class BottomRight(_Bias):
    pass


class BottomRightLocal(_Bias):
    def __init__(self, window):
        self._window_size = window

    def allowed(self, sq, sk):
        i = torch.arange(sq).view(-1, 1) + sk - sq
        j = torch.arange(sk).view(1, -1)
        return (j <= i) & (i - j < self._window_size)


class BlockDiagonal(_Bias):
    causal = False
    window = None

    @classmethod
    def from_seqlens(cls, q_seqlen, kv_seqlen=None):
        bias = cls()
        bias.lens = list(q_seqlen)
        return bias

    def make_local_attention(self, window):
        self.window = window
        return self

    def allowed(self, sq, sk):
        doc = torch.repeat_interleave(torch.arange(len(self.lens)), torch.tensor(self.lens))
        ok = doc.view(-1, 1) == doc.view(1, -1)
        i, j = torch.arange(sq).view(-1, 1), torch.arange(sk).view(1, -1)
        if self.causal:
            ok &= j <= i
        if self.window is not None:
            ok &= i - j < self.window
        return ok


class BlockDiagonalCausal(BlockDiagonal):
    causal = True


def fake_mea(query, key, value, attn_bias=None, p=0.0, scale=None, *, op=None):
    """xFormers' memory_efficient_attention on BMHK or BMGHK (K/V expanded, never copied)."""
    assert p == 0.0 and scale is not None
    if query.dim() == 5:
        assert key.stride(3) == 0 and value.stride(3) == 0, "GQA K/V must be expanded views"
        q, k, v = (t.flatten(2, 3) for t in (query, key, value))
    else:
        q, k, v = query, key, value
    sq, sk = q.shape[1], k.shape[1]
    s = torch.einsum("bqhd,bkhd->bhqk", q.double(), k.double()) * scale
    if attn_bias is not None:
        s = s.masked_fill(~attn_bias.allowed(sq, sk), float("-inf"))
    out = torch.einsum("bhqk,bkhd->bqhd", s.softmax(-1), v.double()).to(q.dtype)
    return out.unflatten(2, query.shape[2:4]) if query.dim() == 5 else out


class FakeOp:
    NAME = "fakeF"
    reasons: list[str] = []

    @classmethod
    def not_supported_reasons(cls, inp):
        assert inp.query.dim() in (4, 5) and inp.scale is not None
        return list(cls.reasons)


@pytest.fixture
def xformers(monkeypatch, calls):
    xf = fake_module(monkeypatch, "xformers")
    fake_module(monkeypatch, "xformers._cpp_lib", _cpp_library_load_exception=None)
    ops = fake_module(monkeypatch, "xformers.ops", memory_efficient_attention=calls.wrap(
        "mea", fake_mea))  # fmt: skip
    fmha = fake_module(monkeypatch, "xformers.ops.fmha")
    fake_module(monkeypatch, "xformers.ops.fmha.attn_bias",
                LowerTriangularFromBottomRightMask=BottomRight,
                LowerTriangularFromBottomRightLocalAttentionMask=BottomRightLocal,
                BlockDiagonalMask=BlockDiagonal,
                BlockDiagonalCausalMask=BlockDiagonalCausal)  # fmt: skip
    fake_module(monkeypatch, "xformers.ops.fmha.common", Inputs=types.SimpleNamespace)
    fake_module(monkeypatch, "xformers.ops.fmha.dispatch", _dispatch_fw=lambda inp, bw: FakeOp)
    for op in ("cutlass", "flash"):
        fw = type(f"{op}Fw", (FakeOp,), {"reasons": []})
        bw = type(f"{op}Bw", (FakeOp,), {"reasons": []})
        fake_module(monkeypatch, f"xformers.ops.fmha.{op}", FwOp=fw, BwOp=bw)
    assert xf.ops is ops and ops.fmha is fmha
    return xf


@pytest.mark.parametrize("impl", ["xformers", "xformers-cutlass", "xformers-flash"])
@pytest.mark.parametrize(
    "shape", ["gqa-causal", "mha-full", "q<kv-causal", "decode", "window", "documents",
              "docs-window"],
)  # fmt: skip
def test_xformers_matches_reference(xformers, calls, impl, shape):
    w = SHAPES[shape]
    assert get_impl(impl).availability() is None
    out, ref = run(impl, w)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    _, shapes, kwargs = calls.log[-1]
    op = kwargs["op"]
    if impl == "xformers":
        assert op is None
    else:
        assert op[0] is sys.modules[f"xformers.ops.fmha.{impl.split('-')[1]}"].FwOp
    if w.kv_heads != w.q_heads:
        assert len(shapes[0]) == 5 and shapes[0][2:4] == (w.kv_heads, w.group_size)


@pytest.mark.parametrize("impl", ["fa2", "xformers", "xformers-cutlass"])
@pytest.mark.parametrize("shape", ["gqa-causal", "mha-full", "q<kv-causal", "decode", "window",
                                   "documents"])  # fmt: skip
def test_forward_is_the_bound_call(fa2, xformers, calls, impl, shape):
    """``forward`` is derived from ``bind``: the very call that is timed, on the tensors' own
    workload, and with the caller's scale where it is not the workload's."""
    from attnbench.inputs import make_inputs

    w = SHAPES[shape].with_(dtype="fp32")
    i = make_inputs(w, CPU, seed=7)
    mask = w.mask if w.mask.features else None
    out = get_impl(impl).forward(i.q, i.k, i.v, causal=w.causal, scale=w.scale, mask=mask)
    torch.testing.assert_close(out, get_impl(impl).bind(w, CPU)(i.q, i.k, i.v), rtol=0, atol=0)
    other = get_impl(impl).forward(i.q, i.k, i.v, causal=w.causal, scale=0.3, mask=mask)
    assert calls.log[-1][2]["softmax_scale" if impl == "fa2" else "scale"] == 0.3
    ref = get_impl("reference").forward(i.q, i.k, i.v, causal=w.causal, scale=0.3, mask=mask)
    torch.testing.assert_close(other, ref.float(), atol=1e-5, rtol=1e-5)


def test_xformers_failing_extension(xformers, monkeypatch):
    text = (
        "xFormers can't load C++/CUDA extensions. xFormers was built for:\n    PyTorch 2.10.0 "
        "with CUDA 1209 (you have 2.11.0+cu130)\n  Please reinstall xformers (see ...)"
    )
    monkeypatch.setattr(sys.modules["xformers._cpp_lib"], "_cpp_library_load_exception",
                        RuntimeError(text))  # fmt: skip
    reason = get_impl("xformers-cutlass").availability()
    assert "imports, but its C++/CUDA extension does not load" in reason
    assert "PyTorch 2.10.0 with CUDA 1209 (you have 2.11.0+cu130)" in reason
    assert "reinstall" not in reason
    assert get_impl("xformers").availability() is None  # dispatch may still find an operator

    def nothing(inp, bw):
        raise NotImplementedError("No operator found for `memory_efficient_attention_forward`")

    monkeypatch.setattr(sys.modules["xformers.ops.fmha.dispatch"], "_dispatch_fw", nothing)
    from attnbench.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match=r"No operator found.*built for"):
        get_impl("xformers").bind(GQA, CPU)


def test_xformers_named_op_reasons_before_the_call(xformers, monkeypatch, calls):
    fw = sys.modules["xformers.ops.fmha.flash"].FwOp
    monkeypatch.setattr(fw, "reasons", ["dtype=torch.float32 (supported: {bf16, fp16})"])
    from attnbench.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match=r"dtype=torch\.float32"):
        get_impl("xformers-flash").bind(GQA, CPU)
    assert calls.log == []  # nothing was called


# -- SDPA with FA3/FA4 activated ------------------------------------------------------------
@pytest.fixture
def fa_registry(monkeypatch):
    """torch.nn.attention's impl registry, faked: records activations and restores."""
    import torch.nn.attention as api

    state = {"active": None, "log": []}

    def activate(impl):
        state["log"].append(("activate", impl))
        state["active"] = impl

    def restore(_raise_warn=True):
        state["log"].append(("restore", state["active"]))
        state["active"] = None

    monkeypatch.setattr(api, "activate_flash_attention_impl", activate, raising=False)
    monkeypatch.setattr(api, "list_flash_attention_impls", lambda: ["FA3", "FA4"], raising=False)
    monkeypatch.setattr(api, "current_flash_attention_impl", lambda: state["active"],
                        raising=False)  # fmt: skip
    monkeypatch.setattr(api, "restore_flash_attention_impl", restore, raising=False)
    fake_module(monkeypatch, "flash_attn.cute.interface")
    return state


def test_sdpa_fa4_activates_and_does_not_leak(fa_registry):
    impl = get_impl("sdpa-fa4")
    assert impl.availability() is None
    w = Workload(1, 4, 2, 16, 16, 16, causal=True, dtype="fp32")
    fn = impl.bind(w, CPU)
    assert fa_registry["active"] == "FA4"
    fa_registry["active"] = None  # someone restored the default meanwhile
    from attnbench.inputs import make_inputs

    i = make_inputs(w, CPU)
    fn(i.q, i.k, i.v)
    assert fa_registry["active"] == "FA4"  # re-activated for its own call
    fn(i.q, i.k, i.v)
    fn(i.q, i.k, i.v)
    assert fa_registry["log"] == [("activate", "FA4")] * 2  # not around every call
    del fn
    gc.collect()
    assert fa_registry["active"] is None  # freed: the default is back for whoever comes next
    impl.forward(i.q, i.k, i.v, causal=True, scale=w.scale)
    assert fa_registry["active"] is None and fa_registry["log"][-2:] == [
        ("activate", "FA4"), ("restore", "FA4")]  # fmt: skip


def test_sdpa_fa_reasons(fa_registry, monkeypatch):
    monkeypatch.delitem(sys.modules, "flash_attn_interface", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    assert get_impl("sdpa-fa3").availability() == (
        "activate_flash_attention_impl('FA3') needs flash-attn-3 (module flash_attn_interface), "
        "not installed"
    )
    w = Workload(1, 4, 4, 16, 64, 16, causal=True)
    assert any("top-left" in r for r in get_impl("sdpa-fa4").extra_reasons(w, CPU))
    import torch.nn.attention as api

    monkeypatch.delattr(api, "activate_flash_attention_impl")
    assert "has no torch.nn.attention.activate_flash_attention_impl" in (
        get_impl("sdpa-fa4").availability()
    )


def test_sdpa_fa4_failure_inside_torch_is_explained():
    glue = compile("def fa4_forward():\n    a, b = (1, 2, 3)\n",
                   "/site/torch/nn/attention/_fa4.py", "exec")  # fmt: skip
    scope: dict = {}
    exec(glue, scope)
    impl = get_impl("sdpa-fa4")
    with pytest.raises(RuntimeError) as info:
        impl._call(scope["fa4_forward"])
    text = str(info.value)
    assert text.startswith("SDPA's FA4 path fails inside torch (torch/nn/attention/_fa4.py:2)")
    assert "ValueError: too many values to unpack (expected 2)" in text
    assert f"torch {torch.__version__}" in text
    with pytest.raises(KeyError):  # an error elsewhere passes through untouched
        impl._call(lambda: {}["x"])


def test_restore_leaves_other_impls_alone(fa_registry):
    fa_registry["active"] = "FA3"
    sdpa_fa._restore("FA4")
    assert fa_registry["active"] == "FA3"


def test_failed_imports_are_tried_once(monkeypatch):
    """A broken package is imported once per process, not once per case of a sweep."""
    import importlib

    from attnbench.impls._external import load

    calls = []
    real_import = importlib.import_module

    def broken(name, *args, **kwargs):
        if name.startswith("brokenpkg"):
            calls.append(name)
            raise OSError("libfoo.so: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("attnbench.impls._external._installed", lambda module: True)
    monkeypatch.setattr(importlib, "import_module", broken)
    first = load("brokenpkg.ops", "brokenpkg")
    second = load("brokenpkg.ops", "brokenpkg")
    assert first == second and first[0] is None
    assert "fails to import (OSError: libfoo.so" in first[1]
    assert len(calls) == 1
