"""The one interface every attention implementation offers, with its support stated as data.

Tensors come in attnbench's canonical layout (see :mod:`attnbench.workload`):
``q (B, Hq, Sq, D)``, ``k (B, Hkv, Skv, D)``, ``v (B, Hkv, Skv, Dv)`` -> ``o (B, Hq, Sq, Dv)``,
causal aligned bottom-right. An adapter converts to its backend's layout inside ``forward``.
``mask`` (a :class:`~attnbench.masks.MaskSpec`) is passed only for workloads with a sliding
window, packed documents or ALiBi, and only to implementations whose ``mask_features`` say so.

``bind(workload, device)`` runs once per case, before anything is timed: an implementation that
must compile, build block masks or pick a kernel configuration does it there and returns the
callable that is then timed.

An implementation writes exactly one of the two, and the base class derives the other (when the
class is created; writing both, or neither, is a ``TypeError`` then): ``bind`` from ``forward``
(the callable calls ``forward`` with the workload's causal, scale and mask), or ``forward`` from
``bind`` (the :class:`~attnbench.workload.CallWorkload` of the tensors, the call's own scale and
mask included, bound on their device and called). So the semantics are written once, and a
direct ``forward`` runs what is timed. A derived method calls the function of the class that
wrote its counterpart, not ``self``'s: a subclass that overrides ``forward`` and calls
``super().forward`` gets its parent's semantics and is bound through its own ``forward``.

The input contract, the same for every implementation (:meth:`Implementation.check_call`):
a direct ``forward`` call is checked on entry (shapes, dtypes and devices consistent, GQA heads
dividing, k and v of one length, :func:`~attnbench.workload.check_tensors`), and a mask
feature the implementation lacks is refused, in ``forward`` and in ``bind``, never ignored.
Query rows that would see no key (causal with ``q_len > kv_len``) are refused with
:class:`~attnbench.errors.InvalidWorkloadError`, as a :class:`Workload` refuses them. The
callable ``bind`` returns is not checked again per call: what is timed carries no check.
Subclasses get this without code: the base class wraps each ``forward`` and ``bind`` they define.
"""

from __future__ import annotations

import functools
import importlib.util
import types
from collections import OrderedDict
from collections.abc import Callable
from typing import ClassVar

import torch

from ..devices import dtype_problem
from ..errors import UnsupportedError
from ..masks import FEATURE_NAMES, MaskSpec
from ..workload import Workload, check_tensors, workload_of

