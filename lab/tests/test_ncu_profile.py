"""lab/ncu_profile.py without a GPU: ncu's CSV parsed into per-kernel figures, the tables and
the JSON, finding ncu, and the whole parent/child path against a fake ncu on the CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "lab" / "ncu_profile.py"
HEADER = (
    '"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream",'
    '"Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit",'
    '"Metric Value","Rule Name","Rule Type","Rule Description"'
)
FWD = "_attn_fwd"
CUTLASS = (
    "void cutlass::device_kernel<flash::FlashAttnFwdSm90<flash::CollectiveMainloopFwdSm90<2, "
    "cute::tuple<cute::C<1>, cute::C<1>, cute::C<1>>>, flash::CollectiveEpilogueFwd>>("
    "T1::Params)"
)
STALL = "smsp__average_warps_issue_stalled_{}_per_issue_active.ratio"
GMMA = "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active"


def _row(kid: str, name: str, section: str, metric: str, unit: str, value: str) -> str:
    block, grid = ("(256, 1, 1)", "(32, 128, 1)") if kid == "0" else ("(384, 1, 1)", "(132, 1, 1)")
    cells = [
        kid,
        "4242",
        "python3",
        "127.0.0.1",
        name,
        "1",
        "7",
        block,
        grid,
        "0",
        "9.0",
        section,
        metric,
        unit,
        value,
        "",
        "",
        "",
    ]
    return ",".join(f'"{c}"' for c in cells)


def sample_csv() -> str:
    """What ``ncu --csv --page details`` prints: ncu's own lines first, then two kernels; the
    second kernel lacks "Achieved Occupancy", reports its duration in another unit, has a rule
    row (no metric name) and the raw stall metrics."""
    sol, launch, occ = "GPU Speed Of Light Throughput", "Launch Statistics", "Occupancy"
    cmd = "Command line profiler metrics"
    rows = [
        _row("0", FWD, sol, "Duration", "nsecond", "2,135,616"),
        _row("0", FWD, sol, "SM Frequency", "cycle/nsecond", "1.59"),
        _row("0", FWD, sol, "Compute (SM) Throughput", "%", "64.21"),
        _row("0", FWD, sol, "Memory Throughput", "%", "18.40"),
        _row("0", FWD, "Compute Workload Analysis", "Issue Slots Busy", "%", "41.07"),
        _row("0", FWD, "Scheduler Statistics", "Issued Warp Per Scheduler", "", "0.41"),
        _row(
            "0", FWD, "Warp State Statistics", "Warp Cycles Per Issued Instruction", "cycle", "4.87"
        ),
        _row("0", FWD, launch, "Registers Per Thread", "register/thread", "168"),
        _row("0", FWD, launch, "Dynamic Shared Memory Per Block", "byte/block", "230,400"),
        _row("0", FWD, launch, "Static Shared Memory Per Block", "byte/block", "0"),
        _row("0", FWD, launch, "Block Size", "", "256"),
        _row("0", FWD, launch, "Grid Size", "", "4,096"),
        _row("0", FWD, occ, "Achieved Occupancy", "%", "12.48"),
        _row(
            "0",
            FWD,
            cmd,
            "sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_active",
            "%",
            "55.30",
        ),
        _row("0", FWD, cmd, STALL.format("long_scoreboard"), "", "0.52"),
        _row("0", FWD, cmd, STALL.format("wait"), "", "1.10"),
        _row("0", FWD, cmd, STALL.format("selected"), "", "1.00"),
        _row("0", FWD, cmd, STALL.format("barrier"), "", "0.95"),
        _row("0", FWD, cmd, STALL.format("math_pipe_throttle"), "", "1,234.5"),
        _row("1", CUTLASS, sol, "Duration", "msecond", "1.69"),
        _row("1", CUTLASS, sol, "SM Frequency", "hz", "1,755,000,000"),
        _row("1", CUTLASS, sol, "Compute (SM) Throughput", "%", "80.02"),
        _row("1", CUTLASS, launch, "Registers Per Thread", "register/thread", "128"),
        _row("1", CUTLASS, launch, "Dynamic Shared Memory Per Block", "Kbyte/block", "196.61"),
        _row("1", CUTLASS, occ, "Achieved Occupancy", "%", "n/a"),
        _row("1", CUTLASS, occ, "", "", ""),
        _row("1", CUTLASS, cmd, STALL.format("gmma"), "", "2.5"),
    ]
    prof = [
        "==PROF== Connected to process 4242 (/usr/bin/python3.11)",
        '==PROF== Profiling "_attn_fwd" - 0: 0%....50%....100% - 9 passes',
        "==PROF== Disconnected from process 4242",
    ]
    return "\n".join([*prof, HEADER, *rows, "==WARNING== a note after the table"]) + "\n"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("ncu_profile", TOOL)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def test_parse_csv_skips_ncu_lines(tool):
    rows = tool.parse_ncu_csv(sample_csv())
    assert len(rows) == 27
    assert rows[0]["Kernel Name"] == FWD and rows[0]["Metric Value"] == "2,135,616"
    assert tool.parse_ncu_csv("==PROF== nothing profiled\n") == []


def test_numbers_and_units(tool):
    assert tool.parse_number("1,234.5") == 1234.5
    assert tool.parse_number("n/a") is None and tool.parse_number("") is None
    assert tool.duration_us(2135616.0, "nsecond") == pytest.approx(2135.616)
    assert tool.duration_us(1.69, "msecond") == pytest.approx(1690.0)
    assert tool.duration_us(12.0, "usecond") == 12.0
    assert tool.freq_ghz(1.755e9, "hz") == pytest.approx(1.755)
    assert tool.freq_ghz(1590.0, "cycle/usecond") == pytest.approx(1.59)
    assert tool.kib(230400.0, "byte/block") == pytest.approx(225.0)
    assert tool.kib(196.61, "Kbyte/block") == pytest.approx(192.0, abs=0.01)
    assert tool.duration_us(1.0, "fortnight") is None


def test_kernels_and_summaries(tool):
    k0, k1 = tool.build_kernels(tool.parse_ncu_csv(sample_csv()))
    assert (k0["id"], k1["id"]) == ("0", "1")
    assert k0["short"] == FWD
    assert k1["short"].startswith("flash::FlashAttnFwdSm90<flash::Collec")
    assert len(k1["short"]) == 40 and k1["short"].endswith("...")
    s0, s1 = k0["summary"], k1["summary"]
    assert s0["duration_us"] == pytest.approx(2135.616)
    assert s0["sm_ghz"] == pytest.approx(1.59)
    assert s0["tensor_pct"] == pytest.approx(55.3)
    assert s0["issue_pct"] == pytest.approx(41.07)
    assert s0["issued_warp"] == pytest.approx(0.41)
    assert (s0["regs"], s0["block"], s0["grid"]) == (168.0, 256.0, 4096.0)
    assert s0["smem_dyn_kib"] == pytest.approx(225.0)
    assert s0["occ_pct"] == pytest.approx(12.48)
    assert s1["duration_us"] == pytest.approx(1690.0)
    assert s1["sm_ghz"] == pytest.approx(1.755)
    assert s1["occ_pct"] is None  # "n/a"
    assert s1["tensor_pct"] is None and s1["issue_pct"] is None  # not reported
    assert s1["grid"] == "(132, 1, 1)"  # from the launch columns
    assert s0["sources"]["tensor_pct"] == f"{tool.TENSOR_ALL} [%]"
    assert (
        s1["sources"]["duration_us"] == "Duration [msecond]" and "tensor_pct" not in s1["sources"]
    )
    assert [len(k["rows"]) for k in (k0, k1)] == [19, 7]  # the rule row left out


def test_stalls_ranked_without_selected(tool):
    k0, k1 = tool.build_kernels(tool.parse_ncu_csv(sample_csv()))
    top = k0["summary"]["stalls"]
    assert [s["reason"] for s in top] == [
        "math_pipe_throttle",
        "wait",
        "barrier",
        "long_scoreboard",
    ]
    assert top[0]["cycles_per_issue"] == 1234.5
    assert top[1]["share"] == pytest.approx(1.10 / 4.87)
    assert k1["summary"]["stalls"] == [{"reason": "gmma", "cycles_per_issue": 2.5, "share": None}]
    rows = [{"name": "Stall Long Scoreboard", "value": "3.0", "unit": ""}]
    assert tool.stalls(rows, 6.0) == [
        {"reason": "long_scoreboard", "cycles_per_issue": 3.0, "share": 0.5}
    ]


def test_tables(tool):
    kernels = tool.build_kernels(tool.parse_ncu_csv(sample_csv()))
    case = {
        "impl": "triton-flash",
        "workload": "w",
        "profiled_workload": "w",
        "mode": "forward",
        "status": "ok",
        "kernels": kernels,
        "sum_duration_us": 3825.616,
    }
    text = tool.case_table(case)
    assert "k1 = #0 _attn_fwd" in text and "k2 = #1 flash::FlashAttnFwdSm90" in text
    line = next(x for x in text.splitlines() if x.startswith("Duration [us]"))
    assert line.split()[2:] == ["2135.6", "1690"]
    stall = next(x for x in text.splitlines() if x.startswith("Stall #1"))
    assert "math_pipe_throttle 1234.50 (25349%)" in stall and "gmma 2.50" in stall
    other = {**case, "impl": "fa4", "sum_duration_us": 1912.808}
    skipped = {
        "impl": "sdpa-cudnn",
        "profiled_workload": "w",
        "mode": "forward",
        "status": "skip",
        "reason": "no CUDA device visible",
        "kernels": [],
    }
    summary = tool.summary_table([case, other, skipped]).splitlines()
    ours = next(x for x in summary if " triton-flash " in x)
    assert "3.826" in ours and "2.00" in ours and "math_pipe_throttle" in ours
    assert "skip: no CUDA device visible" in next(x for x in summary if "sdpa-cudnn" in x)


def test_metric_names_and_filter(tool):
    text = '"Metric name","Metric type","Metric unit"\n"sm__pipe_tensor_cycles_active","C","c"\n'
    assert tool.parse_metric_names(text) == {"sm__pipe_tensor_cycles_active"}
    available = {f"m{i}__x" for i in range(60)} | {"sm__pipe_tensor_cycles_active"}
    kept, dropped = tool.usable_metrics([tool.TENSOR_ALL, GMMA], available)
    assert kept == [tool.TENSOR_ALL] and dropped == [GMMA]
    assert tool.usable_metrics([GMMA], None) == ([GMMA], [])
    # not in Nsight Compute 2025.3.1 on an H100: not asked for by default
    assert GMMA not in tool.DEFAULT_METRICS and tool.TENSOR_HMMA in tool.DEFAULT_METRICS


def test_command_line(tool):
    cmd = tool.ncu_command("/x/ncu", ["py", "tool.py"], "/t/log.csv", ["a.sum", "b.avg"])
    text = " ".join(cmd)
    assert cmd[0] == "/x/ncu" and cmd[-2:] == ["py", "tool.py"]
    # only what the child launches between cudaProfilerStart and cudaProfilerStop
    assert "--clock-control none --target-processes all --profile-from-start off --section" in text
    assert "--nvtx" not in text
    assert text.count("--section ") == 6 and "--section WarpStateStats" in text
    assert "--csv --page details" in text and "--log-file /t/log.csv" in text
    assert "--metrics a.sum,b.avg" in text
    assert "--metrics" not in tool.ncu_command("ncu", [], "l", [])


def test_workload_names(tool):
    w = tool.resolve_workload("h32d128/prefill/s4096/b4/full/bf16", "forward")
    assert (w.batch, w.q_heads, w.kv_heads, w.q_len, w.head_dim, w.causal) == (
        4,
        32,
        32,
        4096,
        128,
        False,
    )
    twin = tool.resolve_workload("h32d128/prefill/s4096/b4/full/bf16", "forward_backward")
    assert twin.name == "h32d128/train/s4096/b4/full/bf16"
    cat = tool.resolve_workload("mha32-d128/prefill/s4096/b4/causal/bf16", "forward_backward")
    assert cat.name == "mha32-d128/train/s4096/b4/causal/bf16" and cat.causal
    gqa = tool.resolve_workload("h32kv8d128/decode/kv16384/b8/full/bf16", "forward")
    assert (gqa.kv_heads, gqa.q_len, gqa.kv_len) == (8, 1, 16384)


def test_ncu_not_found(tool, monkeypatch, capsys):
    monkeypatch.setattr(tool.shutil, "which", lambda name: None)
    monkeypatch.setattr(tool, "NCU_GLOBS", ("/nonexistent/*/ncu",))
    assert tool.find_ncu() is None
    assert tool.main(["-i", "eager"]) == 2
    assert "ncu not found" in capsys.readouterr().err
    monkeypatch.undo()
    assert tool.main(["--ncu", "/nonexistent/bin/ncu"]) == 2
    assert "/nonexistent/bin/ncu" in capsys.readouterr().err


def test_unknown_names_stop_before_profiling(tool, fake_ncu, capsys):
    assert tool.main(["--ncu", str(fake_ncu), "-i", "triton-flsh"]) == 2
    assert "unknown implementation 'triton-flsh'" in capsys.readouterr().err
    assert tool.main(["--ncu", str(fake_ncu), "-w", "h32d128/prefill/s4096"]) == 2
    assert "unknown workload" in capsys.readouterr().err


def test_find_newest_install(tool, monkeypatch, tmp_path):
    for version in ("2024.3.2", "2025.3.1", "2025.10.0"):
        exe = tmp_path / version / "ncu"
        exe.parent.mkdir()
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    monkeypatch.setattr(tool.shutil, "which", lambda name: None)
    monkeypatch.setattr(tool, "NCU_GLOBS", (str(tmp_path / "*" / "ncu"),))
    assert tool.find_ncu() == str(tmp_path / "2025.10.0" / "ncu")


FAKE_NCU = """\
#!{python}
# A stand-in for ncu: runs the profiled command, then writes the canned CSV to --log-file.
# It refuses a command line that would not limit profiling to the child's
# cudaProfilerStart/Stop range, as the real ncu would profile every kernel (or none).
import os, subprocess, sys
args = sys.argv[1:]
if args[:1] == ["--version"]:
    print("NVIDIA (R) Nsight Compute Command Line Profiler\\nVersion 2099.1.0.0 (fake)")
    sys.exit(0)
