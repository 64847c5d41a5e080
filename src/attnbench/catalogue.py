"""Named workloads and named sets of them: the shapes people benchmark attention on.

Add a model by adding a line to ``MODELS``; add a set by adding a function to ``_SETS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from itertools import product

from .errors import UnknownNameError
from .workload import Workload


@dataclass(frozen=True)
class ModelShape:
    """The attention heads of a model: how many query and KV heads, and their width."""

    q_heads: int
    kv_heads: int
    head_dim: int
    v_head_dim: int | None = None


MODELS: dict[str, ModelShape] = {
    "llama3-8b": ModelShape(32, 8, 128),
    "llama3-70b": ModelShape(64, 8, 128),
    "llama3-405b": ModelShape(128, 8, 128),
    "gemma-d256": ModelShape(32, 32, 256),  # head_dim 256, as gemma-style models use
    "gemma-d256-gqa": ModelShape(32, 8, 256),
    "deepseek-v3-mha": ModelShape(128, 128, 56),  # hidden 7168 over 128 heads, plain MHA
    "gpt2-small": ModelShape(12, 12, 64),
    "mha32-d128": ModelShape(32, 32, 128),  # the 32 x 128 MHA of the GPU seeds
    "mqa32-d128": ModelShape(32, 1, 128),  # multi-query: one KV head for 32 query heads
    # DeepSeek-V3's MLA as attention sees it at prefill/train: 128 heads, Q/K 192 (128 + 64
    # rotary), V 128
    "mla-192-128": ModelShape(128, 128, 192, v_head_dim=128),
}


def model_workload(
    model: str,
    scenario: str,
    seq: int,
    batch: int = 1,
    *,
    causal: bool = True,
    dtype: str = "bf16",
    kv_len: int | None = None,
    window: int | None = None,
    documents: int = 1,
    alibi: bool = False,
) -> Workload:
    """A workload on a model's heads. ``decode``: one query token against ``seq`` cached keys.
    ``window``, ``documents`` and ``alibi`` as in :class:`~attnbench.workload.Workload`."""
    try:
        shape = MODELS[model]
    except KeyError:
        raise UnknownNameError("model", model, sorted(MODELS)) from None
    q_len = 1 if scenario == "decode" else seq
    return Workload(
        batch=batch,
        q_heads=shape.q_heads,
        kv_heads=shape.kv_heads,
        q_len=q_len,
        kv_len=kv_len or seq,
        head_dim=shape.head_dim,
        v_head_dim=shape.v_head_dim,
        causal=causal,
        dtype=dtype,
        scenario=scenario,  # type: ignore[arg-type]
        window=window,
        documents=documents,
        alibi=alibi,
        model=model,
    )


# -- sets ---------------------------------------------------------------------------------
def _quick() -> list[Workload]:
    """CPU, fp32; MHA/GQA/MQA, causal and full, prefill/decode/train; minutes on 2 cores."""
    return [
        Workload(1, 8, 8, 512, 512, 64, causal=True, dtype="fp32"),
        Workload(2, 8, 2, 256, 256, 64, causal=False, dtype="fp32"),
        Workload(4, 8, 1, 1, 2048, 64, causal=True, dtype="fp32", scenario="decode"),
        Workload(1, 8, 8, 256, 256, 64, causal=True, dtype="fp32", scenario="train"),
    ]


def _cpu_seeds() -> list[Workload]:
    """The CPU grid of the seeds: seq 128-1024 x head_dim 32/64 x heads 4/8/16, batch 1."""
    return [
        Workload(1, heads, heads, seq, seq, dim, causal=False, dtype="fp32")
        for seq, dim, heads in product((128, 256, 512, 1024), (32, 64), (4, 8, 16))
    ]


def _cpu_train() -> list[Workload]:
    """Forward+backward on CPU: 8 heads of 64 (embed 512), batch 2."""
    return [
        Workload(2, 8, 8, seq, seq, 64, causal=causal, dtype="fp32", scenario="train")
        for seq in (128, 512)
        for causal in (False, True)
    ]


def _prefill() -> list[Workload]:
    """GPU prefill of the seeds: 32 heads x 128, seq 2048/4096/8192 x batch 1/4, causal, bf16."""
    return [
        model_workload("mha32-d128", "prefill", seq, batch)
        for seq, batch in product((2048, 4096, 8192), (1, 4))
    ]


def _decode() -> list[Workload]:
    """GPU decode of the seeds: one token against KV 2048/4096, batch 1/4/8, MHA and GQA."""
    return [
        model_workload(model, "decode", kv, batch)
        for model, kv, batch in product(("mha32-d128", "llama3-8b"), (2048, 4096), (1, 4, 8))
    ]


def _train() -> list[Workload]:
    """GPU forward+backward, 32 heads x 128 (MHA and GQA), seq 2048/4096, batch 4."""
    return [
        model_workload(model, "train", seq, 4, causal=causal)
        for model, seq, causal in product(("mha32-d128", "llama3-8b"), (2048, 4096), (True, False))
    ]


def _models() -> list[Workload]:
    """Each model preset: prefill 4096, decode 4096 x batch 8, train 2048 (gpt2-small: 1024)."""
    out = []
    for model in MODELS:
        seq = 1024 if model == "gpt2-small" else 4096
        out += [
            model_workload(model, "prefill", seq),
            model_workload(model, "decode", seq, 8),
            model_workload(model, "train", seq // 2),
        ]
    return out


# The GPU sets. ``gpu`` (the default on CUDA) is sized for one commit's ``asv run`` in minutes:
# every scenario once or twice, no shape whose eager baseline takes seconds or cannot fit, and
# the in-house prefill at S=4096 only (at 8192/16384 the Inductor compiles of eager-compiled took
# 17-67 s a shape). ``gpu-nightly`` adds those longer rows back, for the nightly run.
# The larger sets are for the CLI (``attnbench run -w gpu-decode``).
INHOUSE = "mha32-d128"  # the in-house kernel issue's B=4, H=32 MHA, D=128


def _gpu() -> list[Workload]:
    """The default GPU set: prefill/decode/train, GQA/MQA, masks, MLA, head_dim 64-256,
    fp16/bf16 (and one fp8 prefill); sized for one commit's asv run in minutes."""
    m = model_workload
    return [
        # prefill, forward
        m("llama3-8b", "prefill", 4096, 1),
        m("llama3-8b", "prefill", 4096, 1, causal=False),
        *_inhouse("prefill", (4096,)),  # S 8192/16384: gpu-nightly
        m("gemma-d256", "prefill", 4096, 1),
        m("deepseek-v3-mha", "prefill", 2048, 2),
        m("gpt2-small", "prefill", 1024, 8, dtype="fp16"),
        m("mla-192-128", "prefill", 2048, 1),
        # masks beyond causal: sliding window, packed documents (varlen), ALiBi
        m("llama3-8b", "prefill", 4096, 1, window=1024),
        m("llama3-8b", "prefill", 4096, 1, documents=8),
        m(INHOUSE, "prefill", 2048, 2, alibi=True),
        # decode against a KV cache: GQA 32/8 and MQA, KV 2k-128k, batch 1-64
        m("llama3-8b", "decode", 4096, 8),
        m("llama3-8b", "decode", 16384, 8),
        m("llama3-8b", "decode", 65536, 8),
        m("llama3-8b", "decode", 131072, 1),
        m("llama3-8b", "decode", 2048, 64),
        m("mqa32-d128", "decode", 8192, 16, dtype="fp16"),
        # forward + backward
        m("llama3-8b", "train", 4096, 1),
        *_inhouse("train", (4096,)),
        m("llama3-8b", "train", 4096, 1, documents=8),
        # fp8 (e4m3 in, bf16 out), forward: n/a, with the reason, where no backend takes it
        m("llama3-8b", "prefill", 4096, 1, dtype="fp8"),
    ]


