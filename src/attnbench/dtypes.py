"""The dtypes attnbench knows, by short name (the one used in workload names)."""

from __future__ import annotations

import torch

from .errors import InvalidWorkloadError

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp64": torch.float64,
}


def to_torch(name: str) -> torch.dtype:
    """The torch dtype of a short name such as ``"bf16"``."""
    try:
        return DTYPES[name]
    except KeyError:
        raise InvalidWorkloadError(f"unknown dtype {name!r} (known: {', '.join(DTYPES)})") from None


def itemsize(name: str) -> int:
    return to_torch(name).itemsize