if "--query-metrics" in args:
    sys.exit(1)
start = next(i for i, a in enumerate(args) if a.endswith("ncu_profile.py")) - 1
options = args[:start]
i = options.index("--profile-from-start")
if options[i + 1] != "off" or any(a.startswith("--nvtx") for a in options):
    print("==ERROR== fake ncu: wants --profile-from-start off and no NVTX filter")
    sys.exit(9)
if "--metrics" in args and os.environ.get("FAKE_NCU_REFUSE_METRICS"):
    print("==ERROR== Failed to find metric sm__made_up")
    sys.exit(1)
log = args[args.index("--log-file") + 1]
rc = subprocess.run(args[start:]).returncode
with open(log, "w") as f:
    if os.environ.get("FAKE_NCU_NOPERM"):
        f.write("==ERROR== ERR_NVGPUCTRPERM - The user does not have permission to access "
                "NVIDIA GPU Performance Counters on the target device 0.\\n")
        sys.exit(rc)
    ok = rc == 0
    f.write(open(os.environ["FAKE_NCU_CSV"]).read() if ok else "==PROF== No kernels\\n")
sys.exit(rc)
"""


@pytest.fixture
def fake_ncu(tmp_path, monkeypatch):
    exe = tmp_path / "ncu"
    exe.write_text(textwrap.dedent(FAKE_NCU.format(python=sys.executable)))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    csv_path = tmp_path / "sample.csv"
    csv_path.write_text(sample_csv())
    monkeypatch.setenv("FAKE_NCU_CSV", str(csv_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), *sys.path]))
    return exe


def test_end_to_end_with_fake_ncu(tool, fake_ncu, tmp_path, capsys):
    """Parent -> fake ncu -> child on the CPU: a profiled case, a skip, the train twin."""
    out = tmp_path / "out.json"
    argv = [
        "--ncu",
        str(fake_ncu),
        "--device",
        "cpu",
        "-i",
        "eager",
        "-i",
        "fa4",
        "-w",
        "h2d32/prefill/s64/b1/full/fp32",
        "-m",
        "forward",
        "-m",
        "forward_backward",
        "--json",
        str(out),
        "--with-timing",
    ]
    assert tool.main(argv) == 0
    printed = capsys.readouterr().out
    assert "Version 2099.1.0.0 (fake)" in printed and "summary" in printed
    data = json.loads(out.read_text())
    assert data["ncu"]["version"] == "Version 2099.1.0.0 (fake)"
    assert data["metrics_used"] == list(tool.DEFAULT_METRICS)  # query failed: nothing dropped
    assert data["range"] == "cudaProfilerStart/Stop" and "nvtx_range" not in data
    cases = {(c["impl"], c["mode"]): c for c in data["cases"]}
    eager = cases[("eager", "forward")]
    assert eager["status"] == "ok" and eager["child"]["status"] == "ok"
    assert eager["sum_duration_us"] == pytest.approx(2135.616 + 1690.0)
    assert [k["id"] for k in eager["kernels"]] == ["0", "1"]
    assert eager["kernels"][0]["rows"][0] == {
        "section": "GPU Speed Of Light Throughput",
        "name": "Duration",
        "unit": "nsecond",
        "value": "2,135,616",
    }
    (command,) = eager["commands"]
    assert "--profile-from-start" in command and "--child" in command
    assert "nvtx_include" not in eager
    assert cases[("eager", "forward_backward")]["profiled_workload"] == (
        "h2d32/train/s64/b1/full/fp32"
    )
    assert eager["timing"]["status"] == "ok" and eager["timing"]["median_s"] > 0
    assert eager["timing"]["clock"] == "perf_counter"  # attnbench's CPU timing, no ncu
    fa4 = cases[("fa4", "forward")]
    assert fa4["status"] == "skip" and "fa4" in fa4["reason"] and not fa4["kernels"]
    assert "timing" not in fa4
    summary = printed[printed.index("\nsummary") :].splitlines()
    row = next(x for x in summary if " forward " in x and " eager " in x)
    assert f" {eager['timing']['median_s'] * 1e3:.3f} " in row  # the "timed ms" column


def test_budget_spent(tool, fake_ncu, tmp_path):
    out = tmp_path / "out.json"
    argv = ["--ncu", str(fake_ncu), "-i", "eager", "--budget", "0", "--json", str(out)]
    assert tool.main(argv) == 1
    (case,) = json.loads(out.read_text())["cases"]
    assert case["status"] == "skip" and "budget" in case["reason"] and "commands" not in case


def test_refused_metrics_retried_and_nothing_profiled(
    tool, fake_ncu, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("FAKE_NCU_REFUSE_METRICS", "1")
    out = tmp_path / "out.json"
    argv = [
        "--ncu",
        str(fake_ncu),
        "--device",
        "cpu",
        "-i",
        "eager",
        "-w",
        "h2d32/prefill/s64/b1/full/fp32",
        "--json",
        str(out),
    ]
    failed = {"status": "error", "reason": "time child exit code 1", "tail": ["Killed"]}
    monkeypatch.setattr(tool.Runner, "time_call", lambda self, *a: failed)
    assert tool.main([*argv, "--with-timing"]) == 0
    case = json.loads(out.read_text())["cases"][0]
    assert case["status"] == "ok" and case["metrics"] == [] and len(case["commands"]) == 2
    assert case["timing"] == failed
    printed = capsys.readouterr().out
    assert "   ERROR: time child exit code 1\n   | Killed\n" in printed  # a failed timing says so
    monkeypatch.setenv("FAKE_NCU_CSV", str(tmp_path / "empty.csv"))
    (tmp_path / "empty.csv").write_text("==PROF== Disconnected\n")
    assert tool.main([*argv, "--metrics", "none"]) == 1  # nothing at all profiled
    case = json.loads(out.read_text())["cases"][0]
    assert case["status"] == "error" and "no kernels profiled" in case["reason"]
    printed = capsys.readouterr().out
    assert "ERROR: no kernels profiled (ncu exit code 0)" in printed
    assert "   | ==PROF== Disconnected" in printed  # ncu's last lines


def test_time_out_kills_the_process_group(tool, tmp_path):
    """ncu's target process must not outlive a time-out: the whole group is killed."""
    pid_file = tmp_path / "grandchild.pid"
    script = f"sleep 60 & echo $! > {pid_file}; echo started; wait"
    start = time.perf_counter()
    rc, out = tool.run_group(["sh", "-c", script], timeout=1.0)
    assert rc is None and "started" in out and time.perf_counter() - start < 30
    stat_file = Path(f"/proc/{int(pid_file.read_text())}/stat")
    time.sleep(0.2)
    # gone, or a zombie nobody reaped yet (a container's init may not reap)
    assert not stat_file.exists() or stat_file.read_text().split(")")[-1].split()[0] == "Z"


