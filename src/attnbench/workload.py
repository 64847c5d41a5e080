"""A workload: one attention problem, as a frozen value that knows its own cost.

Canonical tensor layout, used everywhere in attnbench (adapters convert at their edges):

    q: (batch, q_heads,  q_len,  head_dim)
    k: (batch, kv_heads, kv_len, head_dim)
    v: (batch, kv_heads, kv_len, v_head_dim)
    o: (batch, q_heads,  q_len,  v_head_dim)

``kv_heads`` divides ``q_heads``: query head ``h`` reads KV head ``h // (q_heads // kv_heads)``
(MHA when equal, MQA when ``kv_heads == 1``, GQA between). A causal mask is aligned to the
bottom-right corner, as with a KV cache: query row ``i`` sees keys ``j <= i + kv_len - q_len``.
Beyond that a workload may restrict keys further (sliding ``window``, packed ``documents``) or
bias the scores (``alibi``): see :class:`attnbench.masks.MaskSpec`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Literal

import torch

from .dtypes import FORWARD_ONLY, itemsize, output_dtype, short_name, to_torch
from .errors import InvalidWorkloadError
from .masks import MaskSpec, positive_int

Scenario = Literal["prefill", "decode", "train"]
SCENARIOS: tuple[str, ...] = ("prefill", "decode", "train")
LSE_BYTES = 4  # the float32 log-sum-exp a backward pass reads per query row


@dataclass(frozen=True)
class Workload:
    """One attention call (``train``: forward and backward) of a given shape and dtype."""

    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    head_dim: int
    causal: bool = True
    dtype: str = "bf16"
    scenario: Scenario = "prefill"
    v_head_dim: int | None = None
    window: int | None = None  # sliding window: each query sees at most this many keys (causal)
    documents: int = 1  # >1: the sequence packs this many documents of varied lengths
    alibi: bool = False  # ALiBi bias on the scores
    model: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for key in ("batch", "q_heads", "kv_heads", "q_len", "kv_len", "head_dim"):
            value = getattr(self, key)
            if not positive_int(value):
                raise InvalidWorkloadError(f"{key} must be a positive integer, got {value!r}")
        if self.v_head_dim is not None and not positive_int(self.v_head_dim):
            raise InvalidWorkloadError(
                f"v_head_dim must be a positive integer, got {self.v_head_dim!r}"
            )
        for key in ("dtype", "scenario", "model"):
            if not isinstance(getattr(self, key), str):
                raise InvalidWorkloadError(f"{key} must be a string, got {getattr(self, key)!r}")
        if self.scenario not in SCENARIOS:
            raise InvalidWorkloadError(
                f"unknown scenario {self.scenario!r} (known: {', '.join(SCENARIOS)})"
            )
        to_torch(self.dtype)  # raises InvalidWorkloadError naming the dtype
        if self.dtype in FORWARD_ONLY and self.scenario == "train":
            raise InvalidWorkloadError(
                f"dtype {self.dtype} is forward-only: no attention backward takes it (train "
                "workloads: fp16, bf16 or fp32)"
            )
        MaskSpec(self.causal, self.window, None, self.alibi)  # causal, window, alibi: checked
        problem = layout_problem(self.q_heads, self.kv_heads, self.q_len, self.kv_len, self.causal)
        if problem:
            raise InvalidWorkloadError(problem)
        self._check_documents()
        if not self.model:
            object.__setattr__(self, "model", self.default_model_label())

    def _check_documents(self) -> None:
        if not positive_int(self.documents):
            raise InvalidWorkloadError(
                f"documents must be a positive integer, got {self.documents!r}"
            )
        if self.documents > 1:
            if self.q_len != self.kv_len:
                raise InvalidWorkloadError(
                    f"packed documents need q_len == kv_len (got {self.q_len} and {self.kv_len})"
                )
            if self.documents > self.q_len:
                raise InvalidWorkloadError(
                    f"cannot pack {self.documents} documents into {self.q_len} tokens"
                )

    # -- naming --------------------------------------------------------------------------
    def default_model_label(self) -> str:
        label = f"h{self.q_heads}"
        if self.kv_heads != self.q_heads:
            label += f"kv{self.kv_heads}"
        label += f"d{self.head_dim}"
        if self.dv != self.head_dim:
            label += f"v{self.dv}"
        return label

    @property
    def name(self) -> str:
        """E.g. ``llama3-8b/prefill/s4096/b1/causal/bf16``, ``h8d64/decode/kv512/b8/full/fp32``."""
        if self.scenario == "decode" and self.q_len == 1:
            lengths = f"kv{self.kv_len}"
        elif self.q_len == self.kv_len:
            lengths = f"s{self.q_len}"
        else:
            lengths = f"q{self.q_len}-kv{self.kv_len}"
        mask = "causal" if self.causal else "full"
        if self.window is not None:
            mask += f"-win{self.window}"
        if self.documents > 1:
            mask += f"-docs{self.documents}"
        if self.alibi:
            mask += "-alibi"
        return f"{self.model}/{self.scenario}/{lengths}/b{self.batch}/{mask}/{self.dtype}"

    def __str__(self) -> str:
        return self.name

    def with_(self, **changes: object) -> Workload:
        """A copy with some fields changed (the model label is recomputed unless given)."""
        if "model" not in changes and self.model == self.default_model_label():
            changes["model"] = ""
        return replace(self, **changes)  # type: ignore[arg-type]

    # -- shape ---------------------------------------------------------------------------
    @property
    def dv(self) -> int:
        """Head dimension of V and of the output."""
        return self.v_head_dim or self.head_dim

    @property
    def group_size(self) -> int:
        """Query heads per KV head (1: MHA; q_heads: MQA)."""
        return self.q_heads // self.kv_heads

    @property
    def kind(self) -> str:
        if self.kv_heads == self.q_heads:
            return "MHA"
        return "MQA" if self.kv_heads == 1 else "GQA"

    @property
    def has_backward(self) -> bool:
        return self.scenario == "train"

    @property
    def scale(self) -> float:
        """Softmax scale, 1/sqrt(head_dim)."""
        return self.head_dim**-0.5

    @property
    def torch_dtype(self):
        return to_torch(self.dtype)

    @property
    def out_dtype(self) -> str:
        """The output's dtype (short name): the inputs' except for fp8 (bf16 output)."""
        return output_dtype(self.dtype)

    @property
    def doc_lens(self) -> tuple[int, ...] | None:
        """Lengths of the packed documents (varied, seeded by the shape; sum ``kv_len``)."""
        if self.documents == 1:
            return None
        cuts = sorted(
            random.Random(self.kv_len * 1009 + self.documents).sample(
                range(1, self.kv_len), self.documents - 1
            )
        )
        bounds = [0, *cuts, self.kv_len]
        return tuple(b - a for a, b in pairwise(bounds))

    @property
    def mask(self) -> MaskSpec:
        return MaskSpec(self.causal, self.window, self.doc_lens, self.alibi)

    # -- cost ----------------------------------------------------------------------------
    @property
    def attended_pairs(self) -> int:
        """(query, key) pairs that take part, per batch element and query head; exact."""
        if self.documents > 1:
            return sum(_pairs(n, n, self.causal, self.window) for n in self.doc_lens or ())
        return _pairs(self.q_len, self.kv_len, self.causal, self.window)

    @property
    def forward_flops(self) -> int:
        """2 FLOPs per multiply-add of QKᵀ (head_dim) and of PV (v_head_dim), on attended pairs."""
        return 2 * self.batch * self.q_heads * self.attended_pairs * (self.head_dim + self.dv)

    @property
    def backward_flops(self) -> int:
        """Counted as 2.5x forward (recompute of S and P, then dV, dP, dS·K and dSᵀ·Q)."""
        return self.forward_flops * 5 // 2

    @property
    def flops(self) -> int:
        """FLOPs of the whole workload: forward, plus backward for ``train``."""
        return self.forward_flops + (self.backward_flops if self.has_backward else 0)

    def _elements(self) -> dict[str, int]:
        b = self.batch
        return {
            "q": b * self.q_heads * self.q_len * self.head_dim,
            "k": b * self.kv_heads * self.kv_len * self.head_dim,
            "v": b * self.kv_heads * self.kv_len * self.dv,
            "o": b * self.q_heads * self.q_len * self.dv,
            "lse": b * self.q_heads * self.q_len,
        }

    @property
    def forward_bytes(self) -> int:
        """Fewest bytes a forward pass moves: read Q, K, V once, write O once."""
        n = self._elements()
        return itemsize(self.dtype) * (n["q"] + n["k"] + n["v"]) + itemsize(self.out_dtype) * n["o"]

    @property
    def backward_bytes(self) -> int:
        """Fewest bytes a backward pass moves: read Q, K, V, O, dO and LSE; write dQ, dK, dV."""
        n = self._elements()
        tensors = 2 * (n["q"] + n["k"] + n["v"]) + 2 * n["o"]
        return itemsize(self.dtype) * tensors + LSE_BYTES * n["lse"]

    @property
    def bytes(self) -> int:
        """Fewest bytes of the whole workload (``train`` also writes the LSE forward keeps)."""
        if not self.has_backward:
            return self.forward_bytes
        return self.forward_bytes + LSE_BYTES * self._elements()["lse"] + self.backward_bytes

    @property
    def kv_bytes(self) -> int:
        """Bytes of K and V, what a decode step must read."""
        n = self._elements()
        return itemsize(self.dtype) * (n["k"] + n["v"])

    @property
    def tokens(self) -> int:
        """Query tokens processed (a decode step makes ``batch * q_len`` tokens)."""
        return self.batch * self.q_len


@dataclass(frozen=True, kw_only=True)
class CallWorkload(Workload):
    """The workload of one direct call on given tensors (:func:`workload_of`): a
    :class:`Workload` whose softmax scale and mask are the call's own, where a Workload derives
    them (``1/sqrt(head_dim)``; document lengths seeded by the shape). Used by the ``forward``
    that :class:`~attnbench.impls.Implementation` derives from an adapter's ``bind``; never
    catalogued, named or recorded (the name does not show the scale)."""

    call_scale: float
    call_mask: MaskSpec

    def __post_init__(self) -> None:
        super().__post_init__()
        m = self.call_mask
        documents = len(m.doc_lens) if m.doc_lens else 1
        if (m.causal, m.window, m.alibi, documents) != (
            self.causal, self.window, self.alibi, self.documents
        ):  # fmt: skip
            raise InvalidWorkloadError(f"the mask {m} contradicts the workload {self.name}")
        problem = m.problem(self.q_len, self.kv_len)
        if problem:
            raise InvalidWorkloadError(problem)

    @property
    def scale(self) -> float:
        """The call's softmax scale."""
        return self.call_scale

    @property
    def doc_lens(self) -> tuple[int, ...] | None:
        return self.call_mask.doc_lens

    @property
    def mask(self) -> MaskSpec:
        return self.call_mask


