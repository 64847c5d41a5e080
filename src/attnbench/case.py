"""A benchmark case: one implementation on one workload on one device, ready to call.

:func:`prepare` checks support, makes inputs and calls the step once (warm-up, JIT); anything
that stops the case becomes an :class:`UnsupportedError` whose message says why. The asv
suite, the CLI and the tests all measure through the functions here.
"""

from __future__ import annotations

import gc
import re
import time
import warnings
from dataclasses import dataclass, field

import torch

from .catalogue import get_workload
from .devices import resolve_device, synchronize
from .errors import UnsupportedError
from .impls import Implementation, get_impl
from .impls.base import AttentionFn
from .inputs import Inputs, make_inputs
from .measure.accuracy import ErrorStats, compare, is_deterministic
from .measure.memory import MemoryStats, measure_memory
from .measure.timing import TimingStats, time_call
from .workload import Workload

MODES = ("forward", "forward_backward")
FULL_CHECK_PAIRS = 1 << 24  # B*Hq*Sq*Skv up to which errors use the whole output
SAMPLE_ROWS = 256  # otherwise: batch 0, KV head 0's query heads, the last rows


@dataclass
class Case:
    impl: Implementation
    workload: Workload
    device: torch.device
    inputs: Inputs
    fn: AttentionFn | None = None  # impl.bind(workload, device): what is timed
    #: wall time of bind() plus the first call (compilation, JIT, autotuning): never in timings
    first_call_seconds: float | None = None
    config: dict | None = field(default=None)  # the kernel configuration the impl chose
    seed: int = 0  # what made the inputs (cases with equal seeds share a reference output)
    magnitude: float = 1.0

    def __post_init__(self) -> None:
        if self.fn is None:
            self.fn = self.impl.bind(self.workload, self.device)

    @property
    def label(self) -> str:
        return f"{self.impl.name} on {self.workload.name} ({self.device.type})"

    def forward(self) -> torch.Tensor:
        i = self.inputs
        with torch.set_grad_enabled(self.workload.has_backward):
            return self.fn(i.q, i.k, i.v)

    def forward_backward(self) -> tuple[torch.Tensor, ...]:
        if not self.workload.has_backward:
            raise UnsupportedError(f"{self.workload.name} is not a train workload")
        out = self.forward()
        return torch.autograd.grad(out, self.inputs.leaves(), self.inputs.grad_out)

    def step(self, mode: str = "forward"):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
        return self.forward() if mode == "forward" else self.forward_backward()

    def call_synchronized(self, mode: str = "forward") -> None:
        """One step, waiting for the device: what a wall-clock timer may time."""
        self.step(mode)
        synchronize(self.device)

    # -- measurements ----------------------------------------------------------------------
    def time(self, mode: str = "forward", **kwargs: float) -> TimingStats:
        return time_call(lambda: self.step(mode), self.device, **kwargs)

    def memory(self, mode: str = "forward") -> MemoryStats:
        return measure_memory(lambda: self.step(mode), self.device)

    def deterministic(self) -> bool:
        """Same inputs twice give the same output bits."""
        return is_deterministic(self.forward)

    def forward_error(self, reference: dict | None = None) -> ErrorStats:
        """Output error against the float64 reference (on a sample of a large workload).

        ``reference``: a dict shared by cases of the same inputs (same workload, seed and
        magnitude, as in a sweep) that keeps the reference output, computed once."""
        w, i = self.workload, self.inputs
        with torch.no_grad():
            out = self.fn(i.q, i.k, i.v)
            q, k, v = i.q, i.k, i.v
            if w.batch * w.q_heads * w.q_len * w.kv_len > FULL_CHECK_PAIRS:
                # the last rows keep their (bottom-right) masks; ALiBi slopes need every head
                rows = slice(max(0, w.q_len - SAMPLE_ROWS), w.q_len)
                heads, kv = (slice(None),) * 2 if w.alibi else (slice(w.group_size), slice(1))
                q, k, v = q[:1, heads, rows], k[:1, kv], v[:1, kv]
                out = out[:1, heads, rows]
            key = (w.name, i.q.device.type, self.seed, self.magnitude)
            if reference is None or key not in reference:
                expected = _reference(q, k, v, w)
                if reference is not None:
                    reference[key] = expected
            expected = reference[key] if reference is not None else expected
        return compare(out, expected)

    def gradient_errors(self) -> dict[str, ErrorStats]:
        """dQ, dK, dV against float64 autograd of the reference (whole tensors: keep it small)."""
        i = self.inputs
        actual = self.forward_backward()
        leaves = [t.detach().to("cpu", torch.float64).requires_grad_() for t in i.leaves()]
        ref_out = _reference(*leaves, self.workload)
        expected = torch.autograd.grad(ref_out, leaves, i.grad_out.to("cpu", torch.float64))
        return {
            n: compare(a, e) for n, a, e in zip(("dq", "dk", "dv"), actual, expected, strict=True)
        }


