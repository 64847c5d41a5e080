"""Peak memory of a call: host resident set (Linux) and GPU bytes allocated."""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..devices import synchronize

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int | None:
    """A ``VmXXX:`` line of /proc/self/status in bytes (Linux), else ``None``."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def host_peak_rss() -> int:
    """Peak resident set of this process in bytes (since the last :func:`reset_host_peak`)."""
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def host_rss() -> int | None:
    """Current resident set of this process in bytes (Linux), else ``None``."""
    return _status_bytes("VmRSS")


def reset_host_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0); False where that is impossible."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class MemoryStats:
    host_peak_rss: int  # bytes, whole process, during the call
    gpu_peak_allocated: int | None  # bytes held by tensors at the peak, inputs included
    gpu_extra_allocated: int | None  # of which allocated by the call itself
    host_extra_rss: int | None = None  # host peak above the resident set before the call


def measure_memory(fn: Callable[[], object], device: torch.device) -> MemoryStats:
    """Run ``fn`` once and report its peaks."""
    synchronize(device)
    before_rss = host_rss() if reset_host_peak() else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    result = fn()
    synchronize(device)
    del result
    host_peak = host_peak_rss()
    host_extra = None if before_rss is None else max(0, host_peak - before_rss)
    if device.type != "cuda":
        return MemoryStats(host_peak, None, None, host_extra)
    peak = torch.cuda.max_memory_allocated(device)
    return MemoryStats(host_peak, peak, peak - before, host_extra)
