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
) -> Workload:
    """A workload on a model's heads. ``decode``: one query token against ``seq`` cached keys."""
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


def _gpu() -> list[Workload]:
    """The default GPU set: one of each kind that matters, sized for one asv run on an H100."""
    return [
        model_workload("llama3-8b", "prefill", 4096, 1),
        model_workload("llama3-8b", "prefill", 4096, 1, causal=False),
        model_workload("mha32-d128", "prefill", 8192, 4),
        model_workload("llama3-70b", "prefill", 2048, 1),
        model_workload("gemma-d256", "prefill", 4096, 1),
        model_workload("deepseek-v3-mha", "prefill", 2048, 2),
        model_workload("gpt2-small", "prefill", 1024, 8, dtype="fp16"),
        model_workload("llama3-8b", "decode", 4096, 8),
        model_workload("llama3-8b", "decode", 16384, 1),
        model_workload("mha32-d128", "decode", 2048, 4),
        model_workload("llama3-8b", "train", 4096, 1),
        model_workload("mha32-d128", "train", 2048, 4, causal=False),
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
