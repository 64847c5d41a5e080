"""PyTorch SDPA with FlashAttention-3 or -4 switched in (``torch.nn.attention``'s
``activate_flash_attention_impl``), pinned to the FLASH_ATTENTION backend.

Activation is process-wide (it re-registers ATen's flash kernels), so it must not leak into
implementations measured later: ``bind`` activates, the bound callable re-activates if someone
restored the default meanwhile, and the default is restored when the bound callable is freed
(a sweep drops each case before the next). :meth:`forward` activates only around its own call.
"""

from __future__ import annotations

import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import torch
from torch.nn.attention import SDPBackend

from ..errors import UnsupportedError
from ..workload import Workload
from ._external import capability_problem, load, trim
from ._external import version as dist_version
from .base import HALF
from .flash_attn import fa4_disk_cache
from .registry import register
from .sdpa import _Sdpa


def _api() -> ModuleType | None:
    """``torch.nn.attention`` if it offers flash-attention impls, else ``None``."""
    import torch.nn.attention as api

    needed = ("activate_flash_attention_impl", "list_flash_attention_impls")
    return api if all(hasattr(api, n) for n in needed) else None


def _current(api: ModuleType) -> str | None:
    current = getattr(api, "current_flash_attention_impl", None)
    return current() if current else None


def _restore(impl: str) -> None:
    """Back to PyTorch's default flash kernels, if ``impl`` is still the active one."""
    api = _api()
    if api is None or _current(api) != impl:
        return
    restore = getattr(api, "restore_flash_attention_impl", None)
    if restore is None:
        return
    try:
        restore(_raise_warn=False)
    except TypeError:
        restore()


class _SdpaFa(
    _Sdpa,
    forward_and_bind="activation is process-wide: bind leaves it on while its callable lives, "
    "forward only around its own call (both run the SDPA call _Sdpa.bind makes)",
):
    backend = SDPBackend.FLASH_ATTENTION
    mask_features = frozenset()
    dtypes = {"cuda": HALF}
    max_head_dim = 256
    head_dim_multiple = 8
    supports_v_head_dim = False
    impl: ClassVar[str]  # "FA3" or "FA4", as torch.nn.attention names them
    module: ClassVar[str]  # what activating it imports
    distribution: ClassVar[str]
    capability: ClassVar[tuple[tuple[int, ...], str]]

    def availability(self) -> str | None:
        api = _api()
        if api is None:
            return (
                f"PyTorch {torch.__version__} has no "
                "torch.nn.attention.activate_flash_attention_impl"
            )
        listed = api.list_flash_attention_impls()
        if self.impl not in listed:
            return f"PyTorch {torch.__version__} lists no {self.impl} (lists: {listed})"
        reason = load(self.module, self.distribution)[1]
        if reason:
            return f"activate_flash_attention_impl({self.impl!r}) {reason}"
        return None

    def device_problem(self, device: torch.device) -> str | None:
        """Beyond the packages: the GPU generation, then torch's own glue on one tiny call."""
        majors, need = self.capability
        problem = super().device_problem(device) or capability_problem(
            device, majors, self.name, need
        )
        if problem or device.type != "cuda":
            return problem
        return self._glue_problem(device)

    def extra_reasons(self, workload: Workload, device: torch.device) -> list[str]:
        if workload.causal and 1 < workload.q_len < workload.kv_len:
            return ["SDPA's flash path aligns causal top-left: q_len < kv_len unsupported"]
        return []

    _probed: ClassVar[dict[tuple[str, str], str | None]] = {}

    def _glue_problem(self, device: torch.device) -> str | None:
        """Whether torch's own glue for this impl works at all: one tiny call, once per device.
        Only a failure inside torch's ``_fa3.py``/``_fa4.py`` counts (any other error is left
        to the real case to report)."""
        key = (self.impl, str(device))
        if key not in self._probed:
            q = torch.randn(1, 2, 128, 64, device=device, dtype=torch.bfloat16)
            problem = None
            try:
                self.forward(q, q, q, causal=False, scale=0.125)
            except RuntimeError as exc:
                if str(exc).startswith(f"SDPA's {self.impl} path fails inside torch"):
                    problem = f"{exc} (probed with one 1x2x128x64 bf16 call)"
            except Exception:
                pass
            self._probed[key] = problem
        return self._probed[key]

    def _activate(self) -> None:
        api = _api()
        if api is None:
            raise UnsupportedError(self.availability() or "no flash-attention impls in torch")
        if _current(api) == self.impl:
            return
        try:
            api.activate_flash_attention_impl(self.impl)
        except Exception as exc:
            raise UnsupportedError(
                f"activate_flash_attention_impl({self.impl!r}) failed: "
                f"{type(exc).__name__}: {trim(str(exc))}"
            ) from exc

    def _explained(self, exc: Exception) -> Exception:
        """An error raised inside torch's own FA3/FA4 glue, said so with the versions."""
        glue = f"_fa{self.impl[-1]}.py"
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(glue)]
        if not frames:
            return exc
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}"
        ver = dist_version(self.distribution)
        return RuntimeError(
            f"SDPA's {self.impl} path fails inside torch (torch/nn/attention/{where}): "
            f"{type(exc).__name__}: {trim(str(exc))} [torch {torch.__version__}, "
            f"{self.distribution} {ver or 'version unknown'}]"
        )

    def _call(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        try:
            return fn()
        except Exception as exc:
            explained = self._explained(exc)
            if explained is exc:
                raise
            raise explained from exc

    def bind(self, workload, device):
        self._activate()
        plain = super().bind(workload, device)  # SDPA itself: no activation around each call
        activate, call = self._activate, self._call

        def attention(q, k, v):
            activate()  # a no-op unless another case restored the default meanwhile
            return call(lambda: plain(q, k, v))

        weakref.finalize(attention, _restore, self.impl)
        return attention

    def forward(self, q, k, v, *, causal, scale, mask=None):
        api = _api()
        before = _current(api) if api else None
        self._activate()
        try:  # _Sdpa's forward, derived from its bind: the SDPA call this class's bind times
            return self._call(
                lambda: super(_SdpaFa, self).forward(q, k, v, causal=causal, scale=scale, mask=mask)
            )
        finally:
            if before != self.impl:
                _restore(self.impl)

    def config(self, workload, device):
        return {
            "flash_attention_impl": self.impl,
            self.distribution: dist_version(self.distribution),
        }


@register
class SdpaFa3(_SdpaFa):
    name = "sdpa-fa3"
    description = "SDPA (FLASH_ATTENTION) with FlashAttention-3 activated in torch.nn.attention"
    impl = "FA3"
    module = "flash_attn_interface"
    distribution = "flash-attn-3"
    capability = ((9,), "sm_90 (Hopper)")


@register
class SdpaFa4(_SdpaFa):
    name = "sdpa-fa4"
    description = "SDPA (FLASH_ATTENTION) with FlashAttention-4 activated in torch.nn.attention"
    impl = "FA4"
    module = "flash_attn.cute.interface"
    distribution = "flash-attn-4"
    capability = ((9, 10), "sm_90 or sm_100")

    def availability(self) -> str | None:
        fa4_disk_cache()  # flash-attn-4 reads it when first imported, here or by fa4
        return super().availability()
