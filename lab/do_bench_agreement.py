#!/usr/bin/env python3
"""Does attnbench's suite time agree with an independent ``triton.testing.do_bench``? Run once on
a GPU (a few minutes at most):

    python lab/do_bench_agreement.py            # prints a markdown table; JSON to $OUT if set

For each backend x workload pair it measures, in this order:

1. the suite's figure, ``sweep()`` (``Case.time``: CUDA events, L2 flushed; CUDA-graph replay
   for calls under the threshold), as two separate whole passes over every pair, whose
   difference is the run-to-run spread (target: within 2% for calls of 100 us or more);
2. the same call written out here, on inputs made here, run untimed for the suite's
   ``ATTNBENCH_SETTLE_MS`` and timed with ``do_bench`` (median): the suite
   must agree within 3%.

A pair whose backend is missing is listed with its reason. Exit status 1 if a check fails.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnbench import Workload
from attnbench.catalogue import model_workload
from attnbench.settings import settle_ms
from attnbench.sweep import sweep
from attnbench.system import machine_info

AGREE = 0.03  # suite vs independent do_bench
SPREAD = 0.02  # pass 1 vs pass 2, for calls >= SPREAD_MIN_S
SPREAD_MIN_S = 100e-6


@dataclass(frozen=True)
class Pair:
    impl: str
    workload: Workload
    mode: str = "forward"  # or "forward_backward"

    @property
    def label(self) -> str:
        return f"{self.impl} | {self.workload.name} | {self.mode}"


def pairs() -> list[Pair]:
    pre_c = model_workload("mha32-d128", "prefill", 4096, 4, causal=True)
    pre_f = model_workload("mha32-d128", "prefill", 4096, 4, causal=False)
    dec = model_workload("llama3-8b", "decode", 16384, 8)  # 32 q / 8 kv heads, D=128
    dec_short = model_workload("llama3-8b", "decode", 4096, 1)  # a call of a few us: graphs
    train = model_workload("mha32-d128", "train", 4096, 4, causal=True)
    fb = "forward_backward"
    return [
        Pair("sdpa-flash", pre_c),
        Pair("sdpa-cudnn", pre_f),
        Pair("fa4", pre_c),
        Pair("fa4", pre_f),
        Pair("sdpa-efficient", pre_f),
        Pair("sdpa-flash", dec),
        Pair("sdpa-cudnn", dec),
        Pair("fa4", dec),
        Pair("sdpa-flash", dec_short),
        Pair("sdpa-cudnn", train, fb),
        Pair("fa4", train, fb),
    ]


# -- the same calls, written out here (not through attnbench's adapters) -------------------
SDPA = {
    "sdpa-flash": SDPBackend.FLASH_ATTENTION,
    "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
    "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION,
}


def independent_call(pair: Pair) -> Callable[[], object]:
    """The pair's step on fresh (B, H, S, D) inputs, spelt out with the backend's own API."""
    w = pair.workload
    dev, dt = torch.device("cuda"), w.torch_dtype
    train = pair.mode == "forward_backward"
    gen = torch.Generator(dev).manual_seed(1234)

    def randn(*shape):
        t = torch.randn(*shape, generator=gen, device=dev, dtype=torch.float32).to(dt)
        return t.requires_grad_(train)

    q = randn(w.batch, w.q_heads, w.q_len, w.head_dim)
    k = randn(w.batch, w.kv_heads, w.kv_len, w.head_dim)
    v = randn(w.batch, w.kv_heads, w.kv_len, w.dv)
    causal = w.causal and w.q_len > 1  # one query row sees the whole cache
    if pair.impl in SDPA:
        backend = SDPA[pair.impl]
        gqa = w.q_heads != w.kv_heads
        if pair.impl == "sdpa-efficient" and gqa:  # what attnbench's adapter times, too
            g = w.group_size
            kk, vv = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
        else:
            kk, vv = k, v

        def fwd():
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(
                    q, kk, vv, is_causal=causal, scale=w.scale,
                    enable_gqa=gqa and pair.impl != "sdpa-efficient",
                )  # fmt: skip
    elif pair.impl == "fa4":
        from flash_attn.cute import flash_attn_func

        qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))

        def fwd():
            out = flash_attn_func(qt, kt, vt, softmax_scale=w.scale, causal=causal)
            return (out[0] if isinstance(out, tuple) else out).transpose(1, 2)
    else:
        raise ValueError(f"no independent call written for {pair.impl}")
    if not train:
        return fwd
    grad = randn(w.batch, w.q_heads, w.q_len, w.dv).detach()
    return lambda: torch.autograd.grad(fwd(), (q, k, v), grad)


def suite_seconds(pair: Pair) -> tuple[float | None, str | None, dict]:
    (rec,) = sweep([pair.impl], [pair.workload], pair.mode, "cuda", baseline=None, errors=False)
    if not rec.ok:
        return None, rec.reason, {}
    return rec.time.median, None, {"clock": rec.time.clock, "extra": rec.extra}


def main() -> int:
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    from triton.testing import do_bench

    todo = pairs()
    passes: list[list[tuple[float | None, str | None, dict]]] = []
    for n in range(2):  # two whole passes: run-to-run spread
        passes.append([suite_seconds(p) for p in todo])
        print(f"pass {n + 1} done", file=sys.stderr, flush=True)
    rows, failed = [], False
    for i, pair in enumerate(todo):
        (a, reason, meta), (b, _, _) = passes[0][i], passes[1][i]
        row: dict = {"pair": pair.label, "impl": pair.impl, "workload": pair.workload.name,
                     "mode": pair.mode, "suite_s": [a, b], "reason": reason,
                     "clock": meta.get("clock"), "extra": meta.get("extra")}  # fmt: skip
        if a is None or b is None:
            rows.append(row)
            continue
        try:
            call = independent_call(pair)
            until = time.perf_counter() + settle_ms() / 1e3  # the suite's untimed settling, too
            while time.perf_counter() < until:
                call()
                torch.cuda.synchronize()
            indep = do_bench(call, warmup=25, rep=100, return_mode="median")
            row["independent_s"] = indep / 1e3
        except Exception as exc:  # the written-out call itself failing is a finding too
            row["reason"] = f"independent call failed: {type(exc).__name__}: {exc}"[:300]
            rows.append(row)
            continue
        suite = min(a, b)
        row["agreement"] = suite / row["independent_s"] - 1
        if row["clock"] == "cuda_graph":  # replays without launch overhead: not comparable
            row["agree_ok"], row["spread_ok"] = None, None
            row["spread"] = abs(a - b) / min(a, b)
            rows.append(row)
            continue
        row["spread"] = abs(a - b) / min(a, b)
        row["agree_ok"] = abs(row["agreement"]) <= AGREE
        row["spread_ok"] = row["spread"] <= SPREAD if suite >= SPREAD_MIN_S else None
        failed |= not row["agree_ok"] or row["spread_ok"] is False
        rows.append(row)
        torch.cuda.empty_cache()
    print(table(rows))
    out = os.environ.get("OUT")
    if out:
        path = Path(out) / "do_bench_agreement.json"
        path.write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=1,
                                   default=str))  # fmt: skip
        print(f"\nwrote {path}")
    return 1 if failed else 0


def table(rows: list[dict]) -> str:
    def us(s: float | None) -> str:
        return f"{s * 1e6:.1f}" if s is not None else "-"

    lines = [
        "| backend | workload | mode | clock | suite pass 1 (us) | pass 2 (us) | do_bench (us) "
        "| suite vs do_bench | run-to-run | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "agreement" not in r:
            lines.append(f"| {r['impl']} | {r['workload']} | {r['mode']} | | | | | | | "
                         f"skipped: {r['reason']} |")  # fmt: skip
            continue
        verdict = "ok" if r["agree_ok"] and r["spread_ok"] is not False else "FAIL"
        if r["agree_ok"] is None:
            verdict = "not judged: CUDA-graph replay vs do_bench (launch overhead included)"
        elif r["spread_ok"] is None:
            verdict += " (spread not judged: < 100 us)"
        lines.append(
            f"| {r['impl']} | {r['workload']} | {r['mode']} | {r['clock']} | {us(r['suite_s'][0])} "
            f"| {us(r['suite_s'][1])} | {us(r['independent_s'])} | {r['agreement']:+.1%} "
            f"| {r['spread']:.1%} | {verdict} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