def test_ncu_env_formats_numbers_the_c_way(tool, monkeypatch):
    monkeypatch.setenv("LC_ALL", "ru_RU.UTF-8")  # would print 2,75 for 2.75
    env = tool.ncu_env()
    assert env["LC_NUMERIC"] == "C" and "LC_ALL" not in env and env["LANG"] == "ru_RU.UTF-8"


def test_no_kernels_no_retry(tool, fake_ncu, tmp_path, monkeypatch, capsys):
    """ncu ran but profiled nothing, blaming no metric: one run only, an error, ncu's lines."""
    (tmp_path / "empty.csv").write_text("==PROF== No kernels were profiled.\n")
    monkeypatch.setenv("FAKE_NCU_CSV", str(tmp_path / "empty.csv"))
    out = tmp_path / "out.json"
    argv = ["--ncu", str(fake_ncu), "--device", "cpu", "-i", "eager", "--with-timing",
            "-w", "h2d32/prefill/s64/b1/full/fp32", "--json", str(out)]  # fmt: skip
    assert tool.main(argv) == 1
    (case,) = json.loads(out.read_text())["cases"]
    assert case["status"] == "error" and len(case["commands"]) == 1
    assert case["reason"] == "no kernels profiled (ncu exit code 0)" and "timing" not in case
    printed = capsys.readouterr().out
    assert "   | ==PROF== No kernels were profiled." in printed and "-- timing" not in printed


