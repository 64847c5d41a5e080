"""attnbench's in-house Triton kernels (:mod:`attnbench.kernels.flash`) as implementations.

- ``triton-flash``: forward and backward (prefill and train): every mask computed in the
  kernel (causal, sliding window, packed documents, ALiBi), any head_dim up to 256 (V's may
  differ), fp16/bf16/fp32 and fp8 (e4m3 in, bf16 out, forward: both products in fp8, P scaled
  into e4m3's range), GQA by index; dense causal/full shapes with power-of-two head dims
  take the kernel's dense specialization; the backward is deterministic (no atomics).
- ``triton-flash-<name>``: each experimental variant of :data:`~.configs.VARIANTS`, the same
  kernels with an explicit change of configuration, registered (not benchmarked by default)
  so that it can be measured and tracked beside the default by name.
- ``triton-decode``: one query row against a long cache: the group's query heads packed into
  one tile, the keys split across the SMs, a combine kernel.

All run on CUDA; on the CPU only under Triton's interpreter (``TRITON_INTERPRET=1`` set before
Triton is first imported), slowly, for tests. Triton is imported lazily. ``bind`` chooses the
kernel configuration and builds the mask's small tables once per case, outside the timed call;
``config`` reports the choice, which is recorded with every result.
"""

from __future__ import annotations

import sys
from typing import ClassVar

import torch

from ..kernels.flash.configs import (
    MAX_HEAD_DIM,
    VARIANTS,
    BwdConfig,
    FwdConfig,
    Variant,
    choose_bwd_config,
    choose_fwd_config,
    decode_dict,
    num_sms,
)
from ..masks import MaskSpec
from ..settings import triton_interpret_requested
from ..workload import Workload
from .base import ALL_DTYPES, ALL_MASKS, Implementation
from .registry import register


def _itemsize(dtype: torch.dtype, device: torch.device) -> int:
    """Bytes per element of what the kernels compute on."""
    if device.type == "cpu" and dtype == torch.bfloat16:
        return 4  # the interpreter runs bf16 in float32
    return dtype.itemsize


class _Triton(Implementation):
    family = "in-house"
    # fp32 with exact products (tf32 would miss fp32's tolerance); on the CPU the interpreter
    # computes bf16 products wrongly: bf16 runs there in float32 (tests only); fp8 (e4m3)
    # products are exact there
    dtypes = {"cuda": ALL_DTYPES | {"fp8"}, "cpu": ALL_DTYPES | {"fp8"}}
    max_head_dim = MAX_HEAD_DIM
    mask_features = ALL_MASKS
    requires = ("triton",)
    forward_cache = 4  # a direct forward call chooses its configuration and tables once

    def device_problem(self, device: torch.device) -> str | None:
        problem = super().device_problem(device)
        if problem or device.type != "cpu":
            return problem
        if not triton_interpret_requested():
            return "on the CPU only under Triton's interpreter: set TRITON_INTERPRET=1"
        common = sys.modules.get("attnbench.kernels.flash.common")
        if common is not None and not common.INTERPRETED:
            return (
                "the Triton kernels were imported before TRITON_INTERPRET=1 was set "
                "(compiled for CUDA, not interpreted)"
            )
        return None

    @staticmethod
    def _run(kernel, q, k, v, **kwargs) -> torch.Tensor:
        """``kernel(q, k, v, **kwargs)``; under the interpreter bf16 is computed in float32
        (the interpreter's bf16 dot is wrong) and the output cast back."""
        if q.device.type == "cpu" and q.dtype == torch.bfloat16:
            return kernel(q.float(), k.float(), v.float(), **kwargs).to(torch.bfloat16)
        return kernel(q, k, v, **kwargs)

    @staticmethod
    def fwd_config(workload: Workload, device: torch.device) -> FwdConfig:
        """The forward's configuration for ``workload`` on ``device`` (what ``bind`` uses)."""
        w = workload
        return choose_fwd_config(
            w.batch, w.q_heads, w.kv_heads, w.q_len, w.kv_len, w.head_dim, w.dv,
            itemsize=_itemsize(w.torch_dtype, device),
            causal=w.mask.causal or bool(w.mask.features - {"alibi"}),
            dense_mask=not w.mask.features, num_sms=num_sms(device),
        )  # fmt: skip

    @staticmethod
    def mask_args(mask: MaskSpec, heads: int, device: torch.device):
        """The kernels' form of ``mask`` (device tables, built once per case in ``bind``)."""
        from ..kernels.flash.forward import spec_mask_args

        return spec_mask_args(mask, heads, device)


