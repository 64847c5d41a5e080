"""What the Triton kernels cost in registers, spills and shared memory, compiled for a GPU
that need not be here (default sm_90, the H100), for each configuration of a list.

    python tools/triton_resources.py            # the configs table and the bench's candidates
    python tools/triton_resources.py --arch 100 # another architecture

Compiles with ``triton.compile`` (no device needed: Triton ships ptxas) and reads the cubin's
resource usage with the bundled ``cuobjdump``. Pointer and integer arguments get the
16-divisibility hint a launch on 16-aligned, 16-multiple shapes gets. A spill (``stack`` > 0)
or shared memory beyond the card's limit (227 KiB on the H100: the launch fails) rules a
configuration out before any timing; the rest is for ``tools/triton_bench.py`` to measure.
The Triton here may differ from the GPU machine's: say which when quoting the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from attnbench.kernels import triton_decode as td
from attnbench.kernels import triton_flash as tf
from attnbench.kernels.configs import BwdConfig, DecodeConfig, FwdConfig

SMEM_LIMIT = 227 * 1024
POINTERS = {
    "Q": "*bf16", "K": "*bf16", "V": "*bf16", "Out": "*bf16", "DO": "*bf16", "DK": "*bf16",
    "DV": "*bf16", "DQ": "*bf16", "LSE": "*fp32", "DELTA": "*fp32", "PART_O": "*fp32",
    "PART_LSE": "*fp32",
}  # fmt: skip
NO_HINT = {"q_heads", "kv_heads", "group"}  # head counts: not multiples of 16 in general


def _signature(fn, consts: dict, descriptors: dict | None = None) -> dict:
    sig = {}
    for name in fn.arg_names:
        if name in consts:
            sig[name] = "constexpr"
        elif descriptors and name in descriptors:
            sig[name] = descriptors[name]
        elif name in POINTERS:
            sig[name] = POINTERS[name]
        else:
            sig[name] = "fp32" if name in ("qk_scale", "sm_scale") else "i32"
    return sig


def resources(fn, consts: dict, warps: int, stages: int, arch: int, descriptors=None) -> dict:
    sig = _signature(fn, consts, descriptors)
    attrs = {
        (i,): [["tt.divisibility", 16]]
        for i, (name, kind) in enumerate(sig.items())
        if kind.startswith("*") or (kind == "i32" and name not in NO_HINT)
    }
    src = ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs)
    try:
        kernel = triton.compile(
            src,
            target=GPUTarget("cuda", arch, 32),
            options={"num_warps": warps, "num_stages": stages},
        )
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        usage = subprocess.run([cuobjdump, "-res-usage", f.name], capture_output=True, text=True)
    found = dict(re.findall(r"(REG|STACK):(\d+)", usage.stdout))
    ttgir = kernel.asm["ttgir"]
    return {
        "regs": int(found.get("REG", -1)),
        "stack": int(found.get("STACK", -1)),
        "smem": kernel.metadata.shared,
        "pipelined": "async_copy_global_to_local" in ttgir or "async_tma_copy" in ttgir,
    }


def rows(arch: int, head_dims: tuple[int, ...]):
    fwd = [FwdConfig(128, 64, 8, 3), FwdConfig(128, 128, 8, 3), FwdConfig(128, 64, 4, 4),
           FwdConfig(64, 64, 4, 2), FwdConfig(128, 64, 8, 2),
           FwdConfig(128, 128, 8, 2)]  # fmt: skip
    bwd = [BwdConfig(32, 128, 128, 64, 8, 2), BwdConfig(64, 128, 128, 64, 8, 2),
           BwdConfig(32, 128, 128, 32, 8, 2), BwdConfig(64, 64, 64, 64, 8, 2),
           BwdConfig(32, 64, 64, 32, 8, 1), BwdConfig(64, 128, 128, 64, 8, 3)]  # fmt: skip
    for d in head_dims:
        for c in fwd:
            for tma in (False, True):
                consts = {"HEAD_DIM": d, "V_DIM": d, "BLOCK_M": c.block_m,
                          "BLOCK_N": c.block_n, "CAUSAL": True, "USE_DESC": tma}  # fmt: skip
                desc = None
                if tma:
                    desc = {"Q": f"tensordesc<bf16[{c.block_m},{d}]>",
                            "K": f"tensordesc<bf16[{c.block_n},{d}]>",
                            "V": f"tensordesc<bf16[{c.block_n},{d}]>"}  # fmt: skip
                label = f"{c.block_m}x{c.block_n} w{c.num_warps} s{c.num_stages}"
                label += " tma" if tma else ""
                r = resources(tf._fwd_kernel, consts, c.num_warps, c.num_stages, arch, desc)
                yield "fwd", d, label, r
        for c in bwd:
            for name, fn, m, n in (
                ("bwd dK/dV", tf._bwd_dkdv_kernel, c.block_m1, c.block_n1),
                ("bwd dQ", tf._bwd_dq_kernel, c.block_m2, c.block_n2),
            ):
                consts = {"HEAD_DIM": d, "V_DIM": d, "BLOCK_M": m, "BLOCK_N": n, "CAUSAL": True}
                r = resources(fn, consts, c.num_warps, c.num_stages, arch)
                yield name, d, f"{m}x{n} w{c.num_warps} s{c.num_stages}", r
    for c in (DecodeConfig(64, 1, 4, 3), DecodeConfig(128, 1, 4, 2), DecodeConfig(64, 1, 8, 4)):
        consts = {"HEAD_DIM": 128, "V_DIM": 128, "BLOCK_G": 16, "BLOCK_N": c.block_n}
        r = resources(td._decode_split_kernel, consts, c.num_warps, c.num_stages, arch)
        yield "decode", 128, f"n{c.block_n} w{c.num_warps} s{c.num_stages}", r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability x10 (90: H100)")
    parser.add_argument("--head-dims", default="64,128,256")
    args = parser.parse_args(argv)
    dims = tuple(int(d) for d in args.head_dims.split(","))
    print(f"triton {triton.__version__}, sm_{args.arch}, bf16, causal")
    print(f"{'kernel':10} {'D':>4} {'config':22} {'regs':>5} {'stack':>6} {'smem KiB':>9}  note")
    for kernel, d, label, r in rows(args.arch, dims):
        if "error" in r:
            print(f"{kernel:10} {d:>4} {label:22} {'-':>5} {'-':>6} {'-':>9}  {r['error']}")
            continue
        notes = []
        if r["stack"] > 0:
            notes.append("spills")
        if r["smem"] > SMEM_LIMIT:
            notes.append("smem over the H100 limit")
        if not r["pipelined"]:
            notes.append("loads not pipelined")
        print(f"{kernel:10} {d:>4} {label:22} {r['regs']:>5} {r['stack']:>6} "
              f"{r['smem'] / 1024:>9.0f}  {', '.join(notes)}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