def test_child_profiles_one_call_between_profiler_start_and_stop(tool, monkeypatch, tmp_path):
    """The child's CUDA path (no GPU here: torch.cuda and attnbench.prepare stubbed): two
    warm-up calls, a synchronize, then cudaProfilerStart, one call, a synchronize,
    cudaProfilerStop; nothing of NVTX."""
    import torch

    import attnbench

    events: list[str] = []

    class FakeCase:
        config = {"BLOCK_M": 128}

        def step(self, mode):
            events.append(f"step {mode}")

    monkeypatch.setattr(attnbench, "prepare", lambda impl, w, device, mode: FakeCase())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: events.append("sync"))
    monkeypatch.setattr(torch.cuda.profiler, "start", lambda: events.append("start"))
    monkeypatch.setattr(torch.cuda.profiler, "stop", lambda: events.append("stop"))
    for name in ("range_start", "range_end", "range_push", "range_pop", "mark"):
        monkeypatch.setattr(torch.cuda.nvtx, name, lambda *a: events.append("nvtx"))
    status = tmp_path / "status.json"
    argv = ["--child", "-i", "triton-flash", "-w", "h2d32/prefill/s64/b1/full/bf16",
            "-m", "forward_backward", "--status", str(status)]  # fmt: skip
    assert tool.main(argv) == 0
    assert events == ["step forward_backward", "step forward_backward", "sync", "start",
                      "step forward_backward", "sync", "stop"]  # fmt: skip
    written = json.loads(status.read_text())
    assert written["status"] == "ok" and written["capability"] == [9, 0]
    assert written["profiled_workload"] == "h2d32/train/s64/b1/full/bf16"


