"""The in-house kernels' fp8 options side by side with bf16 on one GPU (needs CUDA, sm_89+).

    python lab/fp8_check.py            # JSON to $OUT/fp8_check.json (or /tmp)

- Decode (B=8, 32 query / 8 KV heads, D=128, KV 16k and 64k): the general kernel's key tile
  and key splits, through CUDA-graph replay (``triton.testing.do_bench_cudagraph``), in GB/s
  of K and V read; bf16 and fp8 on the same grid of options.
- Dense forward (B=4, H=32, D=128, S=4096/8192, causal and not): the chooser's configuration,
  in TFLOP/s (``triton.testing.do_bench``, L2 flushed).
- The card's ceilings (``attnbench.measure.ceilings``): matmul and device-copy rates.

What it printed on an H200 is in records/h200-x1/checks/fp8_check-*.json; the
choices it informed are in ``configs.choose_fwd_config`` and lab/NOTEBOOK.md (v6).
"""

from __future__ import annotations

import functools
import json
import os
import sys

import torch
from triton.testing import do_bench, do_bench_cudagraph

from attnbench.kernels.flash import forward as ff
from attnbench.kernels.flash.configs import FwdConfig
from attnbench.kernels.flash.decode import decode
from attnbench.measure.ceilings import measure_ceilings

DTYPES = {"bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn}
DECODE_OPTIONS = ((64, 2), (128, 2), (64, 4), (128, 4), (128, 8))  # (block_n, splits)


def _randn(gen: torch.Generator, *shape: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(*shape, device="cuda", generator=gen).to(dtype)


def decode_rows(gen: torch.Generator) -> list[dict]:
    rows = []
    for kv in (16384, 65536):
        for name, dt in DTYPES.items():
            q = _randn(gen, 8, 32, 1, 128, dtype=dt)
            k, v = (_randn(gen, 8, 8, kv, 128, dtype=dt) for _ in range(2))
            nbytes = 2 * k.numel() * k.element_size()
            chosen = ff.default_fwd_config(q, k, v, ff.MaskArgs(False))
            for block_n, splits in DECODE_OPTIONS:
                cfg = FwdConfig(16, block_n, 4, 3, False, True, splits, False)
                call = functools.partial(decode, q, k, v, config=cfg)
                call()
                ms = do_bench_cudagraph(call, rep=100)
                rows.append({
                    "kind": "decode", "kv": kv, "dtype": name, "block_n": block_n,
                    "splits": splits, "us": ms * 1e3, "gbps": nbytes / ms / 1e6,
                    "chosen": (chosen.block_n, chosen.num_splits) == (block_n, splits),
                })  # fmt: skip
                print(rows[-1], flush=True)
    return rows


def prefill_rows(gen: torch.Generator) -> list[dict]:
    rows = []
    for s in (4096, 8192):
        for causal in (False, True):
            flops = 4 * 4 * 32 * s * s * 128 / (2 if causal else 1)
            for name, dt in DTYPES.items():
                q, k, v = (_randn(gen, 4, 32, s, 128, dtype=dt) for _ in range(3))
                mask = ff.MaskArgs(causal)
                cfg = ff.default_fwd_config(q, k, v, mask)
                call = functools.partial(ff.attention_forward, q, k, v, 128**-0.5, mask, cfg)
                call()
                ms = do_bench(call, rep=200)
                rows.append({"kind": "prefill", "s": s, "causal": causal, "dtype": name,
                             "path": "chosen", "ms": ms, "tflops": flops / ms / 1e9})  # fmt: skip
                print(rows[-1], flush=True)
    return rows


def main() -> int:
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        print("fp8_check: needs a CUDA GPU with fp8 (sm_89 or newer)", file=sys.stderr)
        return 2
    out: dict = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    for name in DTYPES:
        out[f"ceilings_{name}"] = measure_ceilings("cuda", name).as_dict()
    print(out, flush=True)
    gen = torch.Generator(device="cuda").manual_seed(0)
    out["rows"] = decode_rows(gen) + prefill_rows(gen)
    path = os.path.join(os.environ.get("OUT", "/tmp"), "fp8_check.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("JSON:", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
