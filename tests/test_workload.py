"""Workloads: FLOP and byte counts against brute force, names, kinds, and the catalogue."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections import defaultdict

import pytest
import torch

from attnbench import Workload, get_workload, select_workloads, set_names, workload_set
from attnbench.catalogue import MODELS, all_workloads, model_workload
from attnbench.inputs import make_inputs

SHAPES = [  # (batch, q_heads, kv_heads, q_len, kv_len, head_dim, v_head_dim, causal)
    (1, 1, 1, 1, 1, 8, None, True),
    (2, 4, 4, 5, 5, 8, None, True),
    (1, 4, 2, 5, 5, 16, None, False),
    (3, 6, 1, 3, 10, 8, None, True),  # q_len < kv_len: bottom-right diagonal
    (1, 2, 2, 1, 7, 8, None, True),  # decode-like
    (2, 8, 2, 17, 17, 32, 16, True),  # v_head_dim differs
    (1, 2, 1, 10, 3, 8, None, False),  # q_len > kv_len, not causal
    (1, 3, 3, 9, 23, 4, 12, True),
]


def _brute_force_pairs(q_len: int, kv_len: int, causal: bool) -> int:
    pairs = 0
    for i in range(q_len):
        for j in range(kv_len):
            if not causal or j <= i + kv_len - q_len:
                pairs += 1
    return pairs


def _make(shape, scenario="prefill", dtype="fp32") -> Workload:
    b, hq, hkv, sq, skv, d, dv, causal = shape
    return Workload(
        b, hq, hkv, sq, skv, d, causal=causal, dtype=dtype, scenario=scenario, v_head_dim=dv
    )


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_flops_brute_force(shape):
    w = _make(shape)
    b, hq, _, sq, skv, d, dv, causal = shape
    pairs = _brute_force_pairs(sq, skv, causal)
    assert w.attended_pairs == pairs
    assert w.forward_flops == 2 * b * hq * pairs * (d + (dv or d))
    assert w.flops == w.forward_flops  # prefill: no backward


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_train_flops_are_three_and_a_half_forward(shape):
    w = _make(shape, scenario="train")
    b, hq, _, sq, skv, d, dv, causal = shape
    forward = 2 * b * hq * _brute_force_pairs(sq, skv, causal) * (d + (dv or d))
    assert w.forward_flops == forward
    assert w.flops == forward * 7 // 2
    assert w.flops == forward * 3.5
    assert w.backward_flops == forward * 2.5


def test_causal_pairs_of_square_and_decode():
    assert Workload(1, 1, 1, 4, 4, 8, causal=True).attended_pairs == 10  # 1+2+3+4
    assert Workload(1, 1, 1, 4, 4, 8, causal=False).attended_pairs == 16
    assert Workload(1, 1, 1, 1, 2048, 8, scenario="decode").attended_pairs == 2048


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bytes_from_real_tensors(shape, dtype):
    w = _make(shape, dtype=dtype)
    i = make_inputs(w, "cpu", seed=7)
    q, k, v = (_nbytes(t) for t in i.leaves())
    o_tensor = get_out_like(i.q, i.v)
    o = _nbytes(o_tensor)
    assert w.forward_bytes == q + k + v + o
    assert w.bytes == w.forward_bytes
    assert w.kv_bytes == k + v

    t = _make(shape, scenario="train", dtype=dtype)
    ti = make_inputs(t, "cpu", seed=7)
    q, k, v = (_nbytes(x) for x in ti.leaves())
    d_o = _nbytes(ti.grad_out)
    lse = _nbytes(torch.empty(t.batch, t.q_heads, t.q_len, dtype=torch.float32))
    forward = q + k + v + d_o  # O has dO's shape and dtype
    backward = (q + k + v + d_o) + d_o + lse + (q + k + v)  # read Q K V O dO LSE, write dQ dK dV
    assert t.forward_bytes == forward
    assert t.backward_bytes == backward
    assert t.bytes == forward + lse + backward  # forward also writes the LSE


def get_out_like(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """An output tensor as attention produces it: (B, Hq, Sq, Dv) in the inputs' dtype."""
    return torch.empty(q.shape[0], q.shape[1], q.shape[2], v.shape[-1], dtype=q.dtype)


def test_inputs_are_seeded_random_of_the_workload_shape():
    w = Workload(2, 4, 2, 9, 13, 8, v_head_dim=16, dtype="bf16", scenario="train")
    a, b, c = make_inputs(w, seed=1), make_inputs(w, seed=1), make_inputs(w, seed=2)
    assert a.q.shape == (2, 4, 9, 8) and a.k.shape == (2, 2, 13, 8) and a.v.shape == (2, 2, 13, 16)
    assert a.grad_out.shape == (2, 4, 9, 16)
    assert all(t.dtype == torch.bfloat16 and t.requires_grad for t in a.leaves())
    assert torch.equal(a.q, b.q) and torch.equal(a.v, b.v)
    assert not torch.equal(a.q, c.q)
    assert a.q.float().std() > 0.5  # not constant
    assert a.scale == pytest.approx(8**-0.5)
    assert make_inputs(w.with_(scenario="prefill")).grad_out is None


