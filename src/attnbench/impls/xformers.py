"""xFormers' ``memory_efficient_attention``: its own dispatch, and named operators pinned.

Layout at the edges: xFormers takes ``(B, M, H, K)`` (a transposed view of the canonical
layout); GQA goes in its 5-D form ``(B, M, G, H/G, K)`` with K/V expanded over the group by a
zero stride (no copy). Masks are xFormers bias objects: bottom-right causal
(``LowerTriangularFromBottomRightMask``), a window (``...LocalAttentionMask``), packed documents
(``BlockDiagonal[Causal]Mask`` over batch x documents, the batch folded into one row).

``import xformers.ops`` may succeed while its C++/CUDA extension fails to load (built for
another PyTorch): the load error is quoted as the reason, and each operator's own
``not_supported_reasons`` are asked in ``bind`` before anything is timed.
"""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar

import torch

from ..errors import UnsupportedError
from ..masks import MaskSpec
from ..workload import Workload
from ._external import load, trim
from ._external import version as dist_version
from .base import ALL_DTYPES, AttentionFn, Implementation
from .registry import register


def extension_problem(xformers: ModuleType) -> str | None:
    """Why xFormers' C++/CUDA extension did not load (quoted), or ``None``."""
    cpp = getattr(xformers, "_cpp_lib", None)
    exc = getattr(cpp, "_cpp_library_load_exception", None)
    if exc is None:
        return None
    text = str(exc).split("Please reinstall")[0]
    return f"its C++/CUDA extension does not load ({trim(text)})"


def _bias(fmha: ModuleType, mask: MaskSpec, batch: int, sq: int, skv: int):
    """The xFormers attention-bias object for ``mask`` (``None``: full attention)."""
    ab = fmha.attn_bias
    if mask.doc_lens:
        lens = list(mask.doc_lens) * batch
        if not mask.causal:
            return ab.BlockDiagonalMask.from_seqlens(lens)
        bias = ab.BlockDiagonalCausalMask.from_seqlens(lens)
        return bias.make_local_attention(mask.window) if mask.window is not None else bias
    if mask.window is not None:
        return ab.LowerTriangularFromBottomRightLocalAttentionMask(mask.window)
    if mask.causal and sq > 1:  # a single query row against a cache sees every key
        return ab.LowerTriangularFromBottomRightMask()
    return None


def _to_xformers(q, k, v, documents: bool):
    """Canonical tensors to xFormers' BMHK (BMGHK under GQA; one row of B*S with documents)."""
    b, hq = q.shape[:2]
    hkv = k.shape[1]
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if documents:
        q, k, v = (t.reshape(1, b * t.shape[1], *t.shape[2:]) for t in (q, k, v))
    if hq != hkv:
        g = hq // hkv
        q = q.unflatten(2, (hkv, g))
        k, v = (t.unsqueeze(3).expand(*t.shape[:3], g, t.shape[-1]) for t in (k, v))
    return q, k, v


def _from_xformers(out: torch.Tensor, batch: int) -> torch.Tensor:
    if out.dim() == 5:
        out = out.flatten(2, 3)
    if out.shape[0] != batch:
        out = out.reshape(batch, -1, *out.shape[2:])
    return out.transpose(1, 2)


