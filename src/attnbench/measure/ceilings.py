"""Ceilings measured on this machine: what a square matmul and a large copy reach.

They stand in for a spec sheet on cards (and CPUs) that :mod:`attnbench.measure.peaks` does not
know, so a roofline can still be drawn from something measured rather than invented.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..dtypes import to_torch
from .timing import time_call

#: (matmul side, copy MiB) per device type: big enough to be bandwidth / compute bound, small
#: enough to cost a second or two
SIZES = {"cuda": (8192, 1024), "cpu": (1024, 256)}


@dataclass(frozen=True)
class Ceilings:
    matmul_tflops: float  # median of n x n @ n x n, 2 n^3 FLOPs
    copy_gbps: float  # median of dst.copy_(src), bytes read + bytes written
    how: str

    def as_dict(self) -> dict:
        return asdict(self)


def _matmul_seconds(n: int, dtype: torch.dtype, device: torch.device) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    if dtype == torch.float8_e4m3fn:  # no torch.mm for float8: the scaled GEMM, bf16 out
        one = torch.ones((), device=device)
        bt = b.t()  # column-major, as _scaled_mm's second operand must be

        def fp8_mm():
            return torch._scaled_mm(a, bt, one, one, out_dtype=torch.bfloat16)

        return time_call(fp8_mm, device).median
    return time_call(lambda: torch.mm(a, b), device).median


def _copy_seconds(nbytes: int, device: torch.device) -> float:
    src = torch.ones(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return time_call(lambda: dst.copy_(src), device).median


def measure_ceilings(device: torch.device | str, dtype: str) -> Ceilings:
    """Time a square matmul and a large device copy in ``dtype`` through ``time_call``."""
    device = torch.device(device)
    n, mib = SIZES.get(device.type, SIZES["cpu"])
    matmul = _matmul_seconds(n, to_torch(dtype), device)
    copy = _copy_seconds(mib * 2**20, device)
    mm = "torch._scaled_mm (bf16 out)" if dtype == "fp8" else "torch.mm"
    how = (
        f"{device.type}: median of {mm} {n}x{n} {dtype} and of a {mib} MiB copy "
        "(read + write counted), attnbench.measure.timing.time_call"
    )
    return Ceilings(2 * n**3 / matmul / 1e12, 2 * mib * 2**20 / copy / 1e9, how)
