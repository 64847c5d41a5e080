"""Helpers for adapters of external packages: importing them with a precise reason on failure,
and the conversions every (B, S, H, D) backend needs at its edges."""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
from types import ModuleType

import torch

MAX_REASON = 240  # characters of an import error quoted in a reason


def trim(text: str, limit: int = MAX_REASON) -> str:
    """One line, at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _installed(module: str) -> bool:
    top = module.split(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return top in __import__("sys").modules


@functools.cache
def load(module: str, distribution: str) -> tuple[ModuleType | None, str | None]:
    """``(module, None)``, or ``(None, reason)`` saying whether the package is absent or
    installed but broken (its CUDA extension failing to load, quoted). Cached: Python retries
    a failed import from scratch each time (seconds for xFormers, per case of a sweep)."""
    if not _installed(module):
        return None, f"needs {distribution} (module {module}), not installed"
    try:
        return importlib.import_module(module), None
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None, f"needs {distribution} (module {module}), not installed"
        problem = f"{type(exc).__name__}: {trim(str(exc))}"
    except Exception as exc:  # ImportError, OSError of a CUDA extension, version checks...
        problem = f"{type(exc).__name__}: {trim(str(exc))}"
    have = version(distribution)
    label = f"{distribution} {have}" if have else distribution
    return None, f"{label} is installed but {module} fails to import ({problem})"


def capability_problem(
    device: torch.device, majors: tuple[int, ...], what: str, need: str
) -> str | None:
    """Why ``device`` cannot run a kernel built for compute capability ``majors``, or ``None``."""
    if device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    if major in majors:
        return None
    return f"{what} needs {need}; this GPU is sm_{major}{minor}"


def first(result: object) -> torch.Tensor:
    """The output of a call that returns ``out`` or a tuple starting with it."""
    return result[0] if isinstance(result, tuple | list) else result  # type: ignore[index,return-value]


def bshd(t: torch.Tensor) -> torch.Tensor:
    """Canonical (B, H, S, D) to (B, S, H, D): a view, last dimension still contiguous."""
    return t.transpose(1, 2)


def packed(t: torch.Tensor) -> torch.Tensor:
    """Canonical (B, H, S, D) to varlen's (B*S, H, D) (a copy)."""
    b, h, s, d = t.shape
    return t.transpose(1, 2).reshape(b * s, h, d)


def unpacked(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Varlen's (B*S, H, D) back to canonical (B, H, S, D) (a view)."""
    total, h, d = t.shape
    return t.view(batch, total // batch, h, d).transpose(1, 2)


def cu_seqlens(doc_lens: tuple[int, ...], batch: int, device: torch.device) -> torch.Tensor:
    """Cumulative int32 offsets of every document of every batch row (same packing per row)."""
    lens = torch.tensor(list(doc_lens) * batch, dtype=torch.int32)
    cu = torch.zeros(len(lens) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(lens, 0)
    return cu.to(device)