@register
class TritonFlash(_Triton):
    name = "triton-flash"
    description = (
        "in-house Triton flash attention (FlashAttention-2 style): every mask computed in the "
        "kernel, a dense specialization for causal/full, deterministic backward (no atomics)"
    )

    #: the experimental variant this implementation runs (``None``: the default kernels)
    variant: ClassVar[Variant | None] = None

    def configs(
        self, workload: Workload, device: torch.device
    ) -> tuple[FwdConfig, BwdConfig | None]:
        """The forward's and (for training workloads) the backward's configuration."""
        fwd = self.fwd_config(workload, device)
        if not workload.has_backward:
            return fwd, None
        return fwd, self.bwd_config(workload.head_dim, workload.dv, workload.torch_dtype, device)

    def bwd_config(
        self, head_dim: int, v_head_dim: int, dtype: torch.dtype, device: torch.device
    ) -> BwdConfig:
        """The backward's configuration: the chooser's, changed by this variant's."""
        config = choose_bwd_config(head_dim, v_head_dim, _itemsize(dtype, device))
        return self.variant.bwd_config(config) if self.variant else config

    def bind(self, workload: Workload, device: torch.device):
        from ..kernels.flash.api import attention

        fwd, bwd = self.configs(workload, device)
        mask = self.mask_args(workload.mask, workload.q_heads, device)
        scale, run = workload.scale, self._run

        def triton_flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return run(attention, q, k, v, scale=scale, mask=mask, fwd_config=fwd, bwd_config=bwd)

        return triton_flash

    def config(self, workload: Workload, device: torch.device) -> dict | None:
        fwd, bwd = self.configs(workload, device)
        out = fwd.as_dict()  # block_m, block_n, num_warps, num_stages, tma at the top (asv)
        if bwd is not None:
            out.update({f"bwd_{key}": value for key, value in bwd.as_dict().items()
                        if key != "kernel"})  # fmt: skip
        return out


@register
class TritonDecode(_Triton):
    name = "triton-decode"
    description = (
        "in-house Triton decode (flash-decoding): a group's query heads in one tile (K/V read "
        "once), the cache cut into key splits across the SMs, merged by the split that ends last"
    )
    supports_backward = False

    def extra_reasons(self, workload: Workload, device: torch.device) -> list[str]:
        if workload.q_len != 1:
            return [f"decode kernel: q_len must be 1 (got {workload.q_len})"]
        return []

    def bind(self, workload: Workload, device: torch.device):
        from ..kernels.flash.decode import decode

        cfg = self.fwd_config(workload, device)
        mask = self.mask_args(workload.mask, workload.q_heads, device)
        scale, run = workload.scale, self._run

        def triton_decode(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return run(decode, q, k, v, scale=scale, mask=mask, config=cfg)

        return triton_decode

    def config(self, workload: Workload, device: torch.device) -> dict | None:
        if workload.q_len != 1:
            return None
        return decode_dict(self.fwd_config(workload, device))


for _name, _variant in VARIANTS.items():  # one implementation per experimental variant
    register(
        type(
            f"TritonFlash_{_name.replace('-', '_')}",
            (TritonFlash,),
            {
                "name": f"triton-flash-{_name}",
                "description": _variant.description,
                "variant": _variant,
                "benchmarked": False,  # measured on request (-i / ATTNBENCH_IMPLS), not by default
            },
        )
    )