def test_plain_table_without_tabulate(tool, monkeypatch):
    monkeypatch.setitem(sys.modules, "tabulate", None)  # import fails
    text = tool.table([["Duration [us]", "2135.6"], ["Regs", "168"]], ["metric", "k1"])
    assert text.splitlines() == [
        "metric         k1",
        "-------------  ------",
        "Duration [us]  2135.6",
        "Regs           168",
    ]


def test_no_counter_permission_no_retry(tool, fake_ncu, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_NCU_NOPERM", "1")
    out = tmp_path / "out.json"
    argv = ["--ncu", str(fake_ncu), "--device", "cpu", "-i", "eager",
            "-w", "h2d32/prefill/s64/b1/full/fp32", "--json", str(out)]  # fmt: skip
    assert tool.main(argv) == 1
    (case,) = json.loads(out.read_text())["cases"]
    assert case["status"] == "error" and len(case["commands"]) == 1
    assert "ERR_NVGPUCTRPERM" in capsys.readouterr().out


def test_real_ncu_output_rows_end_after_the_value(tool):
    """ncu 2025.3.1's own CSV (captured on the H100, a cuBLAS GEMM, thousands separators):
    a metric's row stops after its value, 16 cells under a 20-column header; a rule's row
    fills them. Both kinds are kept, and the kernel gets its figures."""
    text = (ROOT / "lab" / "tests" / "data" / "ncu-2025.3.1-h100-cublas.csv").read_text()
    rows = tool.parse_ncu_csv(text)
    assert len(rows) == 59
    assert rows[0]["Metric Name"] == "DRAM Frequency" and rows[0]["Rule Name"] == ""
    (kernel,) = tool.build_kernels(rows)
    s = kernel["summary"]
    assert s["duration_us"] == pytest.approx(59.84)
    assert s["sm_ghz"] == pytest.approx(1.968455, rel=1e-5)
    assert s["regs"] == 224 and s["occ_theory_pct"] == 12.5