def workload_of(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool,
    scale: float,
    mask: MaskSpec | None = None,
) -> CallWorkload:
    """The workload of attention on these tensors (canonical layout, checked beforehand by
    :func:`check_tensors`): shapes, dtype, causal, ``scale`` and ``mask`` as given; ``train``
    when autograd records and an input needs a gradient (its dtype allowing a backward), else
    ``prefill``."""
    spec = mask if mask is not None else MaskSpec(causal)
    (b, hq, sq, d), (hkv, skv), dv = q.shape, k.shape[1:3], v.shape[-1]
    dtype = short_name(q.dtype)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    return CallWorkload(
        b, hq, hkv, sq, skv, d,
        causal=causal,
        dtype=dtype,
        scenario="train" if grad and dtype not in FORWARD_ONLY else "prefill",
        v_head_dim=dv if dv != d else None,
        window=spec.window,
        documents=len(spec.doc_lens) if spec.doc_lens else 1,
        alibi=spec.alibi,
        call_scale=scale,
        call_mask=spec,
    )  # fmt: skip


def _span(a: int, b: int) -> int:
    """Sum of the integers a..b (0 when b < a)."""
    return (a + b) * (b - a + 1) // 2 if b >= a else 0


def _pairs(q_len: int, kv_len: int, causal: bool, window: int | None) -> int:
    """Attended pairs of one (q_len, kv_len) block, bottom-right causal, optional window."""
    if not causal:
        return q_len * kv_len
    lo, hi = kv_len - q_len + 1, kv_len  # row i sees lo + i keys before any window
    if window is None or window >= hi:
        return _span(lo, hi)
    return _span(lo, min(hi, window)) + max(0, hi - max(lo - 1, window)) * window


