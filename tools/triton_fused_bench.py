"""The in-house Triton kernels against PyTorch's fused kernels, and a search over their tiles.

    python3 tools/triton_fused_bench.py               # gpu-inhouse: triton kernels vs sdpa*
    python3 tools/triton_fused_bench.py -w gpu -w gpu-masks -i 'triton*' -i 'sdpa*' --json r.json
    python3 tools/triton_fused_bench.py --tune -w gpu-inhouse  # time candidate configurations

Each workload is measured forward and, for ``train`` workloads, forward+backward, through
attnbench's own path (``prepare`` -> ``Case.time``: CUDA events, L2 flushed; the same figures
asv records). ``vs best`` is the fastest other implementation's median over this one's
(above 1: faster than all of them). ``--tune`` times candidate kernel configurations of
``triton-fused`` directly (``triton.testing.do_bench``), checks each against the chosen
configuration's output, and prints the best ones next to the one the heuristics choose, with
the line to paste into ``choose_fwd_config``/``choose_bwd_config``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import torch

import attnbench as ab
from attnbench.inputs import make_inputs
from attnbench.measure.accuracy import TOLERANCES
from attnbench.sweep import sweep

DEFAULT_IMPLS = [
    "triton-fused",
    "triton-flash",
    "triton-decode",
    "sdpa",
    "sdpa-flash",
    "sdpa-cudnn",
]


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


# -- configuration search ---------------------------------------------------------------------
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


def fwd_candidates(w, chosen) -> list:
    from attnbench.kernels import triton_attention as ta

    size = w.torch_dtype.itemsize
    bd, bdv = ta._pow2(w.head_dim), ta._pow2(w.dv)
    out = []
    if chosen.packed:
        splits = sorted({max(1, chosen.num_splits // 2), chosen.num_splits, chosen.num_splits * 2})
        for bn, warps, stages, s in itertools.product((32, 64, 128), (4, 8), (2, 3, 4), splits):
            if _smem(chosen.block_m, bn, bd, bdv, stages, size) <= 200_000:
                out.append(replace(chosen, block_n=bn, num_warps=warps, num_stages=stages,
                                   num_splits=s))  # fmt: skip
        return out
    grid = itertools.product((64, 128), (32, 64, 128), (4, 8), (2, 3, 4), (False, True))
    for bm, bn, warps, stages, tma in grid:
        if _smem(bm, bn, bd, bdv, stages, size) <= 200_000:
            out.append(replace(chosen, block_m=bm, block_n=bn, num_warps=warps,
                               num_stages=stages, tma=tma))  # fmt: skip
    return out


def bwd_candidates(w) -> list:
    from attnbench.kernels import triton_attention as ta

    size = w.torch_dtype.itemsize
    bd, bdv = ta._pow2(w.head_dim), ta._pow2(w.dv)
    tiles = [(32, 64, 64, 32), (64, 64, 64, 64), (32, 128, 128, 32), (64, 128, 128, 64),
             (16, 64, 64, 16), (32, 64, 128, 32)]  # fmt: skip
    out = []
    for (m1, n1, m2, n2), warps, stages in itertools.product(tiles, (4, 8), (1, 2, 3)):
        if _smem(n1, m1, bd, bdv, stages, size) <= 200_000:
            out.append(ta.BwdConfig(m1, n1, m2, n2, warps, stages))
    return out


def _bench(fn) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=10, rep=50) / 1e3


def tune(workloads, budget: float, out: list[dict], fwd_configs: str | None = None) -> None:
    from attnbench.kernels import triton_attention as ta

    impl = ab.get_impl("triton-fused")
    dev = torch.device("cuda")
    for w in workloads:
        reasons = impl.unsupported_reasons(w, dev)
        if reasons:
            print(f"{w.name}: skipped: {'; '.join(reasons)}")
            continue
        inputs = make_inputs(w, dev)
        q, k, v = (t.detach() for t in inputs.leaves())
        mask = impl._mask_args(w.mask, w.q_heads, dev)
        fwd0, bwd0 = impl._configs(w, dev)
        tol = TOLERANCES[w.dtype][1]
        cands = parse_fwd_configs(fwd_configs, fwd0) if fwd_configs else fwd_candidates(w, fwd0)
        passes = [("forward", fwd0, cands)]
        if w.has_backward and not fwd_configs:
            passes.append(("backward", bwd0, bwd_candidates(w)))
        for kind, chosen, cands in passes:
            start = time.perf_counter()
            if kind == "forward":

                def run(cfg, q=q, k=k, v=v, scale=w.scale, mask=mask):
                    return lambda: ta.attention_forward(q, k, v, scale, mask, cfg)[0]

            else:
                o, lse = ta.attention_forward(q, k, v, w.scale, mask, fwd0, need_lse=True)
                do = inputs.grad_out

                def run(cfg, args=(do, q, k, v, o, lse, w.scale, mask)):
                    return lambda: ta.attention_backward(*args, cfg)

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-w", "--workload", action="append", help="set, name or glob (gpu-inhouse)")
    p.add_argument("-i", "--impl", action="append", help=f"names or globs ({DEFAULT_IMPLS})")
    p.add_argument(
        "--tune", action="store_true", help="search triton-fused's kernel configurations"
    )
    p.add_argument("--budget", type=float, default=60.0, help="tune: seconds per pass (60)")
    p.add_argument(
        "--fwd-configs",
        help='tune: only these forward configurations, "bm,bn,warps,stages[,tma];..."',
    )
    p.add_argument("--json", type=Path, help="write every record here")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("triton_bench: needs a CUDA device", file=sys.stderr)
        return 2
    workloads = ab.select_workloads(args.workload or ["gpu-inhouse"])
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, ", end="")
    import triton

    print(f"triton {triton.__version__}, {len(workloads)} workloads", flush=True)
    records: list[dict] = []
    if args.tune:
        tune(workloads, args.budget, records, args.fwd_configs)
    else:
        impls = [i.name for i in ab.select_impls(args.impl or DEFAULT_IMPLS)]
        compare_impls(workloads, impls, records)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