class _XFormers(Implementation):
    family = "xformers"
    dtypes = {"cuda": ALL_DTYPES}
    mask_features = frozenset({"window", "documents"})
    #: module under xformers.ops.fmha of the pinned operator (None: xFormers' dispatch)
    op_module: ClassVar[str | None] = None
    #: the pinned operator's kernels live in xFormers' own C++/CUDA extension
    needs_extension: ClassVar[bool] = False

    def _xformers(self) -> tuple[ModuleType | None, str | None]:
        ops, reason = load("xformers.ops", "xformers")
        if ops is None:
            return None, reason
        import sys

        return sys.modules["xformers"], None

    def availability(self) -> str | None:
        xf, reason = self._xformers()
        if xf is None:
            return reason
        problem = extension_problem(xf)
        if problem and self.needs_extension:
            return f"xformers {dist_version('xformers') or ''} imports, but {problem}".replace(
                "  ", " "
            )
        return None

    def _ops(self) -> tuple[type | None, type | None]:
        if self.op_module is None:
            return None, None
        xf, reason = self._xformers()
        if xf is None:
            raise UnsupportedError(reason)
        mod = getattr(xf.ops.fmha, self.op_module, None)
        if mod is None:
            raise UnsupportedError(
                f"xformers {dist_version('xformers')} has no operator module {self.op_module}"
            )
        return mod.FwOp, mod.BwOp

    def _check(self, fmha, q, k, v, bias, scale, backward: bool) -> str | None:
        """Which operator runs (by name), after asking xFormers why it could not."""
        inp = fmha.common.Inputs(query=q, key=k, value=v, attn_bias=bias, p=0.0, scale=scale)
        fw, bw = self._ops()
        if fw is None:
            try:
                return fmha.dispatch._dispatch_fw(inp, backward).NAME
            except NotImplementedError as exc:
                raise UnsupportedError(self._with_extension(trim(str(exc), 600))) from None
            except AttributeError:  # private dispatch API moved: the call will tell
                return None
        reasons = list(fw.not_supported_reasons(inp))
        if backward:
            reasons += [f"backward: {r}" for r in bw.not_supported_reasons(inp)]
        if reasons:
            raise UnsupportedError(self._with_extension("; ".join(dict.fromkeys(reasons))))
        return fw.NAME

    def _with_extension(self, text: str) -> str:
        xf, _ = self._xformers()
        problem = extension_problem(xf) if xf is not None else None
        return f"{text} [xformers: {problem}]" if problem else text

    def _attention(self, mask: MaskSpec, batch: int, sq: int, skv: int, scale: float):
        xf, reason = self._xformers()
        if xf is None:
            raise UnsupportedError(reason)
        docs = bool(mask.doc_lens)
        bias = _bias(xf.ops.fmha, mask, batch, sq, skv)
        fw, bw = self._ops()
        op = (fw, bw) if fw is not None else None
        mea = xf.ops.memory_efficient_attention

        def attention(q, k, v):
            qx, kx, vx = _to_xformers(q, k, v, docs)
            return _from_xformers(mea(qx, kx, vx, attn_bias=bias, scale=scale, op=op), batch)

        return attention, bias

    def bind(self, workload: Workload, device: torch.device) -> AttentionFn:
        w = workload
        attention, bias = self._attention(w.mask, w.batch, w.q_len, w.kv_len, w.scale)
        # zero-stride stand-ins of the inputs, in xFormers' layout: ask before anything runs
        metas = [
            torch.empty(w.batch, h, s, d, device="meta")
            for h, s, d in ((w.q_heads, w.q_len, w.head_dim), (w.kv_heads, w.kv_len, w.head_dim),
                            (w.kv_heads, w.kv_len, w.dv))
        ]  # fmt: skip
        probe = [
            torch.empty(t.shape[-1], device=device, dtype=w.torch_dtype).expand(t.shape)
            for t in _to_xformers(*metas, bool(w.doc_lens))
        ]
        xf, _ = self._xformers()
        self._check(xf.ops.fmha, *probe, bias, w.scale, w.has_backward)
        return attention

    def config(self, workload: Workload, device: torch.device) -> dict | None:
        return {"package": "xformers", "version": dist_version("xformers")}


@register
class XFormers(_XFormers):
    name = "xformers"
    description = "xFormers memory_efficient_attention, xFormers choosing the operator"


@register
class XFormersCutlass(_XFormers):
    name = "xformers-cutlass"
    description = "xFormers memory_efficient_attention pinned to its CUTLASS operator (cutlassF/B)"
    op_module = "cutlass"
    needs_extension = True


@register
class XFormersFlash(_XFormers):
    name = "xformers-flash"
    description = "xFormers memory_efficient_attention pinned to its FlashAttention operator"
    op_module = "flash"
    dtypes = {"cuda": frozenset({"fp16", "bf16"})}