def _inhouse(scenario: str, seqs: tuple[int, ...] = (4096, 8192, 16384)) -> list[Workload]:
    """B=4, 32 heads x 128 (MHA), bf16, causal and full, at each length."""
    return [
        model_workload(INHOUSE, scenario, s, 4, causal=c) for s, c in product(seqs, (True, False))
    ]


def _gpu_nightly() -> list[Workload]:
    """The default GPU set and the in-house prefill at S 8192/16384 (compiles of tens of
    seconds a shape): what the nightly run measures."""
    return _gpu() + _inhouse("prefill", (8192, 16384))


def _gpu_inhouse() -> list[Workload]:
    """The in-house kernel issue's grid: B=4, 32 heads x 128 MHA, S 4096/8192/16384, causal and
    full, forward and train, bf16; decode B=8, GQA 32/8, KV 16k/64k."""
    decode = [model_workload("llama3-8b", "decode", kv, 8) for kv in (16384, 65536)]
    return _inhouse("prefill") + _inhouse("train") + decode


def _gpu_decode() -> list[Workload]:
    """Decode grid: GQA 32/8 and MQA x KV 2k/8k/32k/128k x batch 1/8/64, bf16 (and fp16 MQA)."""
    out = [
        model_workload(model, "decode", kv, batch)
        for model, kv, batch in product(
            ("llama3-8b", "mqa32-d128"), (2048, 8192, 32768, 131072), (1, 8, 64)
        )
    ]
    return [*out, model_workload("mqa32-d128", "decode", 32768, 8, dtype="fp16")]


def _gpu_masks() -> list[Workload]:
    """Masks beyond causal at 8k-16k: sliding windows, packed documents, ALiBi; forward and
    train."""
    m = model_workload
    return [
        *(m("llama3-8b", "prefill", 8192, 1, window=w) for w in (256, 1024, 4096)),
        *(m("llama3-8b", "prefill", s, 1, documents=d) for s in (8192, 16384) for d in (4, 16)),
        m(INHOUSE, "prefill", 4096, 2, alibi=True),
        m(INHOUSE, "prefill", 4096, 2, causal=False, alibi=True),
        m("llama3-8b", "train", 8192, 1, window=1024),
        m("llama3-8b", "train", 8192, 1, documents=16),
        m(INHOUSE, "train", 4096, 1, alibi=True),
    ]


