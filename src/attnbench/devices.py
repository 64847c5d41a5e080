"""Which device to run on, what it can do, and how to wait for it."""

from __future__ import annotations

import torch

from .errors import AttnbenchError


def default_device() -> torch.device:
    """CUDA when a GPU is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """A torch device from a name (``None``: the default); a clear error for one that isn't here."""
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise AttnbenchError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AttnbenchError(f"device {device!r} asked for, but no CUDA device is visible")
    if dev.type not in ("cpu", "cuda"):
        raise AttnbenchError(f"device type {dev.type!r} is not supported (cpu or cuda)")
    return dev


def dtype_problem(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why ``device`` cannot compute in ``dtype``, or ``None`` when it can."""
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return f"{torch.cuda.get_device_name(device)} has no bf16 support"
    if device.type == "cuda" and dtype == torch.float8_e4m3fn:
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) < (8, 9):
            return f"fp8 tensor cores need sm_89 or newer; this GPU is sm_{major}{minor}"
    return None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
