"""The in-house Triton kernels against their peers on one GPU, in one run, with the floors.

    python lab/triton_bench.py            # about 5 minutes on an H100
    python lab/triton_bench.py --no-tune  # skip the configuration search
    python lab/triton_bench.py -w gpu -w gpu-masks -i 'triton*' -i 'sdpa*'  # catalogue sets
    python lab/triton_bench.py --tune -w gpu-inhouse  # per-workload configuration search
    python lab/triton_bench.py --tune -w gpu-inhouse --fwd-configs "128,128,8,3,tma;..."
    python lab/triton_bench.py --tune -w gemma-d256/train/s4096/b1/causal/bf16 \
        --bwd-configs "64,32,64,32,8,2;16,64,64,32,8,2"  # the backward only
    python lab/triton_bench.py --no-tune --variants all  # the named variants beside the default

Measures, through attnbench's own path (``attnbench.sweep.sweep``: CUDA events, L2 flushed):

- forward and forward+backward, bf16, B=4, H=32, D=128, S = 4096/8192/16384, causal and full:
  ``triton-flash`` against ``sdpa-flash`` (FlashAttention-2), ``sdpa-cudnn`` and ``fa4``;
  the backward's own rate is derived as backward FLOPs / (t(fwd+bwd) - t(fwd));
- decode, bf16, B=8, 32 query / 8 KV heads, D=128, KV 16384/65536: ``triton-decode`` against the
  same peers, as bandwidth on the bytes of K and V;
- the floors: a bf16 matmul rate (8192^3) and a device copy bandwidth (2 GiB, read + write),
  both timed with ``attnbench.measure.timing.time_call``; each workload's FLOPs / matmul rate
  and bytes / copy bandwidth;
- peak GPU memory of ``triton-flash``'s forward against inputs + output + LSE;
- (with ``--variants``) each named variant's implementation ``triton-flash-<name>``
  (``configs.VARIANTS``) on the six train workloads, with a table of backward TFLOP/s against
  ``triton-flash`` and ``fa4`` (each backward time: t(fwd+bwd) - t(fwd) of triton-flash);
- (unless ``--no-tune``) a few alternative tile configurations of the forward (dense
  specialization), the backward and the decode split count, to choose the entries of
  ``attnbench/kernels/flash/configs.py``.

With ``-w`` (catalogue sets, names or globs) it compares the implementations of ``-i``
(default: the in-house ones and the peers) on those workloads instead, forward and, for
``train`` workloads, forward+backward; ``vs best`` is the fastest other implementation's median
over this one's. With ``--tune`` it searches each ``-w`` workload's kernel configurations
(``triton.testing.do_bench``), checks each against the chosen configuration's output, and
prints the best next to the chooser's choice.

Prints one table per part and writes everything as JSON to ``$OUT/triton_bench.json`` (or
``--json PATH``). Numbers go to ``lab/NOTEBOOK.md`` with the machine and this command.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

import attnbench as ab
from attnbench import Workload, impl_names
from attnbench.inputs import make_inputs
from attnbench.measure.accuracy import TOLERANCES
from attnbench.measure.timing import time_call
from attnbench.sweep import Record, sweep

PEERS = ("sdpa-flash", "sdpa-cudnn", "fa4")
INHOUSE = ("triton-flash", "triton-decode")
SEQS = (4096, 8192, 16384)
DECODE_KV = (16384, 65536)
SMEM_LIMIT = 227 * 1024  # the H100's shared memory per block
TUNE_BUDGET_S = 150.0  # the configuration search stops starting new candidates after this
TOTAL_BUDGET_S = 320.0  # ... or once the whole run is this old (the script must stay < 6 min)


def write_json(path: Path | None, data: object) -> None:
    """``data`` as JSON to ``path``, else to ``$OUT/triton_bench.json`` where OUT is set."""
    target = path or (
        Path(os.environ["OUT"]) / "triton_bench.json" if "OUT" in os.environ else None
    )
    if target:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=1, default=str))
        print(f"JSON: {target}", file=sys.stderr)


def prefill(seq: int, causal: bool, scenario: str = "prefill") -> Workload:
    return Workload(4, 32, 32, seq, seq, 128, causal=causal, dtype="bf16", scenario=scenario)


def _s4096_inputs(device) -> tuple:
    """q, k, v of the B=4 H=32 S=4096 D=128 bf16 workload, seeded: the config comparisons'."""
    gen = torch.Generator(device).manual_seed(0)
    return tuple(
        torch.randn(4, 32, 4096, 128, device=device, dtype=torch.bfloat16, generator=gen)
        for _ in range(3)
    )