# -- names, tokens, kinds ---------------------------------------------------------------------
def test_model_workload_names():
    assert (
        model_workload("llama3-8b", "prefill", 4096).name
        == "llama3-8b/prefill/s4096/b1/causal/bf16"
    )
    assert (
        model_workload("llama3-8b", "decode", 4096, 8).name
        == "llama3-8b/decode/kv4096/b8/causal/bf16"
    )
    assert (
        model_workload("gpt2-small", "train", 1024, 8, causal=False, dtype="fp16").name
        == "gpt2-small/train/s1024/b8/full/fp16"
    )
    assert (
        model_workload("llama3-70b", "prefill", 2048, kv_len=4096).name
        == "llama3-70b/prefill/q2048-kv4096/b1/causal/bf16"
    )


def test_default_model_label_names():
    assert Workload(1, 32, 8, 128, 128, 128).name == "h32kv8d128/prefill/s128/b1/causal/bf16"
    assert (
        Workload(8, 32, 32, 1, 4096, 128, scenario="decode").name
        == "h32d128/decode/kv4096/b8/causal/bf16"
    )
    assert (
        Workload(1, 4, 2, 17, 1000, 64, dtype="fp32").name
        == "h4kv2d64/prefill/q17-kv1000/b1/causal/fp32"
    )
    assert (
        Workload(2, 8, 8, 64, 64, 64, v_head_dim=32, causal=False).name
        == "h8d64v32/prefill/s64/b2/full/bf16"
    )
    assert str(Workload(1, 2, 1, 3, 3, 8)) == "h2kv1d8/prefill/s3/b1/causal/bf16"


def test_with_recomputes_the_default_label_but_keeps_a_model():
    w = Workload(1, 8, 8, 64, 64, 64)
    assert w.with_(kv_heads=2).name == "h8kv2d64/prefill/s64/b1/causal/bf16"
    m = model_workload("llama3-8b", "prefill", 512)
    assert m.with_(batch=2).name == "llama3-8b/prefill/s512/b2/causal/bf16"
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.batch = 2  # type: ignore[misc]


def test_tokens():
    assert model_workload("llama3-8b", "decode", 4096, 8).tokens == 8
    assert Workload(2, 8, 8, 256, 256, 64).tokens == 512
    assert Workload(3, 8, 8, 17, 100, 64).tokens == 51


@pytest.mark.parametrize(
    ("q_heads", "kv_heads", "group", "kind"),
    [(8, 8, 1, "MHA"), (8, 2, 4, "GQA"), (32, 8, 4, "GQA"), (8, 1, 8, "MQA"), (1, 1, 1, "MHA")],
)
def test_group_size_and_kind(q_heads, kv_heads, group, kind):
    w = Workload(1, q_heads, kv_heads, 4, 4, 8)
    assert w.group_size == group
    assert w.kind == kind


def test_model_presets_shapes():
    w = model_workload("llama3-8b", "prefill", 128)
    assert (w.q_heads, w.kv_heads, w.head_dim, w.kind) == (32, 8, 128, "GQA")
    d = model_workload("llama3-8b", "decode", 4096, 8)
    assert (d.q_len, d.kv_len, d.batch, d.scenario) == (1, 4096, 8, "decode")


# -- the catalogue ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", set_names())
def test_every_set_is_nonempty_with_unique_names(name):
    ws = workload_set(name)
    assert ws, f"set {name} is empty"
    names = [w.name for w in ws]
    assert len(names) == len(set(names)), f"set {name} repeats a workload name"
    assert all(isinstance(w, Workload) for w in ws)


def test_names_are_unique_in_the_catalogue():
    """One name, one workload: all_workloads() keys by name, so a clash would hide one."""
    by_name = defaultdict(set)
    for name in set_names():
        for w in workload_set(name):
            by_name[w.name].add(w)
    clashes = {n: ws for n, ws in by_name.items() if len(ws) > 1}
    assert not clashes
    assert set(all_workloads()) == set(by_name)
    for n in by_name:
        assert get_workload(n).name == n


def test_every_model_appears_in_the_models_set():
    models = {w.model for w in workload_set("models")}
    assert models == set(MODELS)


def test_select_workloads_globs_and_sets():
    decode = select_workloads(["llama3-8b/decode/*"])
    assert decode
    assert all(fnmatch.fnmatchcase(w.name, "llama3-8b/decode/*") for w in decode)
    assert "llama3-8b/decode/kv4096/b8/causal/bf16" in [w.name for w in decode]
    assert {w.name for w in decode} == {
        n for n in all_workloads() if n.startswith("llama3-8b/decode/")
    }

    quick = workload_set("quick")
    assert select_workloads(["quick"]) == quick
    assert select_workloads(["quick", "quick"]) == quick  # no repeats
    mixed = select_workloads(["quick", "llama3-8b/prefill/s4096/b1/causal/bf16", quick[0].name])
    assert [w.name for w in mixed] == [w.name for w in quick] + [
        "llama3-8b/prefill/s4096/b1/causal/bf16"
    ]
    assert [w.name for w in select_workloads(["*/train/*/fp32"])] == [
        n for n in all_workloads() if fnmatch.fnmatchcase(n, "*/train/*/fp32")
    ]


def test_quick_set_covers_the_kinds_on_fp32():
    quick = workload_set("quick")
    assert {w.scenario for w in quick} >= {"prefill", "decode", "train"}
    assert {w.kind for w in quick} >= {"MHA", "GQA", "MQA"}
    assert {w.causal for w in quick} == {True, False}
    assert {w.dtype for w in quick} == {"fp32"}