def _gpu_headdim() -> list[Workload]:
    """head_dim 64/128/256 and MLA's 192/128, fp16 and bf16, prefill and train at s4096."""
    out = [
        model_workload(model, scenario, 4096, 1, dtype=dtype)
        for model, scenario, dtype in product(
            ("gpt2-small", "mha32-d128", "gemma-d256", "mla-192-128"),
            ("prefill", "train"),
            ("fp16", "bf16"),
        )
    ]
    return out


def _gpu_fp8() -> list[Workload]:
    """fp8 (e4m3 Q/K/V, bf16 output), forward: B=4 32x128 MHA S 4096/8192 causal and full,
    llama3-8b GQA prefill 4096, and decode against an fp8 KV cache of 16k/64k (B=8)."""
    return [
        *(
            model_workload(INHOUSE, "prefill", s, 4, causal=c, dtype="fp8")
            for s, c in product((4096, 8192), (True, False))
        ),
        model_workload("llama3-8b", "prefill", 4096, 1, dtype="fp8"),
        *(model_workload("llama3-8b", "decode", kv, 8, dtype="fp8") for kv in (16384, 65536)),
    ]


def _gpu_full() -> list[Workload]:
    """Every GPU set together (hours, not minutes: for the CLI)."""
    out: dict[str, Workload] = {}
    sets = (_gpu, _gpu_inhouse, _gpu_decode, _gpu_masks, _gpu_headdim, _gpu_fp8, _prefill, _decode)
    for make in sets:
        for w in make():
            out.setdefault(w.name, w)
    return list(out.values()) + [w for w in _train() if w.name not in out]


def _history() -> list[Workload]:
    """main's past on the GPU, ~12 rows a commit: in-house shapes, head dims 64-256, MLA, decode."""
    # benchmarks/_common.py lists these names too, for commits whose catalogue lacks this set:
    # keep both equal (a test checks), and use only workloads that older catalogues also have
    m = model_workload
    return [
        m(INHOUSE, "prefill", 4096, 4),
        m(INHOUSE, "prefill", 4096, 4, causal=False),
        m("llama3-8b", "prefill", 4096, 1),  # GQA 32/8
        m("gpt2-small", "prefill", 4096, 1),  # head_dim 64
        m("gemma-d256", "prefill", 4096, 1),  # head_dim 256
        m("mla-192-128", "prefill", 4096, 1),  # Q/K 192, V 128
        m("llama3-8b", "decode", 4096, 8),  # the launch-bound short cache
        m("llama3-8b", "decode", 16384, 8),
        m(INHOUSE, "train", 4096, 4),
        m("gpt2-small", "train", 4096, 1),
        m("gemma-d256", "train", 4096, 1),
        m("mla-192-128", "train", 4096, 1),
    ]


_SETS: dict[str, Callable[[], list[Workload]]] = {
    "quick": _quick,
    "cpu-seeds": _cpu_seeds,
    "cpu-train": _cpu_train,
    "prefill": _prefill,
    "decode": _decode,
    "train": _train,
    "models": _models,
    "gpu": _gpu,
    "gpu-nightly": _gpu_nightly,
    "gpu-inhouse": _gpu_inhouse,
    "gpu-decode": _gpu_decode,
    "gpu-masks": _gpu_masks,
    "gpu-headdim": _gpu_headdim,
    "gpu-fp8": _gpu_fp8,
    "gpu-full": _gpu_full,
    "history": _history,
}


def default_set(device_type: str) -> str:
    """The set measured when none is named: ``gpu`` on a CUDA device, else ``quick``."""
    return "gpu" if device_type == "cuda" else "quick"


def set_names() -> list[str]:
    return list(_SETS)


def describe_set(name: str) -> str:
    return (_SETS[name].__doc__ or "").strip()


def workload_set(name: str) -> list[Workload]:
    """The workloads of a named set, e.g. ``quick`` or ``gpu``."""
    try:
        return _SETS[name]()
    except KeyError:
        raise UnknownNameError("workload set", name, set_names()) from None


def all_workloads() -> dict[str, Workload]:
    """Every catalogued workload by name."""
    return {w.name: w for make in _SETS.values() for w in make()}


def get_workload(name: str) -> Workload:
    """A catalogued workload by its exact name."""
    known = all_workloads()
    try:
        return known[name]
    except KeyError:
        raise UnknownNameError("workload", name, sorted(known)) from None


def select_workloads(patterns: Iterable[str]) -> list[Workload]:
    """Workloads by set name, exact name or glob (``llama3-8b/decode/*``), in order, no repeats."""
    known = all_workloads()
    chosen: dict[str, Workload] = {}
    for pattern in patterns:
        if pattern in _SETS:
            matches = workload_set(pattern)
        elif pattern in known:
            matches = [known[pattern]]
        else:
            matches = [w for n, w in known.items() if fnmatchcase(n, pattern)]
            if not matches:
                raise UnknownNameError("workload or set", pattern, set_names() + sorted(known))
        for w in matches:
            chosen.setdefault(w.name, w)
    return list(chosen.values())