def decode_workload(kv: int) -> Workload:
    return Workload(8, 32, 8, 1, kv, 128, causal=False, dtype="bf16", scenario="decode")


# -- floors --------------------------------------------------------------------------------
def matmul_rate(device: torch.device) -> float:
    """bf16 TFLOP/s of an 8192^3 matmul."""
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    stats = time_call(lambda: a @ b, device)
    return 2 * n**3 / stats.median / 1e12


def copy_bandwidth(device: torch.device) -> float:
    """TB/s of a 2 GiB device-to-device copy, counting the bytes read and written."""
    n = 2 * 1024**3
    src = torch.empty(n, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    stats = time_call(lambda: dst.copy_(src), device)
    return 2 * n / stats.median / 1e12


# -- peers ---------------------------------------------------------------------------------
def peers() -> list[str]:
    known = set(impl_names())
    return [p for p in PEERS if p in known]


def fa4_direct(workloads: list[Workload], mode: str, device: torch.device) -> list[Record]:
    """flash-attn-4 called directly when attnbench has no ``fa4`` implementation."""
    try:
        from flash_attn.cute import flash_attn_func
    except Exception as exc:  # not installed, or a broken build
        return [
            Record("fa4", w.name, mode, "cuda", reason=f"flash_attn.cute: {exc}") for w in workloads
        ]
    from attnbench.inputs import make_inputs
    from attnbench.measure.rates import rates

    out = []
    for w in workloads:
        i = make_inputs(w, device)
        q, k, v = (t.transpose(1, 2) for t in (i.q, i.k, i.v))  # (B, S, H, D)

        def step(q=q, k=k, v=v, w=w, grad_out=i.grad_out):
            o = flash_attn_func(q, k, v, causal=w.causal)
            o = o[0] if isinstance(o, tuple) else o
            if mode == "forward":
                return o
            return torch.autograd.grad(o, (q, k, v), grad_out.transpose(1, 2))

        try:
            with torch.set_grad_enabled(mode != "forward"):
                stats = time_call(step, device)
            r = rates(w, stats.median, mode)
            out.append(
                Record("fa4", w.name, mode, "cuda", time=stats, tflops=r.tflops, gbps=r.gbps)
            )
        except Exception as exc:
            out.append(Record("fa4", w.name, mode, "cuda", reason=f"{type(exc).__name__}: {exc}"))
    return out


def measure(impls: list[str], workloads: list[Workload], mode: str, device) -> list[Record]:
    # forward errors only in forward mode: the train forward is the same computation
    records = sweep(impls, workloads, mode, device, baseline=None, errors=mode == "forward")
    if "fa4" not in impl_names():
        records += fa4_direct(workloads, mode, device)
    return records


# -- named variants (--variants) ----------------------------------------------------------------
VARIANT_PREFIX = "triton-flash-"


def parse_variants(text: str | None) -> list[str]:
    """The implementations of the named variants in ``text`` (names of ``configs.VARIANTS``,
    comma-separated, or ``all``): ``triton-flash-<name>`` each."""
    from attnbench.kernels.flash.configs import VARIANTS

    names = [x.strip() for x in (text or "").split(",") if x.strip()]
    if names == ["all"]:
        names = list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; known: {', '.join(VARIANTS)}")
    return [VARIANT_PREFIX + n for n in names]


def measure_variants(impls: list[str], workloads, device) -> list[Record]:
    """Each variant's forward+backward, beside ``triton-flash``'s; ``max_abs_error`` is the
    largest |variant - triton-flash| over dQ, dK, dV at S=4096 (same causality)."""
    out = []
    for impl in impls:
        diffs = gradient_diffs(impl, device)
        for r in sweep([impl], workloads, "forward_backward", device, baseline=None, errors=False):
            r.max_abs_error = diffs.get("causal" if "/causal" in r.workload else "full")
            r.extra["max_abs_error_is"] = "max |variant - triton-flash| of dQ/dK/dV at s4096"
            out.append(r)
    return out


def gradient_diffs(impl: str, device) -> dict[str, float]:
    """Largest |``impl`` - ``triton-flash``| of dQ, dK, dV (same seeded inputs), by mask."""
    out = {}
    for causal in (False, True):
        w = prefill(4096, causal, "train")
        try:
            got, ref = (ab.prepare(name, w, device, mode="forward_backward").forward_backward()
                        for name in (impl, "triton-flash"))  # fmt: skip
            out["causal" if causal else "full"] = max(
                float((a.float() - b.float()).abs().max()) for a, b in zip(got, ref, strict=True)
            )
        except Exception as exc:  # a compile failure shows in the timed records too
            print(f"{impl}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
    return out


def _fwd_seconds(result: dict) -> dict[tuple[str, str], float]:
    """Forward medians by (impl, workload as its train name)."""
    return {(r["impl"], r["workload"].replace("/prefill/", "/train/")): r["time"]["median"]
            for r in result["records"] if r["mode"] == "forward" and r["time"]}  # fmt: skip


def variant_rows(result: dict) -> list[dict]:
    """Each variant's backward TFLOP/s beside the default's (``triton-flash``) and fa4's; a
    variant's backward time is t(fwd+bwd) of it minus t(fwd) of ``triton-flash``."""
    workloads = {w.name: w for w in _all_workloads()}
    fwd = _fwd_seconds(result)
    fb = {(r["impl"], r["workload"]): r for r in result["records"]
          if r["mode"] == "forward_backward"}  # fmt: skip

    def bwd_rate(r, fwd_impl):
        if not r or r["reason"] or not r["time"]:
            return None
        t_fwd, t = fwd.get((fwd_impl, r["workload"])), r["time"]["median"]
        if not t_fwd or t <= t_fwd:
            return None
        return workloads[r["workload"]].backward_flops / (t - t_fwd) / 1e12

    rows = []
    for (impl, name), r in fb.items():
        if not impl.startswith(VARIANT_PREFIX):
            continue
        t = bwd_rate(r, "triton-flash")
        t3 = bwd_rate(fb.get(("triton-flash", name)), "triton-flash")
        t4 = bwd_rate(fb.get(("fa4", name)), "fa4")
        rows.append({
            "workload": name, "variant": impl[len(VARIANT_PREFIX):],
            "bwd_tflops": t, "default_bwd_tflops": t3, "fa4_bwd_tflops": t4,
            "vs_default": t / t3 if t and t3 else None, "vs_fa4": t / t4 if t and t4 else None,
            "default_vs_fa4": t3 / t4 if t3 and t4 else None,
            "max_abs_diff": r["max_abs_error"], "config": (r.get("extra") or {}).get("config"),
            "reason": r["reason"],
        })  # fmt: skip
    return rows


# -- configuration search ------------------------------------------------------------------
def tune(device: torch.device, deadline: float) -> list[dict]:
    from attnbench.kernels.flash import api, decode, forward
    from attnbench.kernels.flash.configs import BwdConfig, FwdConfig

    rows: list[dict] = []

    def timed(label: str, workload: Workload, mode: str, cfg, fn) -> None:
        if time.perf_counter() > deadline:
            rows.append({"what": label, "workload": workload.name, "config": cfg.as_dict(),
                         "skipped": "over the time budget"})  # fmt: skip
            return
        try:
            fn()  # compile
            stats = time_call(fn, device)
            flops = workload.forward_flops if mode == "forward" else workload.flops
            rows.append({
                "what": label, "workload": workload.name, "config": cfg.as_dict(),
                "ms": stats.median * 1e3, "tflops": flops / stats.median / 1e12,
                "gbps_kv": workload.kv_bytes / stats.median / 1e9,
            })  # fmt: skip
        except Exception as exc:  # e.g. out of shared memory for a large tile
            rows.append({"what": label, "workload": workload.name, "config": cfg.as_dict(),
                         "error": f"{type(exc).__name__}: {str(exc)[:200]}"})  # fmt: skip

    fwd_candidates = [  # the dense specialization; the last two: the general kernel
        FwdConfig(128, 64, 8, 3),
        FwdConfig(128, 128, 8, 3),
        FwdConfig(128, 128, 8, 2),
        FwdConfig(128, 64, 8, 4),
        FwdConfig(128, 64, 8, 3, tma=True),
        FwdConfig(128, 128, 8, 3, tma=True),
        FwdConfig(128, 128, 8, 2, tma=True),
        FwdConfig(128, 64, 8, 3, dense=False),
        FwdConfig(128, 32, 4, 4, dense=False),
    ]
    for causal in (False, True):
        w = prefill(4096, causal)
        q, k, v = _s4096_inputs(device)
        mask = forward.MaskArgs(causal)
        for cfg in fwd_candidates:

            def fwd(cfg=cfg, q=q, k=k, v=v, mask=mask):
                return forward.attention_forward(q, k, v, 128**-0.5, mask, cfg)[0]

            timed("fwd", w, "forward", cfg, fwd)
        del q, k, v

    for kv in DECODE_KV:
        w = decode_workload(kv)
        gen = torch.Generator(device).manual_seed(0)
        q = torch.randn(8, 32, 1, 128, device=device, dtype=torch.bfloat16, generator=gen)
        k, v = (torch.randn(8, 8, kv, 128, device=device, dtype=torch.bfloat16, generator=gen)
                for _ in range(2))  # fmt: skip
        for block_n, warps, stages in ((64, 4, 3), (128, 4, 2), (64, 8, 4)):
            for splits in (1, 2, 4, 8, 16, 32):
                cfg = FwdConfig(16, block_n, warps, stages, packed=True, num_splits=splits,
                                dense=False)  # fmt: skip

                def step(cfg=cfg, q=q, k=k, v=v):
                    return decode.decode(q, k, v, config=cfg)

                timed("decode", w, "forward", cfg, step)
        del q, k, v
    bwd_candidates = [
        BwdConfig(64, 128, 128, 64, 8, 3),
        BwdConfig(64, 128, 128, 64, 8, 2),
        BwdConfig(32, 128, 128, 64, 8, 2),
        BwdConfig(64, 64, 64, 64, 8, 2),
        BwdConfig(32, 64, 64, 32, 8, 1),
    ]
    w = prefill(4096, True, "train")
    gen = torch.Generator(device).manual_seed(0)
    leaves = [torch.randn(4, 32, 4096, 128, device=device, dtype=torch.bfloat16, generator=gen)
              .requires_grad_() for _ in range(3)]  # fmt: skip
    grad_out = torch.randn_like(leaves[0])
    for cfg in bwd_candidates:

        def fwd_bwd(cfg=cfg, leaves=leaves, grad_out=grad_out):
            o = api.attention(*leaves, causal=True, bwd_config=cfg)
            return torch.autograd.grad(o, leaves, grad_out)

        timed("fwd+bwd", w, "forward_backward", cfg, fwd_bwd)

    return rows


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} us"


def compare_impls(workloads, impls: list[str], out: list[dict]) -> None:
    header = f"{'workload':<52} {'mode':<8} {'impl':<16} {'median':>11} {'TFLOP/s':>8} "
    header += f"{'GB/s':>7} {'vs best':>8} {'max err':>8}  config"
    print(header)
    print("-" * len(header))
    for w in workloads:
        modes = ["forward"] + (["forward_backward"] if w.has_backward else [])
        for mode in modes:
            recs = sweep(impls, [w], mode, "cuda", baseline=None, errors=(mode == "forward"))
            for rec in recs:
                row = rec.as_dict()
                row["time"] = rec.time.as_dict() if rec.time else None
                others = [r.time.median for r in recs if r.ok and r.impl != rec.impl]
                if not rec.ok:
                    print(f"{w.name:<52} {mode[:8]:<8} {rec.impl:<16} skipped: {rec.reason}")
                    out.append(row)
                    continue
                vs = min(others) / rec.time.median if others else None
                row["vs_best_other"] = vs
                cfg = rec.extra.get("config")
                cfg_text = ""
                if cfg:
                    parts = (
                        cfg.items()
                        if all(isinstance(v, dict) for v in cfg.values())
                        else [("", cfg)]
                    )
                    cfg_text = " ".join(
                        f"{k[:1]}:{','.join(str(x) for x in v.values())}" for k, v in parts
                    )
                err = "-" if rec.max_abs_error is None else f"{rec.max_abs_error:.1e}"
                print(
                    f"{w.name:<52} {mode[:8]:<8} {rec.impl:<16} "
                    f"{_fmt_time(rec.time.median):>11} {rec.tflops:>8.1f} {rec.gbps:>7.0f} "
                    f"{'-' if vs is None else f'{vs:.2f}x':>8} {err:>8}  {cfg_text}",
                    flush=True,
                )
                out.append(row)


# -- per-workload configuration search (--tune) ---------------------------------------------
def _smem(bm: int, bn: int, bd: int, bdv: int, stages: int, size: int) -> int:
    return (bm * bd + stages * bn * (bd + bdv)) * size


def parse_fwd_configs(text: str, chosen) -> list:
    """``"128,64,8,3;128,128,8,3,tma"``: block_m, block_n, warps, stages[, tma] each."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(";"))):
        *nums, last = item.split(",")
        tma = last == "tma"
        bm, bn, warps, stages = (int(x) for x in ([*nums, last] if not tma else nums))
        out.append(replace(chosen, block_m=bm, block_n=bn, num_warps=warps, num_stages=stages,
                           tma=tma))  # fmt: skip
    return out


def parse_bwd_configs(text: str) -> list:
    """``"64,32,64,32,8,2;16,64,64,32,8,2,atomic"``: block_m1, block_n1, block_m2, block_n2,
    warps, stages each; ``atomic`` last: dQ added by atomics in the dK/dV kernel."""
    from attnbench.kernels.flash import configs as tc

    out = []
    for item in filter(None, (x.strip() for x in text.split(";"))):
        fields = [x.strip() for x in item.split(",")]
        atomic = fields[-1] == "atomic"
        m1, n1, m2, n2, warps, stages = (int(x) for x in fields[: len(fields) - atomic])
        out.append(tc.BwdConfig(m1, n1, m2, n2, warps, stages, atomic_dq=atomic))
    return out


def fwd_candidates(w, chosen) -> list:
    from attnbench.kernels.flash import configs as tc

    size = w.torch_dtype.itemsize
    bd, bdv = tc.pow2(w.head_dim), tc.pow2(w.dv)
    out = []
    if chosen.packed:
        splits = sorted({max(1, chosen.num_splits // 2), chosen.num_splits, chosen.num_splits * 2})
        grid = itertools.product((32, 64, 128), (4, 8), (2, 3, 4), splits, (False, True))
        for bn, warps, stages, s, fused in grid:  # fused: the last split merges (one launch)
            if _smem(chosen.block_m, bn, bd, bdv, stages, size) <= SMEM_LIMIT and (
                s > 1 or not fused
            ):
                out.append(replace(chosen, block_n=bn, num_warps=warps, num_stages=stages,
                                   num_splits=s, fused_combine=fused))  # fmt: skip
        return out
    grid = itertools.product((64, 128), (32, 64, 128), (4, 8), (2, 3, 4), (False, True))
    for bm, bn, warps, stages, tma in grid:
        if _smem(bm, bn, bd, bdv, stages, size) <= SMEM_LIMIT:
            for dense in (True, False):  # the dense specialization, where the workload allows
                out.append(replace(chosen, block_m=bm, block_n=bn, num_warps=warps,
                                   num_stages=stages, tma=tma, dense=dense))  # fmt: skip
    return out


def bwd_candidates(w) -> list:
    from attnbench.kernels.flash import configs as tc

    size = w.torch_dtype.itemsize
    bd, bdv = tc.pow2(w.head_dim), tc.pow2(w.dv)
    # the last three: spill-free at D=256 with 8 warps (lab/triton_resources.py, NOTEBOOK)
    tiles = [(32, 64, 64, 32), (64, 64, 64, 64), (32, 128, 128, 32), (64, 128, 128, 64),
             (16, 64, 64, 16), (32, 64, 128, 32), (64, 32, 64, 32), (16, 64, 64, 32),
             (32, 32, 32, 32)]  # fmt: skip
    out = []
    for (m1, n1, m2, n2), warps, stages in itertools.product(tiles, (4, 8), (1, 2, 3)):
        if _smem(n1, m1, bd, bdv, stages, size) <= SMEM_LIMIT:
            out.append(tc.BwdConfig(m1, n1, m2, n2, warps, stages))
            if bd > 128:  # no second QK^T for dQ: the recompute costs most at D=256
                out.append(tc.BwdConfig(m1, n1, m2, n2, warps, stages, atomic_dq=True))
    return out


def _bench(fn) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=10, rep=50) / 1e3


def search(
    workloads,
    budget: float,
    out: list[dict],
    fwd_configs: str | None = None,
    bwd_configs: str | None = None,
) -> None:
    from attnbench.kernels.flash import backward as tb
    from attnbench.kernels.flash import forward as ta

    impl = ab.get_impl("triton-flash")
    dev = torch.device("cuda")
    for w in workloads:
        reasons = impl.unsupported_reasons(w, dev)
        if reasons:
            print(f"{w.name}: skipped: {'; '.join(reasons)}")
            continue
        inputs = make_inputs(w, dev)
        q, k, v = (t.detach() for t in inputs.leaves())
        mask = impl.mask_args(w.mask, w.q_heads, dev)
        fwd0, bwd0 = impl.configs(w, dev)
        tol = TOLERANCES[w.dtype][1]
        cands = parse_fwd_configs(fwd_configs, fwd0) if fwd_configs else fwd_candidates(w, fwd0)
        passes = [] if bwd_configs else [("forward", fwd0, cands)]
        if w.has_backward and not fwd_configs:
            bwd = parse_bwd_configs(bwd_configs) if bwd_configs else bwd_candidates(w)
            passes.append(("backward", bwd0, bwd))
        for kind, chosen, cands in passes:
            start = time.perf_counter()
            if kind == "forward":

                def run(cfg, q=q, k=k, v=v, scale=w.scale, mask=mask):
                    return lambda: ta.attention_forward(q, k, v, scale, mask, cfg)[0]

            else:
                o, lse = ta.attention_forward(q, k, v, w.scale, mask, fwd0, need_lse=True)
                do = inputs.grad_out

                def run(cfg, args=(do, q, k, v, o, lse, w.scale, mask)):
                    return lambda: tb.attention_backward(*args, cfg)

            ref = run(chosen)()
            base = _bench(run(chosen))
            results = [(base, chosen)]
            for cfg in cands:
                if cfg == chosen:
                    continue
                if time.perf_counter() - start > budget:
                    print(f"  ({kind}: budget of {budget:.0f} s spent after {len(results)})")
                    break
                try:
                    got = run(cfg)()
                    outs = got if isinstance(got, tuple) else (got,)
                    refs = ref if isinstance(ref, tuple) else (ref,)
                    bad = max(
                        float((a.float() - b.float()).abs().max())
                        for a, b in zip(outs, refs, strict=True)
                    )
                    if not bad <= 4 * tol:
                        print(f"  {kind} {cfg}: WRONG (max diff {bad:.2e})")
                        continue
                    results.append((_bench(run(cfg)), cfg))
                except Exception as exc:  # out of shared memory, registers...
                    print(f"  {kind} {cfg}: {type(exc).__name__}: {str(exc)[:100]}")
            results.sort(key=lambda r: r[0])
            best_t, best = results[0]
            print(
                f"{w.name} {kind}: chosen {_fmt_time(base)}, best {_fmt_time(best_t)} "
                f"({base / best_t:.2f}x) of {len(results)} tried in "
                f"{time.perf_counter() - start:.0f} s\n  chosen {chosen}\n  best   {best}",
                flush=True,
            )
            for t, cfg in results[1:4]:
                print(f"  next   {_fmt_time(t)} {cfg}")
            out.append({
                "workload": w.name, "pass": kind, "chosen": chosen.as_dict(),
                "chosen_seconds": base, "best": best.as_dict(), "best_seconds": best_t,
                "tried": [{"seconds": t, **c.as_dict()} for t, c in results],
            })  # fmt: skip


# -- report --------------------------------------------------------------------------------
def _table(rows: list[list], headers: list[str]) -> str:
    try:
        from tabulate import tabulate

        return tabulate(rows, headers=headers, floatfmt=".4g")
    except ImportError:
        lines = ["  ".join(headers)] + ["  ".join(str(c) for c in r) for r in rows]
        return "\n".join(lines)


def _io_bytes(w: Workload) -> int:
    """Inputs + output + the float32 LSE: what a forward must hold."""
    return w.forward_bytes + 4 * w.batch * w.q_heads * w.q_len


def report(result: dict) -> str:
    mm, bw = result["matmul_tflops"], result["copy_tbps"]
    out = [f"device: {result['device']}; bf16 matmul {mm:.1f} TFLOP/s; copy {bw:.3f} TB/s"]
    workloads = {w.name: w for w in _all_workloads()}
    fwd_time = {(r["impl"], r["workload"].replace("/train/", "/prefill/")): r["time"]["median"]
                for r in result["records"] if r["mode"] == "forward" and r["time"]}  # fmt: skip
    rows = []
    for r in result["records"]:
        w = workloads[r["workload"]]
        if r["reason"]:
            rows.append([r["workload"], r["mode"], r["impl"], "-", "-", "-", "-", "-", "-",
                         r["reason"][:70]])  # fmt: skip
            continue
        t = r["time"]["median"]
        flops = w.forward_flops if r["mode"] == "forward" else w.flops
        floor_t = max(flops / (mm * 1e12), (w.kv_bytes if w.q_len == 1 else w.bytes) / (bw * 1e12))
        bwd = "-"
        # a variant runs triton-flash's forward
        fwd_impl = "triton-flash" if r["impl"].startswith(VARIANT_PREFIX) else r["impl"]
        t_fwd = fwd_time.get((fwd_impl, r["workload"].replace("/train/", "/prefill/")))
        if r["mode"] == "forward_backward" and t_fwd and t > t_fwd:
            bwd = f"{w.backward_flops / (t - t_fwd) / 1e12:.0f}"
        kv_tbps = f"{w.kv_bytes / t / 1e12:.2f}" if w.q_len == 1 else "-"
        peak = r.get("gpu_peak_allocated")
        mem = f"{peak / _io_bytes(w):.2f}" if peak and r["mode"] == "forward" else "-"
        cfg = (r.get("extra") or {}).get("config")
        cfg_s = ",".join(str(v) for k, v in cfg.items() if k != "kernel") if cfg else ""
        rate, ratio = f"{r['tflops']:.0f}", f"{floor_t / t:.2f}"
        rows.append([r["workload"], r["mode"], r["impl"], f"{t * 1e3:.3f}", rate, bwd, kv_tbps,
                     ratio, mem, cfg_s])  # fmt: skip
    out.append(_table(rows, ["workload", "mode", "impl", "ms", "TFLOP/s", "bwd TFLOP/s",
                             "KV TB/s", "floor/t", "peak/io", "config"]))  # fmt: skip

    def f(x, spec):
        return "-" if x is None else format(x, spec)

    if result.get("variants"):
        brows = [[v["workload"], v["variant"], f(v["bwd_tflops"], ".0f"),
                  f(v["default_bwd_tflops"], ".0f"), f(v["fa4_bwd_tflops"], ".0f"),
                  f(v["vs_default"], ".3f"), f(v["vs_fa4"], ".2f"), f(v["default_vs_fa4"], ".2f"),
                  f(v["max_abs_diff"], ".1e"), (v["reason"] or "")[:50]]
                 for v in result["variants"]]  # fmt: skip
        out.append("\nvariants (bwd TFLOP/s of triton-flash-NAME against triton-flash's, "
                   "and fa4's)")  # fmt: skip
        out.append(_table(brows, ["workload", "variant", "bwd TFLOP/s", "default", "fa4",
                                  "vs default", "vs fa4", "default vs fa4", "max |diff|",
                                  "note"]))  # fmt: skip
    if result.get("tuning"):
        trows = [[t["what"], t["workload"], ",".join(str(v) for k, v in t["config"].items()
                  if k != "kernel"), f"{t['ms']:.3f}" if "ms" in t else "-",
                  f"{t['tflops']:.0f}" if "ms" in t else "-",
                  f"{t['gbps_kv'] / 1e3:.2f}" if "ms" in t and t["what"] == "decode" else "-",
                  t.get("error", t.get("skipped", ""))[:60]] for t in result["tuning"]]  # fmt: skip
        out.append("\nconfiguration search (fwd: block_m,block_n,warps,stages; bwd: m1,n1,m2,n2,"
                   "warps,stages; decode: block_n,splits,warps,stages)")  # fmt: skip
        out.append(
            _table(trows, ["what", "workload", "config", "ms", "TFLOP/s", "KV TB/s", "note"])
        )
    return "\n".join(out)


def _all_workloads() -> list[Workload]:
    return (
        [prefill(s, c) for s in SEQS for c in (False, True)]
        + [prefill(s, c, "train") for s in SEQS for c in (False, True)]
        + [decode_workload(kv) for kv in DECODE_KV]
    )


def catalogue_main(args) -> int:
    """``-w``/``--tune``: compare implementations, or search configurations, on catalogue
    workloads."""
    import triton

    workloads = ab.select_workloads(args.workload or ["gpu-inhouse"])
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, triton "
          f"{triton.__version__}, {len(workloads)} workloads", flush=True)  # fmt: skip
    records: list[dict] = []
    if args.tune:
        search(workloads, args.budget, records, args.fwd_configs, args.bwd_configs)
    else:
        known = set(impl_names())
        default = [*INHOUSE, *(p for p in PEERS if p in known)]
        impls = [i.name for i in ab.select_impls(args.impl or default)]
        compare_impls(workloads, impls, records)
    write_json(args.json, records)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-tune", action="store_true", help="skip the configuration search")
    parser.add_argument("--json", type=Path, help="where to write the JSON (default $OUT/...)")
    parser.add_argument(
        "-w", "--workload", action="append", help="catalogue sets, names or globs: compare there"
    )
    parser.add_argument("-i", "--impl", action="append", help="with -w: names or globs")
    parser.add_argument(
        "--tune", action="store_true", help="with -w (default gpu-inhouse): search each "
        "workload's kernel configurations",
    )  # fmt: skip
    parser.add_argument("--budget", type=float, default=60.0, help="--tune: seconds per pass")
    parser.add_argument(
        "--fwd-configs",
        help='--tune: only these forward configurations, "bm,bn,warps,stages[,tma];..."',
    )
    parser.add_argument(
        "--bwd-configs",
        help="--tune: only these backward configurations (no forward pass), "
        '"m1,n1,m2,n2,warps,stages;..."',
    )
    parser.add_argument(
        "--variants", help="named variants (configs.VARIANTS, or all) to measure beside "
        "triton-flash on the train workloads (the whole-run comparison only)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    variants = parse_variants(args.variants)
    if not torch.cuda.is_available():
        print("triton_bench: needs a CUDA device", file=sys.stderr)
        return 2
    if args.workload or args.tune:
        return catalogue_main(args)
    device = torch.device("cuda")
    start = time.perf_counter()
    result: dict = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__}
    try:
        import triton

        result["triton"] = triton.__version__
    except ImportError:
        result["triton"] = None
    result["matmul_tflops"] = matmul_rate(device)
    result["copy_tbps"] = copy_bandwidth(device)
    torch.cuda.empty_cache()
    print(f"floors measured ({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    others = peers()
    records: list[Record] = []
    fwd = [prefill(s, c) for s in SEQS for c in (False, True)]
    records += measure(["triton-flash", *others], fwd, "forward", device)
    print(f"forward done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    train = [prefill(s, c, "train") for s in SEQS for c in (False, True)]
    records += measure(["triton-flash", *others], train, "forward_backward", device)
    print(f"forward+backward done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    if variants:
        records += measure_variants(variants, train, device)
        print(f"variants {','.join(variants)} done ({time.perf_counter() - start:.0f} s)",
              file=sys.stderr)  # fmt: skip
    dec = [decode_workload(kv) for kv in DECODE_KV]
    kvcache = ["fa2-kvcache"] if "fa2-kvcache" in impl_names() else []
    records += measure(["triton-decode", *others, *kvcache], dec, "forward", device)
    print(f"decode done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    result["records"] = [r.as_dict() for r in records]
    if variants:
        result["variants"] = variant_rows(result)
    if not args.no_tune:
        torch.cuda.empty_cache()
        deadline = min(time.perf_counter() + TUNE_BUDGET_S, start + TOTAL_BUDGET_S)
        result["tuning"] = tune(device, deadline)
    result["seconds"] = time.perf_counter() - start

    print(report(result))
    write_json(args.json, result)
    print(f"total {result['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