def layout_problem(
    q_heads: int, kv_heads: int, q_len: int, kv_len: int, causal: bool
) -> str | None:
    """Why these heads and lengths are not attention in the canonical layout, or ``None``.
    Query rows that would see no key (causal with ``q_len > kv_len``) are refused."""
    if q_heads % kv_heads:
        return f"kv_heads ({kv_heads}) must divide q_heads ({q_heads})"
    if causal and q_len > kv_len:
        return (
            f"causal attention needs q_len <= kv_len (got q_len {q_len} > kv_len {kv_len}): the "
            f"first {q_len - kv_len} query rows would see no key"
        )
    return None


def check_tensors(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, mask: MaskSpec | None = None
) -> None:
    """The canonical layout's contract for tensors passed directly (as a :class:`Workload`'s
    for shapes): :class:`InvalidWorkloadError` naming what is wrong, else nothing."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise InvalidWorkloadError(
            f"q, k, v must be 4-D (batch, heads, seq, head_dim), got {q.dim()}-D, {k.dim()}-D "
            f"and {v.dim()}-D"
        )
    (b, hq, sq, d), (bk, hkv, skv, dk), (bv, hv, sv, _) = q.shape, k.shape, v.shape
    shapes = f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
    if not (q.numel() and k.numel() and v.numel()):
        raise InvalidWorkloadError(f"empty input: {shapes}")
    if not b == bk == bv:
        raise InvalidWorkloadError(f"batch sizes differ: {shapes}")
    if (hkv, skv) != (hv, sv):
        raise InvalidWorkloadError(f"k and v must have the same heads and lengths: {shapes}")
    if dk != d:
        raise InvalidWorkloadError(f"head_dim of k ({dk}) differs from that of q ({d}): {shapes}")
    problem = layout_problem(hq, hkv, sq, skv, causal) or (mask and mask.problem(sq, skv))
    if problem:
        raise InvalidWorkloadError(problem)
    if not q.dtype == k.dtype == v.dtype:
        raise InvalidWorkloadError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if not q.device == k.device == v.device:
        raise InvalidWorkloadError(f"q, k, v devices differ: {q.device}, {k.device}, {v.device}")
    if mask is not None and mask.causal != causal:
        raise InvalidWorkloadError(f"the mask's causal ({mask.causal}) contradicts causal={causal}")
