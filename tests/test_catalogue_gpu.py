"""The GPU workload sets: what the default ``gpu`` set must cover, and what it must not hold."""

from __future__ import annotations

import pytest

from attnbench import catalogue, set_names, workload_set

GIB = 1 << 30


def test_default_sets():
    assert catalogue.default_set("cuda") == "gpu"
    assert catalogue.default_set("cpu") == "quick"


def test_quick_set_names_are_unchanged():
    """The quick set has committed history: renaming one of its workloads orphans it."""
    assert [w.name for w in workload_set("quick")] == [
        "h8d64/prefill/s512/b1/causal/fp32",
        "h8kv2d64/prefill/s256/b2/full/fp32",
        "h8kv1d64/decode/kv2048/b4/causal/fp32",
        "h8d64/train/s256/b1/causal/fp32",
    ]


def test_gpu_set_covers_every_scenario():
    gpu = workload_set("gpu")
    assert len(gpu) >= 20
    assert {w.scenario for w in gpu} == {"prefill", "decode", "train"}
    assert {w.kind for w in gpu} == {"MHA", "GQA", "MQA"}
    assert {w.dtype for w in gpu} == {"fp16", "bf16", "fp8"}
    assert {w.causal for w in gpu} == {True, False}
    assert {64, 128, 256} <= {w.head_dim for w in gpu}
    assert any(w.head_dim == 192 and w.dv == 128 for w in gpu), "no MLA shape"
    features = set().union(*(w.mask.features for w in gpu))
    assert features == {"window", "documents", "alibi"}
    decode = [w for w in gpu if w.scenario == "decode"]
    assert {w.q_len for w in decode} == {1}
    assert min(w.kv_len for w in decode) <= 2048 and max(w.kv_len for w in decode) >= 131072
    assert min(w.batch for w in decode) == 1 and max(w.batch for w in decode) >= 64
    assert any(w.mask.features for w in gpu if w.scenario == "train")


def test_inhouse_workloads_are_in_the_gpu_sets():
    """The in-house kernel issue's shapes: B=4, 32 x 128 MHA, S 4k-16k, causal and full (bf16,
    forward: S 4k in gpu, 8k and 16k in gpu-nightly; train in gpu-inhouse); decode B=8, 32/8
    heads, KV 16k and 64k."""
    gpu = {w.name for w in workload_set("gpu")}
    nightly = {w.name for w in workload_set("gpu-nightly")}
    inhouse = {w.name for w in workload_set("gpu-inhouse")}
    for s in (4096, 8192, 16384):
        for mask in ("causal", "full"):
            assert f"mha32-d128/prefill/s{s}/b4/{mask}/bf16" in (gpu if s == 4096 else nightly)
            assert f"mha32-d128/train/s{s}/b4/{mask}/bf16" in inhouse
    for kv in (16384, 65536):
        assert f"llama3-8b/decode/kv{kv}/b8/causal/bf16" in gpu & inhouse
    w = catalogue.get_workload("mha32-d128/prefill/s8192/b4/full/bf16")
    assert (w.batch, w.q_heads, w.kv_heads, w.head_dim) == (4, 32, 32, 128)


def test_the_nightly_set_is_the_per_commit_set_and_its_long_rows():
    """What a commit's run measures, the nightly run measures too (its graphs go on); the rows
    it adds are only the in-house prefill at S 8192/16384."""
    gpu = [w.name for w in workload_set("gpu")]
    nightly = [w.name for w in workload_set("gpu-nightly")]
    assert nightly[: len(gpu)] == gpu
    extra = nightly[len(gpu) :]
    assert len(extra) == 4
    long_rows = ("mha32-d128/prefill/s8192/", "mha32-d128/prefill/s16384/")
    assert all(n.startswith(long_rows) for n in extra)


def test_gpu_set_holds_no_giant_shape():
    """Nothing past the in-house S=16384 x B=4: a bigger shape costs seconds per call."""
    for w in workload_set("gpu-nightly"):
        scores = w.batch * w.q_heads * w.q_len * w.kv_len * 4  # eager's float32 score matrix
        assert scores <= 128 * GIB, f"{w.name}: {scores / GIB:.0f} GiB of scores"
        assert w.flops <= 20e12, f"{w.name}: {w.flops / 1e12:.1f} TFLOP"
        assert w.kv_bytes <= 4 * GIB, f"{w.name}: {w.kv_bytes / GIB:.1f} GiB of K and V"


@pytest.mark.parametrize("name", [n for n in set_names() if n.startswith("gpu-")])
def test_gpu_full_holds_every_gpu_set(name):
    full = {w.name for w in workload_set("gpu-full")}
    missing = {w.name for w in workload_set(name)} - full
    assert not missing


def test_mla_preset_has_a_narrower_v():
    w = catalogue.model_workload("mla-192-128", "prefill", 1024)
    assert (w.head_dim, w.dv, w.q_heads) == (192, 128, 128)
    assert w.name == "mla-192-128/prefill/s1024/b1/causal/bf16"


def test_model_workload_passes_masks():
    w = catalogue.model_workload("llama3-8b", "prefill", 4096, window=512, documents=4, alibi=True)
    assert w.name == "llama3-8b/prefill/s4096/b1/causal-win512-docs4-alibi/bf16"
    assert w.mask.features == {"window", "documents", "alibi"}
