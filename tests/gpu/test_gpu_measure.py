"""The measuring code on a real GPU: what a record says about the GPU it was taken on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from attnbench import prepare
from attnbench.measure.gpu_state import gpu_state
from attnbench.sweep import measure_case

# another program on the same GPU: a bf16 matmul loop in its own process (its own context)
HOG = """
import sys, time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
(a @ a).sum().item()
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for _ in range(20):
        a @ a
    torch.cuda.synchronize()
"""


def test_this_process_is_among_the_gpu_s_compute_processes():
    torch.ones(1, device="cuda")  # a context of our own
    reading = gpu_state(torch.device("cuda"))
    assert reading is not None and reading["source"] in ("nvml", "nvidia-smi")
    assert reading.get("compute_processes", 0) >= 1, reading


@pytest.fixture
def another_program_on_the_gpu():
    hog = subprocess.Popen([sys.executable, "-c", HOG, "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert hog.stdout.readline().strip() == "ready"
        yield hog
    finally:
        hog.kill()
        hog.wait()


def test_another_program_on_the_gpu_shows_in_the_record(another_program_on_the_gpu):
    """A figure taken while another process computes on the GPU says so (``shared_gpu``), and
    is slower than the same figure taken alone."""
    case = prepare("sdpa", "mha32-d128/prefill/s4096/b4/causal/bf16", "cuda")
    shared = measure_case(case, errors=False)
    another_program_on_the_gpu.kill()
    another_program_on_the_gpu.wait()
    alone = measure_case(case, errors=False)
    states = shared.extra["gpu_state"]
    print(f"\nshared: {shared.time.median * 1e3:.3f} ms ({shared.time.note}), {states}")
    print(f"alone:  {alone.time.median * 1e3:.3f} ms ({alone.time.note})")
    assert states["start"]["compute_processes"] >= 2
    assert "another program may have slowed this figure" in shared.extra["shared_gpu"]
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # under xdist the other workers share it too
        assert shared.time.median > 1.2 * alone.time.median


# one fa4 case in a fresh process: its first call's seconds and its error
FA4_CASE = """
import json, torch
from attnbench import Workload, prepare
w = Workload(1, 8, 2, 384, 384, 128, causal=True, dtype="bf16")
case = prepare("fa4", w, torch.device("cuda"), seed=0)
err = case.forward_error()
print(json.dumps({"first": case.first_call_seconds, "ok": err.within("bf16")}))
"""


def test_fa4_disk_cache_spares_a_second_process_the_compile(tmp_path):
    """``ATTNBENCH_FA4_DISK_CACHE=1``: the first process compiles flash-attn-4's kernel and
    stores it under attnbench's cache folder; a second process loads it: its first call takes
    under half the first process's, and both are right."""
    import json

    from attnbench import get_impl

    if get_impl("fa4").availability():
        pytest.skip(get_impl("fa4").availability())
    env = {**os.environ, "ATTNBENCH_FA4_DISK_CACHE": "1", "ATTNBENCH_CACHE_DIR": str(tmp_path)}
    for name in ("FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED", "FLASH_ATTENTION_CUTE_DSL_CACHE_DIR"):
        env.pop(name, None)
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", FA4_CASE], env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert any((tmp_path / "fa4-cute-dsl").rglob("*")), "nothing stored"
    assert all(r["ok"] for r in runs), runs
    assert runs[1]["first"] < 0.5 * runs[0]["first"], runs


def test_timing_is_two_steady_batches_and_agrees_with_do_bench():
    """time_cuda on a real call: the figure holds the samples of at least two batches, it lies
    within 3 % of the range of triton's do_bench of the same call taken just before and just
    after it (a heavy call's clock falls under the power limit over the seconds of the test:
    on an H200, 689c0f5, one do_bench taken only after it differed by over 5 %), and a call
    under 50 us is timed as replays of one CUDA graph."""
    from triton.testing import do_bench

    from attnbench.measure.timing import GRAPH_BELOW_S, settle, time_cuda
    from attnbench.settings import settle_ms

    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)

    def call():
        return a @ a

    def reference() -> float:
        settle(call, settle_ms())  # as time_cuda does before its samples
        return do_bench(call, warmup=25, rep=100, return_mode="median") / 1e3

    before = reference()
    s = time_cuda(call, graph=False)
    after = reference()
    assert s.clock == "cuda_event" and s.n >= 2, s
    low, high = min(before, after), max(before, after)
    assert 0.97 * low <= s.median <= 1.03 * high, (before, s.median, after, s.note)
    small = torch.randn(64, 64, device="cuda")
    short = time_cuda(lambda: small @ small)
    assert short.median < GRAPH_BELOW_S and short.clock == "cuda_graph", short
    assert short.note.startswith("CUDA-graph replay"), short.note
