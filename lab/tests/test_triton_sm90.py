"""The in-house kernels compiled for sm_90 (the H100) on this CPU machine, with Triton's own
ptxas (``lab/triton_resources.py``): what the GPU will run, checked without one."""

from __future__ import annotations

import pytest

pytest.importorskip("triton")

from attnbench.kernels.flash.configs import DENSE_FWD
from lab import triton_resources as tr


@pytest.mark.parametrize(("inputs", "mma"), [("fp8e4nv", "e4m3.e4m3"), ("bf16", "bf16.bf16")])
def test_dense_forward_uses_hopper_mma_on_its_input_type(inputs, mma):
    """The chooser's dense D=128 configuration on sm_90: both products as wgmma on the input
    type (fp8: e4m3 x e4m3, P rounded to e4m3 in registers; no fallback to mma.sync), no
    spill, within the H100's shared memory, and wgmma reads K and V where TMA put them (fp8 V
    goes transposed: else each V tile is transposed through registers, half the bf16 speed
    on the H200)."""
    c = DENSE_FWD[128]
    r = tr.forward_row(c, 128, 90, causal=True, dense=True, tma=c.tma, inputs=inputs)
    assert "error" not in r, r
    assert r["mma"] == f"wgmma {mma}", r["mma"]
    assert r["stack"] == 0 and r["smem"] <= tr.SMEM_LIMIT, r
    assert r["local_loads"] == 0, r
