"""What counts as correct: the tolerance per dtype, the input magnitudes checked, and the check
of one implementation on one workload (``attnbench check``)."""

from __future__ import annotations

import math

import torch

from ..case import prepare
from ..errors import UnsupportedError
from ..impls.base import HALF, Implementation
from ..workload import Workload
from .accuracy import TOLERANCES, ErrorStats

#: input magnitudes (Q, K and V drawn standard-normal, times this) every pair is checked at:
#: x30 is where scores rounded to bf16 or fp16 before the softmax lose accuracy (q·k ~ 7e3)
MAGNITUDES = (1e-3, 1.0, 30.0, 1e3)
#: beyond x1 the output grows with V and a score's rounding error with q·k, so its absolute
#: error grows as magnitude³: only the relative error is judged; at 1e3 (near one-hot) 10x looser
LARGE_MAGNITUDE_FACTOR = 10.0


def tolerance(dtype: str) -> float:
    """The largest relative-norm error ``||out - ref|| / ||ref||`` allowed at ``dtype``."""
    try:
        return TOLERANCES[dtype][0]
    except KeyError:
        known = ", ".join(TOLERANCES)
        raise ValueError(f"no tolerance for dtype {dtype!r} (known: {known})") from None


def bounds(dtype: str, magnitude: float) -> tuple[float, float]:
    """``(relative norm, max abs)`` allowed for the output at this input magnitude."""
    rel, abs_ = tolerance(dtype), TOLERANCES[dtype][1]
    if magnitude >= 1e3:
        return rel * LARGE_MAGNITUDE_FACTOR, math.inf
    return (rel, math.inf) if magnitude > 1.0 else (rel, abs_)


def passes(err: ErrorStats, dtype: str, magnitude: float) -> bool:
    """Whether an output error at this input magnitude is within the dtype's tolerance."""
    return err.within_bounds(*bounds(dtype, magnitude))


def declared_lossy(impl: Implementation, dtype: str, magnitude: float) -> bool:
    """A miss that ``impl`` declares (``rounds_scores``: plain PyTorch's QKᵀ in the input
    dtype) at half precision and a large magnitude: shown as "lossy", not failed."""
    return impl.rounds_scores and dtype in HALF and magnitude > 1.0


def _describe(err: ErrorStats) -> str:
    return f"max abs {err.max_abs:.2e}, rel {err.rel_norm:.2e}, {err.nonfinite} NaN/Inf"


def check_pair(
    impl: Implementation, workload: Workload, device: torch.device
) -> tuple[str, list[str]]:
    """``("ok" | "lossy" | "FAIL" | "n/a" | "skip", notes)`` for one pair: "lossy" when the
    only misses are ones the implementation declares (:func:`declared_lossy`)."""
    reasons = impl.unsupported_reasons(workload, device)
    if reasons:
        return "n/a", ["; ".join(reasons)]
    dtype, notes, failed, lossy = workload.dtype, [], False, False
    for m in MAGNITUDES:
        try:
            case = prepare(impl, workload, device, magnitude=m)
        except UnsupportedError as exc:
            # out of memory is the machine's limit: a skip. Any other failure of a pair the
            # implementation declares supported is a bug in it or in its declaration: a FAIL
            if "out of memory" in str(exc):
                return "skip", [str(exc)]
            return "FAIL", [f"declared supported, but failed: {exc}"]
        err = case.forward_error()
        if not passes(err, dtype, m):
            if declared_lossy(impl, dtype, m):
                lossy = True
            else:
                failed = True
            notes.append(f"x{m:g}: {_describe(err)}")
        if m == 1.0:
            if not case.deterministic():
                # reported, not failed: atomics may legitimately reorder sums between calls
                notes.append("not deterministic")
            if workload.has_backward:
                for name, gerr in case.gradient_errors().items():
                    if not gerr.within(dtype):
                        failed = True
                        notes.append(f"{name}: {_describe(gerr)}")
        case = None
    return ("FAIL" if failed else "lossy" if lossy else "ok"), notes