HALF = frozenset({"fp16", "bf16"})
ALL_DTYPES = HALF | {"fp32"}
#: why PyTorch-built implementations take no fp8 (float8 e4m3) inputs
NO_FP8_IN_TORCH = (
    "PyTorch's matmul and SDPA kernels take no float8 inputs (float8 GEMMs go through "
    "torch._scaled_mm)"
)
ALL_MASKS = frozenset(FEATURE_NAMES)

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _checked_forward(forward: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``forward`` that first holds its inputs to the contract (``check_call``)."""

    @functools.wraps(forward)
    def checked(self, q, k, v, **kwargs):
        self.check_call(q, k, v, causal=kwargs["causal"], mask=kwargs.get("mask"))
        return forward(self, q, k, v, **kwargs)

    return checked


def _checked_bind(bind: Callable[..., AttentionFn]) -> Callable[..., AttentionFn]:
    """``bind`` that first refuses the workload's mask features the implementation lacks."""

    @functools.wraps(bind)
    def checked(self, workload, device):
        self.refuse_mask_features(workload.mask)
        return bind(self, workload, device)

    return checked


def _bind_from_forward(forward: Callable[..., torch.Tensor]) -> Callable[..., AttentionFn]:
    """``bind`` derived from a class's own (unchecked) ``forward``: the callable to time is
    ``forward`` with the workload's ``causal``, ``scale`` and mask, without the contract's check
    on every call."""

    def bind(self, workload: Workload, device: torch.device) -> AttentionFn:
        mask = workload.mask if workload.mask.features else None
        causal, scale = workload.causal, workload.scale
        kwargs = {"mask": mask} if mask is not None else {}
        call = types.MethodType(forward, self)

        def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return call(q, k, v, causal=causal, scale=scale, **kwargs)

        return attention

    bind.__doc__ = "The callable to time: ``forward`` bound to the workload (derived)."
    return bind


def _forward_from_bind(bind: Callable[..., AttentionFn]) -> Callable[..., torch.Tensor]:
    """``forward`` derived from a class's own (unchecked) ``bind``: the tensors' workload
    (:func:`~attnbench.workload.workload_of`: the call's scale and mask) bound on their device
    (kept, when the class keeps ``forward_cache`` bound callables), then called."""

    def forward(self, q, k, v, *, causal, scale, mask=None):
        workload = workload_of(q, k, v, causal=causal, scale=scale, mask=mask)
        return self._bound(bind, workload, q.device)(q, k, v)

    forward.__doc__ = "Attention through what ``bind`` returns for these tensors (derived)."
    return forward


class Implementation:
    """Base class: subclass it, set the class attributes, write ``forward`` (or ``bind``, when
    set-up must stay out of the timed call; never both), and register it."""

    name: ClassVar[str]
    family: ClassVar[str]  # "reference", "pytorch", "sdpa", "in-house", ...
    description: ClassVar[str] = ""
    #: dtypes (short names) supported per device type; a device type absent here is unsupported
    dtypes: ClassVar[dict[str, frozenset[str]]] = {"cpu": ALL_DTYPES, "cuda": ALL_DTYPES}
    #: why a dtype it does not support is unsupported (said with the reason)
    dtype_notes: ClassVar[dict[str, str]] = {"fp8": "no float8 path"}
    max_head_dim: ClassVar[int | None] = None
    head_dim_multiple: ClassVar[int] = 1
    supports_backward: ClassVar[bool] = True
    supports_v_head_dim: ClassVar[bool] = True  # head_dim of V may differ from that of Q/K
    #: mask features beyond causal/full it handles: "window", "documents", "alibi"
    mask_features: ClassVar[frozenset[str]] = frozenset()
    #: optional Python modules this implementation needs (checked without importing)
    requires: ClassVar[tuple[str, ...]] = ()
    #: True when the first call compiles (torch.compile, Inductor): seconds per shape on a CPU
    compiles: ClassVar[bool] = False
    #: False for implementations that are not contenders (the float64 reference)
    benchmarked: ClassVar[bool] = True
    #: True: on a GPU, left out of each commit's default asv run and measured by the nightly
    #: one (``ATTNBENCH_IMPLS=all``) or on request: its kernels are another implementation's,
    #: or it compiles for seconds a shape (docs/results.md, one commit's GPU run in minutes)
    nightly_only: ClassVar[bool] = False
    #: True when QKᵀ leaves the matmul in the input dtype (plain PyTorch): fp16/bf16 scores are
    #: rounded before the softmax, which loses accuracy once q·k is large (``check``: "lossy")
    rounds_scores: ClassVar[bool] = False
    #: bound callables the derived ``forward`` keeps (least recently used dropped), keyed by
    #: workload and device: for a ``bind`` whose set-up is costly (a compile); 0: none kept
    forward_cache: ClassVar[int] = 0
    #: which of the two this class (or the nearest ancestor that writes one) writes: "forward",
    #: "bind" or "both"; None: neither yet (an abstract base, which has no ``name``)
    _writes: ClassVar[str | None] = None

    def __init_subclass__(cls, *, forward_and_bind: str = "", **kwargs) -> None:
        """Wraps each ``forward`` and ``bind`` the class writes in the contract's check and
        derives the other. ``forward_and_bind``: why this class must write both (a reason
        is required; the class writes both then, and neither is derived)."""
        super().__init_subclass__(**kwargs)
        own = {m: vars(cls)[m] for m in ("forward", "bind") if m in vars(cls)}  # as written
        written = list(own)
        if len(written) == 2 and not forward_and_bind:
            raise TypeError(
                f"{cls.__qualname__} writes both forward and bind: write one, the base class "
                "derives the other (forward for a simple backend, bind when set-up must stay "
                "out of the timed call)"
            )
        if forward_and_bind and len(written) != 2:
            raise TypeError(f"{cls.__qualname__}: forward_and_bind given, but not both written")
        if "forward" in own:
            cls.forward = _checked_forward(own["forward"])  # type: ignore[method-assign]
            if "bind" not in own:
                cls.bind = _checked_bind(_bind_from_forward(own["forward"]))  # type: ignore[method-assign]
        if "bind" in own:
            cls.bind = _checked_bind(own["bind"])  # type: ignore[method-assign]
            if "forward" not in own:
                cls.forward = _checked_forward(_forward_from_bind(own["bind"]))  # type: ignore[method-assign]
        if written:
            cls._writes = "both" if len(written) == 2 else written[0]
        if cls._writes is None and hasattr(cls, "name"):
            raise TypeError(
                f"{cls.__qualname__} ({cls.name!r}) writes neither forward nor bind: write one "
                "(forward for a simple backend, bind when set-up must stay out of the timed call)"
            )

    def check_call(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        causal: bool,
        mask: MaskSpec | None = None,
    ) -> None:
        """The input contract of a direct call; raises saying what is wrong."""
        check_tensors(q, k, v, causal=causal, mask=mask)
        if mask is not None:
            self.refuse_mask_features(mask)

    def refuse_mask_features(self, mask: MaskSpec) -> None:
        """:class:`UnsupportedError` for a mask feature this implementation does not handle."""
        missing = sorted(mask.features - self.mask_features)
        if missing:
            lacks = "; ".join(f"no support for {FEATURE_NAMES[f]}" for f in missing)
            raise UnsupportedError(f"{self.name}: {lacks}")

    def availability(self) -> str | None:
        """Why this implementation cannot be used at all on this machine, or ``None``."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            return f"needs the optional package(s) {', '.join(missing)}, not installed"
        return None

    def device_problem(self, device: torch.device) -> str | None:
        """Why this implementation can run nothing at all on ``device``, or ``None``: the
        package is missing or broken, the device type or GPU generation is not served.
        Override (calling ``super()``) for device-wide checks beyond ``availability``."""
        unavailable = self.availability()
        if unavailable:
            return unavailable
        if device.type not in self.dtypes:
            need = " or ".join(sorted(self.dtypes))
            return f"needs a {need.upper()} device" if len(self.dtypes) == 1 else f"runs on {need}"
        return None

    def unsupported_reasons(self, workload: Workload, device: torch.device) -> list[str]:
        """Every reason this cannot run ``workload`` on ``device``; empty if it can."""
        reasons = []
        problem = self.device_problem(device)
        if problem:
            return [problem]
        supported = self.dtypes[device.type]
        if workload.dtype not in supported:
            note = self.dtype_notes.get(workload.dtype)
            reasons.append(
                f"dtype {workload.dtype} unsupported on {device.type} "
                f"(supports {', '.join(sorted(supported))})" + (f": {note}" if note else "")
            )
        else:
            problem = dtype_problem(device, workload.torch_dtype)
            if problem:
                reasons.append(problem)
        for dim in {workload.head_dim, workload.dv}:
            if self.max_head_dim is not None and dim > self.max_head_dim:
                reasons.append(f"head_dim {dim} > {self.max_head_dim}")
            if dim % self.head_dim_multiple:
                reasons.append(f"head_dim {dim} is not a multiple of {self.head_dim_multiple}")
        if workload.dv != workload.head_dim and not self.supports_v_head_dim:
            reasons.append(
                f"head_dim of V ({workload.dv}) differs from that of Q/K ({workload.head_dim})"
            )
        if workload.has_backward and not self.supports_backward:
            reasons.append("no backward pass (forward only)")
        for feature in sorted(workload.mask.features - self.mask_features):
            reasons.append(f"no support for {FEATURE_NAMES[feature]}")
        return reasons + self.extra_reasons(workload, device)

    def extra_reasons(self, workload: Workload, device: torch.device) -> list[str]:
        """Reasons beyond the declared data; override for backend-specific rules."""
        return []

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        causal: bool,
        scale: float,
        mask: MaskSpec | None = None,
    ) -> torch.Tensor:
        """Attention output in the canonical layout; differentiable when backward is supported.
        ``mask`` is ``None`` unless the workload uses one of ``mask_features``. Write this, or
        ``bind``: the base class derives the other."""
        raise NotImplementedError(f"{type(self).__qualname__} writes neither forward nor bind")

    def bind(self, workload: Workload, device: torch.device) -> AttentionFn:
        """The callable to time for ``workload`` (untimed set-up happens here, once). Write
        this, or ``forward``: the base class derives the other."""
        raise NotImplementedError(f"{type(self).__qualname__} writes neither forward nor bind")

    def _bound(
        self, bind: Callable[..., AttentionFn], workload: Workload, device: torch.device
    ) -> AttentionFn:
        """``bind(self, workload, device)``, kept for the next call of the derived ``forward``
        when the class keeps ``forward_cache`` bound callables."""
        if not self.forward_cache:
            return bind(self, workload, device)
        cache: OrderedDict = self.__dict__.setdefault("_forward_cache", OrderedDict())
        key = (bind, workload, device)
        fn = cache.get(key)
        if fn is None:
            fn = cache[key] = bind(self, workload, device)
            while len(cache) > self.forward_cache:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return fn

    def config(self, workload: Workload, device: torch.device) -> dict | None:
        """The kernel configuration chosen for ``workload`` (tiles, warps...), if any: recorded
        with each result so that a change of configuration shows in history."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
