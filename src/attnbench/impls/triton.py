"""attnbench's in-house Triton kernels (:mod:`attnbench.kernels`) as implementations.

- ``triton-flash``: FlashAttention-2-style forward and backward (prefill and train).
- ``triton-decode``: split-KV decode (flash-decoding), one query row against a long cache.

Both run on CUDA; on the CPU only under Triton's interpreter (``TRITON_INTERPRET=1`` set before
the kernels are first imported), slowly, for tests. Triton is imported lazily. Each records
its kernel configuration (``config``) with every result.
"""

from __future__ import annotations

import os
import sys

import torch

from ..kernels.configs import HEAD_DIMS, bwd_config, decode_config, fwd_config
from ..workload import Workload
from .base import Implementation
from .registry import register

HALF = frozenset({"fp16", "bf16"})
# the interpreter computes bf16 products wrongly: bf16 runs there in float32 (tests only)
INTERPRETER_DTYPES = frozenset({"fp32", "fp16", "bf16"})


def _interpret_requested() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _num_sms(device: torch.device) -> int:
    if device.type != "cuda":
        return 132
    return torch.cuda.get_device_properties(device).multi_processor_count


class _Triton(Implementation):
    family = "in-house"
    dtypes = {"cuda": HALF, "cpu": INTERPRETER_DTYPES}
    max_head_dim = max(HEAD_DIMS)
    requires = ("triton",)

    def extra_reasons(self, workload: Workload, device: torch.device) -> list[str]:
        reasons = []
        for dim in sorted({workload.head_dim, workload.dv}):
            if dim not in HEAD_DIMS:
                reasons.append(
                    f"head_dim {dim} is not one of {', '.join(map(str, HEAD_DIMS))} "
                    "(the kernels' tiles span whole power-of-two head dims)"
                )
        if device.type == "cpu":
            reasons += self._cpu_reasons()
        return reasons

    @staticmethod
    def _cpu_reasons() -> list[str]:
        if not _interpret_requested():
            return ["on the CPU only under Triton's interpreter: set TRITON_INTERPRET=1"]
        loaded = [
            sys.modules.get(f"attnbench.kernels.{m}") for m in ("triton_flash", "triton_decode")
        ]
        if any(m is not None and not m.INTERPRETED for m in loaded):
            return [
                "the Triton kernels were imported before TRITON_INTERPRET=1 was set "
                "(compiled for CUDA, not interpreted)"
            ]
        return []

    @staticmethod
    def _on_cpu(q, k, v):
        """Interpreter only: bf16 computed in float32 (the interpreter's bf16 dot is wrong)."""
        if q.device.type == "cpu" and q.dtype == torch.bfloat16:
            return q.float(), k.float(), v.float(), torch.bfloat16
        return q, k, v, None


@register
class TritonFlash(_Triton):
    name = "triton-flash"
    description = (
        "in-house Triton flash attention (FlashAttention-2 style): tiled online softmax, "
        "unmasked tiles off the causal diagonal, GQA by index, backward with LSE recompute"
    )

    def forward(self, q, k, v, *, causal, scale, mask=None):
        from ..kernels.triton_flash import attention

        q, k, v, back = self._on_cpu(q, k, v)
        out = attention(q, k, v, causal=causal, scale=scale)
        return out if back is None else out.to(back)

    def config(self, workload: Workload, device: torch.device) -> dict | None:
        d = max(workload.head_dim, workload.dv)
        if d not in HEAD_DIMS:
            return None
        out = fwd_config(d, device.type, causal=workload.causal).as_dict()
        if workload.has_backward:
            bwd = bwd_config(d, device.type, causal=workload.causal).as_dict()
            out.update({f"bwd_{key}": value for key, value in bwd.items() if key != "kernel"})
        return out


@register
class TritonDecode(_Triton):
    name = "triton-decode"
    description = (
        "in-house Triton split-KV decode (flash-decoding): the cache cut into shares across "
        "the SMs, a group's query heads in one tile (K/V read once), then a combine kernel"
    )
    supports_backward = False

    def extra_reasons(self, workload: Workload, device: torch.device) -> list[str]:
        reasons = super().extra_reasons(workload, device)
        if workload.q_len != 1:
            reasons.insert(0, f"decode kernel: q_len must be 1 (got {workload.q_len})")
        return reasons

    def forward(self, q, k, v, *, causal, scale, mask=None):
        from ..kernels.triton_decode import decode

        q, k, v, back = self._on_cpu(q, k, v)
        out = decode(q, k, v, scale=scale)  # one row sees every key: causal changes nothing
        return out if back is None else out.to(back)

    def config(self, workload: Workload, device: torch.device) -> dict | None:
        d = max(workload.head_dim, workload.dv)
        if d not in HEAD_DIMS or workload.q_len != 1:
            return None
        cfg = decode_config(
            workload.batch,
            workload.kv_heads,
            workload.kv_len,
            d,
            device.type,
            num_sms=_num_sms(device),
        )
        return cfg.as_dict()