def _reference(q, k, v, workload: Workload) -> torch.Tensor:
    """The float64 reference on ``workload``'s tensors or on a sample of its last query rows.
    The workload was checked whole; a sample of packed documents has fewer query rows than
    keys, which the tensor contract refuses from callers, so the check is not repeated here."""
    mask = workload.mask if workload.mask.features else None
    impl = get_impl("reference")
    forward = type(impl).forward
    forward = getattr(forward, "__wrapped__", forward)  # without the contract's check
    return forward(impl, q, k, v, causal=workload.causal, scale=workload.scale, mask=mask)


def _tidy(text: str) -> str:
    """One line, without PyTorch's "(Triggered internally at file:line.)" notes."""
    return " ".join(re.sub(r"\(Triggered internally at [^)]*\)", "", text).split()).strip(" .;:")


def _why(exc: BaseException, caught: list[warnings.WarningMessage]) -> str:
    if isinstance(exc, torch.OutOfMemoryError):
        return f"out of memory ({_tidy(str(exc)).split('. ')[0]})"
    text = _tidy(str(exc))
    details = [_tidy(str(w.message)) for w in caught if w.category is UserWarning]
    details = [d for d in details if d]
    if details:
        text += " [" + "; ".join(dict.fromkeys(details)) + "]"
    return f"{type(exc).__name__}: {text[:600]}"


def prepare(
    impl: str | Implementation,
    workload: str | Workload,
    device: str | torch.device | None = None,
    *,
    seed: int = 0,
    magnitude: float = 1.0,
    mode: str = "forward",
) -> Case:
    """A ready :class:`Case`, or :class:`UnsupportedError` saying why it cannot run here."""
    impl = get_impl(impl) if isinstance(impl, str) else impl
    workload = get_workload(workload) if isinstance(workload, str) else workload
    device = resolve_device(device)
    reasons = impl.unsupported_reasons(workload, device)
    if reasons:
        raise UnsupportedError(f"{impl.name}: {'; '.join(reasons)}")
    if mode == "forward_backward" and not workload.has_backward:
        raise UnsupportedError(f"{workload.name}: forward_backward needs a train workload")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            inputs = make_inputs(workload, device, seed=seed, magnitude=magnitude)
            synchronize(device)
            start = time.perf_counter()
            config = impl.config(workload, device)
            case = Case(
                impl, workload, device, inputs, config=config, seed=seed, magnitude=magnitude
            )
            out = case.step(mode)
            synchronize(device)
            case.first_call_seconds = time.perf_counter() - start
    except Exception as exc:
        reason = _why(exc, caught)
        case = out = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise UnsupportedError(f"{impl.name} on {workload.name}: {reason}") from exc
    first = out if isinstance(out, torch.Tensor) else out[0]
    expected = (workload.batch, workload.q_heads, workload.q_len, workload.dv)
    if mode == "forward" and tuple(first.shape) != expected:
        raise UnsupportedError(
            f"{impl.name} returned shape {tuple(first.shape)}, expected {expected} (layout bug)"
        )
    return case
