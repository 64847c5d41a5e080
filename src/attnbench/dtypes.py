"""The dtypes attnbench knows, by short name (the one used in workload names).

``fp8`` is float8 e4m3 (``torch.float8_e4m3fn``), the format fp8 attention kernels take Q, K
and V in (FlashAttention-3 on Hopper, flash-attn-4 on Blackwell); their output is bf16
(:data:`OUTPUT_DTYPES`). The inputs are the numbers the kernel sees: the float64 reference
is computed from the same fp8 values, so errors measure the kernel's arithmetic (P rounded to
fp8 before the PV product, say), not the rounding of the inputs.
"""

from __future__ import annotations

import torch

from .errors import InvalidWorkloadError

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp64": torch.float64,
    "fp8": torch.float8_e4m3fn,
}
#: the output dtype where it is not the inputs'
OUTPUT_DTYPES: dict[str, str] = {"fp8": "bf16"}
#: dtypes that no backward pass takes (fp8 attention kernels are forward-only)
FORWARD_ONLY: frozenset[str] = frozenset({"fp8"})


def to_torch(name: str) -> torch.dtype:
    """The torch dtype of a short name such as ``"bf16"``."""
    try:
        return DTYPES[name]
    except KeyError:
        raise InvalidWorkloadError(f"unknown dtype {name!r} (known: {', '.join(DTYPES)})") from None


def itemsize(name: str) -> int:
    return to_torch(name).itemsize


_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def short_name(dtype: torch.dtype) -> str:
    """The short name of a torch dtype, such as ``"bf16"`` (the inverse of :func:`to_torch`)."""
    try:
        return _NAMES[dtype]
    except KeyError:
        known = ", ".join(f"{n} ({t})" for n, t in DTYPES.items())
        raise InvalidWorkloadError(f"dtype {dtype} has no short name (known: {known})") from None


def output_torch_dtype(dtype: torch.dtype) -> torch.dtype:
    """:func:`output_dtype` for a torch dtype (one without a short name: itself)."""
    name = _NAMES.get(dtype)
    return to_torch(OUTPUT_DTYPES[name]) if name in OUTPUT_DTYPES else dtype


def output_dtype(name: str) -> str:
    """The short name of the output's dtype for inputs of dtype ``name``."""
    to_torch(name)
    return OUTPUT_DTYPES.get(name, name)
