"""What the Triton kernels cost in registers, spills and shared memory, compiled for a GPU
that need not be here (default sm_90, the H100), for each configuration of a list.

    python lab/triton_resources.py            # forward (dense, general), backward, decode
    python lab/triton_resources.py --arch 100 # another architecture
    python lab/triton_resources.py --head-dims 128 --only fwd
    python lab/triton_resources.py --head-dims 128 --only variants  # the named variants' backward
    python lab/triton_resources.py --head-dims 128 --only fwd --dtype fp8  # fp8 e4m3 inputs

Compiles ``attnbench.kernels.flash`` with ``triton.compile`` (no device needed: Triton ships
ptxas) and reads the cubin's resource usage with the bundled ``cuobjdump``. Pointer and integer
arguments get the 16-divisibility hint a launch on 16-aligned, 16-multiple shapes gets (head
counts, the window and the split length excepted). A spill (``stack`` > 0) or shared memory
beyond the card's limit (227 KiB on the H100: the launch fails) rules a configuration out
before any timing; the rest is for ``lab/triton_bench.py`` to measure. The Triton here may
differ from the GPU machine's: say which when quoting the figures.
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

from attnbench.kernels.flash.backward import KERNELS as BWD_KERNELS
from attnbench.kernels.flash.configs import (
    VARIANTS,
    BwdConfig,
    FwdConfig,
    choose_bwd_config,
    choose_fwd_config,
)
from attnbench.kernels.flash.forward import KERNELS as FWD_KERNELS

SMEM_LIMIT = 227 * 1024
POINTERS = {
    "Out": "*bf16", "dO": "*bf16", "dK": "*bf16",
    "dV": "*bf16", "dQ": "*bf16", "LSE": "*fp32", "Delta": "*fp32", "dQacc": "*fp32",
    "Opart": "*fp32", "Lpart": "*fp32", "Slopes": "*fp32", "DocStart": "*i32", "DocEnd": "*i32",
    "Counter": "*i32",
}  # fmt: skip
# head counts, the window and the split length: not multiples of 16 in general
NO_HINT = {"Hq", "Hkv", "window", "kv_per_split"}
FLOATS = {"qk_scale", "sm_scale"}


#: Q/K/V's pointer type per ``--dtype`` (fp8: e4m3 in, bf16 out; the rest: POINTERS)
INPUTS = {"bf16": "bf16", "fp8": "fp8e4nv"}


def _signature(fn, consts: dict, descriptors: dict | None = None, inputs: str = "bf16") -> dict:
    sig = {}
    for name in fn.arg_names:
        if name in consts:
            sig[name] = "constexpr"
        elif descriptors and name in descriptors:
            sig[name] = descriptors[name]
        elif name in ("Q", "K", "V"):
            sig[name] = f"*{inputs}"
        elif name in POINTERS:
            sig[name] = POINTERS[name]
        else:
            sig[name] = "fp32" if name in FLOATS else "i32"
    return sig


def resources(
    fn, consts: dict, warps: int, stages: int, arch: int, descriptors=None, inputs: str = "bf16"
) -> dict:
    sig = _signature(fn, consts, descriptors, inputs)
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
        "atomics": _atomics(kernel.asm["ptx"]),
        # tiles copied from shared memory to registers (and back: fp8 V without V_T)
        "local_loads": ttgir.count("ttg.local_load "),
        "mma": _mma(kernel.asm["ptx"]),
    }


def _mma(ptx: str) -> str:
    """The tensor-core instructions' operand types, e.g. ``wgmma e4m3.e4m3`` (Hopper's
    asynchronous MMA on fp8) or ``mma.sync bf16.bf16`` (the pre-Hopper path)."""
    kinds = set(
        re.findall(r"\bwgmma\.mma_async\.sync\.aligned\.m\d+n\d+k\d+\.f32\.(\w+)\.(\w+)", ptx)
    )
    found = [f"wgmma {a}.{b}" for a, b in sorted(kinds)]
    legacy = set(
        re.findall(r"\bmma\.sync\.aligned\.m\d+n\d+k\d+\.\w+\.\w+\.f32\.(\w+)\.(\w+)", ptx)
    )
    found += [f"mma.sync {a}.{b}" for a, b in sorted(legacy)]
    return ", ".join(found)


def _atomics(ptx: str) -> str:
    """The float32 atomic reductions in the PTX, e.g. ``red.v2.f32 x32`` (instruction with its
    vector width, then how many the unrolled code holds): none outside the atomic-dQ path."""
    found = re.findall(r"\b(?:red|atom)(?:\.\w+)*?\.add(?:\.noftz)?((?:\.v\d)?)\.f32", ptx)
    counts: dict[str, int] = {}
    for vec in found:
        key = f"red{vec}.f32"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in sorted(counts.items()))


def bwd_consts(
    m: int, n: int, d: int, *, causal: bool = True, atomic: bool | None = None, kf: bool = False
) -> dict:
    """The backward kernels' constexprs (bf16, D = Dv = ``d``); ``atomic``: the dK/dV kernel's
    ``ATOMIC_DQ`` and ``kf`` its ``KEYS_FIRST`` (``atomic=None``: the dQ kernel, which has
    neither)."""
    consts = {"GROUP": 1, "CAUSAL": causal, "HAS_WINDOW": False, "HAS_DOCS": False,
              "ALIBI": False, "BLOCK_M": m, "BLOCK_N": n, "D": d, "DV": d, "BLOCK_D": d,
              "BLOCK_DV": d, "PREC": "tf32"}  # fmt: skip
    if atomic is not None:
        consts["ATOMIC_DQ"] = atomic
        consts["KEYS_FIRST"] = kf
    return consts


def fwd_consts(
    c: FwdConfig,
    d: int,
    *,
    causal: bool,
    dense: bool,
    tma: bool,
    group: int = 1,
    packed: bool = False,
    split: bool = False,
    dv: int | None = None,
    v_t: bool = False,
    fuse: bool = False,
) -> dict:
    dv = dv or d
    return {
        "GROUP": group, "CAUSAL": causal, "HAS_WINDOW": False, "HAS_DOCS": False,
        "ALIBI": False, "PACKED": packed, "SPLIT": split, "STORE_LSE": True,
        "BLOCK_M": c.block_m, "BLOCK_N": c.block_n, "D": d, "DV": dv,
        "BLOCK_D": triton.next_power_of_2(d), "BLOCK_DV": triton.next_power_of_2(dv),
        "PREC": "tf32", "USE_DESC": tma, "DENSE": dense, "SA": 1, "V_T": v_t, "FUSE": fuse,
    }  # fmt: skip


def fwd_descriptors(c: FwdConfig, d: int, inputs: str = "bf16", v_t: bool = False) -> dict:
    """Q/K/V's descriptor types (``v_t``: V's over V transposed, blocks of (dim, keys))."""
    rows = {"Q": c.block_m, "K": c.block_n, "V": c.block_n}
    out = {name: f"tensordesc<{inputs}[{n},{d}]>" for name, n in rows.items()}
    if v_t:
        out["V"] = f"tensordesc<{inputs}[{d},{c.block_n}]>"
    return out


def forward_row(
    c: FwdConfig, d: int, arch: int, *, causal: bool, dense: bool, tma: bool, inputs: str = "bf16"
):
    v_t = tma and dense and inputs == INPUTS["fp8"]  # as forward.v_transposed_applies
    consts = fwd_consts(c, d, causal=causal, dense=dense, tma=tma, v_t=v_t)
    desc = fwd_descriptors(c, d, inputs, v_t) if tma else None
    return resources(FWD_KERNELS["forward"], consts, c.num_warps, c.num_stages, arch, desc, inputs)


def rows(arch: int, head_dims: tuple[int, ...], only: str | None, inputs: str = "bf16"):
    fwd = [FwdConfig(128, 128, 8, 3), FwdConfig(128, 64, 8, 3), FwdConfig(128, 64, 8, 4),
           FwdConfig(128, 32, 4, 4), FwdConfig(128, 64, 8, 2),
           FwdConfig(128, 32, 8, 3)]  # fmt: skip
    bwd = [BwdConfig(64, 128, 128, 64, 8, 3), BwdConfig(64, 128, 128, 64, 8, 2),
           BwdConfig(32, 128, 128, 64, 8, 2), BwdConfig(32, 64, 64, 32, 8, 1)]  # fmt: skip
    for d in head_dims:
        if only in (None, "fwd"):
            for c in fwd:
                for causal in (True, False):
                    for dense, tma in ((True, True), (True, False), (False, False)):
                        r = forward_row(c, d, arch, causal=causal, dense=dense, tma=tma,
                                        inputs=inputs)  # fmt: skip
                        label = f"{c.block_m}x{c.block_n} w{c.num_warps} s{c.num_stages}"
                        label += " tma" if tma else ""
                        kind = "fwd dense" if dense else "fwd general"
                        yield kind, d, label, "causal" if causal else "full", r
        if only in (None, "bwd") and inputs == "bf16":  # fp8 is forward-only
            for c in bwd:
                for name, fn, m, n, atomic in (
                    ("bwd dK/dV", BWD_KERNELS["dkdv"], c.block_m1, c.block_n1, False),
                    ("bwd dQ", BWD_KERNELS["dq"], c.block_m2, c.block_n2, None),
                ):
                    consts = bwd_consts(m, n, d, atomic=atomic, kf=c.keys_first)
                    r = resources(fn, consts, c.num_warps, c.num_stages, arch)
                    yield name, d, f"{m}x{n} w{c.num_warps} s{c.num_stages}", "causal", r
    if only in (None, "variants") and inputs == "bf16":  # the default backward and VARIANTS'
        for d in head_dims:
            default = choose_bwd_config(d, d)
            named = {"default": default, **{n: v.bwd_config(default) for n, v in VARIANTS.items()}}
            for name, c in named.items():
                label = f"{name} {c.block_m1}x{c.block_n1} w{c.num_warps} s{c.num_stages}"
                for causal in (True, False):
                    mask = "causal" if causal else "full"
                    consts = bwd_consts(c.block_m1, c.block_n1, d, causal=causal,
                                        atomic=c.atomic_dq, kf=c.keys_first)  # fmt: skip
                    r = resources(BWD_KERNELS["dkdv"], consts, c.num_warps, c.num_stages, arch)
                    yield "bwd dK/dV" + ("+dQ" if c.atomic_dq else ""), d, label, mask, r
                    if not c.atomic_dq:  # the default's second kernel
                        consts = bwd_consts(c.block_m2, c.block_n2, d, causal=causal)
                        r = resources(BWD_KERNELS["dq"], consts, c.num_warps, c.num_stages, arch)
                        label2 = f"{name} {c.block_m2}x{c.block_n2} w{c.num_warps} s{c.num_stages}"
                        yield "bwd dQ", d, label2, mask, r
    if only in (None, "decode"):
        # the decode workload of the bench: B=8, 32 query / 8 KV heads, D=128, KV 16k
        c = choose_fwd_config(
            8, 32, 8, 1, 16384, 128, 128, itemsize=1 if inputs == INPUTS["fp8"] else 2
        )
        for fuse in (False, True):  # the combine kernel, or the last split merging
            consts = fwd_consts(c, 128, causal=False, dense=False, tma=False, group=4,
                                packed=True, split=c.num_splits > 1, fuse=fuse)  # fmt: skip
            r = resources(
                FWD_KERNELS["forward"], consts, c.num_warps, c.num_stages, arch, inputs=inputs
            )
            label = f"{c.block_m}x{c.block_n} w{c.num_warps} s{c.num_stages} {c.num_splits} splits"
            yield "decode", 128, label + (" fused" if fuse else ""), "packed", r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability x10 (90: H100)")
    parser.add_argument("--head-dims", default="64,128,256")
    parser.add_argument(
        "--only",
        choices=("fwd", "bwd", "decode", "variants"),
        help="one kernel family",
    )
    parser.add_argument(
        "--dtype", choices=sorted(INPUTS), default="bf16", help="Q/K/V dtype (fp8: forward only)"
    )
    args = parser.parse_args(argv)
    dims = tuple(int(d) for d in args.head_dims.split(","))
    print(f"triton {triton.__version__}, sm_{args.arch}, {args.dtype}")
    print(f"{'kernel':12} {'D':>4} {'config':28} {'mask':7} {'regs':>5} {'stack':>6} "
          f"{'smem KiB':>9}  note")  # fmt: skip
    for kernel, d, label, mask, r in rows(args.arch, dims, args.only, INPUTS[args.dtype]):
        if "error" in r:
            print(f"{kernel:12} {d:>4} {label:28} {mask:7} {'-':>5} {'-':>6} {'-':>9}  "
                  f"{r['error']}")  # fmt: skip
            continue
        notes = []
        if r["stack"] > 0:
            notes.append("spills")
        if r["smem"] > SMEM_LIMIT:
            notes.append("smem over the H100 limit")
        if not r["pipelined"]:
            notes.append("loads not pipelined")
        if r["atomics"]:
            notes.append(f"atomics: {r['atomics']}")
        if args.dtype != "bf16":
            notes.append(r["mma"])
        print(f"{kernel:12} {d:>4} {label:28} {mask:7} {r['regs']:>5} {r['stack']:>6} "
              f"{r['smem'] / 1024:>9.1f}  {', '.join(notes)}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
