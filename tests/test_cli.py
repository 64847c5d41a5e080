"""The ``attnbench`` command line, run in-process (plus one ``python -m attnbench`` check)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import replace

import pytest

import attnbench
from attnbench import cli
from attnbench.impls.eager import Eager
from attnbench.impls.registry import _REGISTRY

SMALL = "h8d64/prefill/s512/b1/causal/fp32"
CUDA = attnbench.devices.default_device().type == "cuda"
TINY_FLAGS = ["--heads", "4", "--kv-heads", "2", "--seq-len", "64", "--head-dim", "32"]


# a record whose samples never settled (attnbench.measure.timing.until_steady)
NOT_STEADY = "not steady: 4 batches (medians 4300.0, 3000.0, 4300.0, 2500.0 us); kept the lowest"


def test_list_names_every_implementation_and_set(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in attnbench.impl_names():
        assert name in out
    for name in attnbench.set_names():
        assert name in out


def test_list_workloads_of_a_set(capsys):
    assert cli.main(["list", "--workloads", "quick"]) == 0
    lines = capsys.readouterr().out.split()
    assert lines == [w.name for w in attnbench.workload_set("quick")]


def test_python_dash_m_list():
    out = subprocess.run(
        [sys.executable, "-m", "attnbench", "list"], capture_output=True, text=True, check=True
    )
    assert "chunked" in out.stdout and "quick" in out.stdout


def test_run_prints_both_and_a_winner_and_writes_json_csv(capsys, tmp_path):
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    argv = ["run", "-i", "eager", "-i", "chunked", "-w", SMALL, "--json", str(js), "--csv", str(cs)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert SMALL in out and "median ± IQR" in out
    table = out.split("Winner")[0]
    assert "\neager " in table and "\nchunked " in table
    winner_line = [line for line in out.splitlines() if line.startswith("prefill [forward]")]
    assert winner_line and any(n in winner_line[0] for n in ("eager", "chunked"))

    doc = json.loads(js.read_text())
    assert doc["system"]["torch"] and "cpu" in doc["system"]
    assert [(r["impl"], r["workload"]) for r in doc["records"]] == [
        ("eager", SMALL),
        ("chunked", SMALL),
    ]
    assert all(r["time"]["median"] > 0 for r in doc["records"])

    with cs.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {"impl", "time.median", "speedup"} <= set(rows[0])
    assert float(rows[0]["speedup"]) == pytest.approx(1.0)


def test_run_marks_times_a_reader_should_not_trust_blindly(capsys, monkeypatch):
    """A record whose samples never settled or taken beside another program on the GPU is
    starred in the table, with the reason under it."""
    real_sweep = cli.sweep

    def sweep(*args, **kwargs):
        recs = real_sweep(*args, **kwargs)
        recs[0].time = replace(recs[0].time, note=NOT_STEADY)
        recs[1].extra["shared_gpu"] = "2 processes on the GPU at the start, 2 at the end"
        return recs

    monkeypatch.setattr(cli, "sweep", sweep)
    assert cli.main(["run", "-i", "eager", "-i", "chunked", "-w", SMALL]) == 0
    out = capsys.readouterr().out
    assert out.count(" *") == 2
    assert f"* eager: {NOT_STEADY}" in out
    assert "* chunked: 2 processes on the GPU at the start, 2 at the end" in out
    monkeypatch.setattr(cli, "sweep", real_sweep)  # an ordinary run: no star, no reason
    assert cli.main(["run", "-i", "eager", "-w", SMALL]) == 0
    assert " *" not in capsys.readouterr().out


def test_run_flag_built_workload_and_its_skips_on_one_line(capsys):
    argv = ["run", "-i", "eager", "-i", "sdpa-efficient", "-i", "sdpa-cudnn", *TINY_FLAGS]
    assert cli.main([*argv, "--dtype", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "h4kv2d32/prefill/s64/b1/causal/fp32" in out
    _assert_fits(out)
    if not CUDA:
        assert "\nskipped: sdpa-efficient, sdpa-cudnn (needs a CUDA device)\n" in out
        assert "sdpa-efficient:" not in out  # the name is not repeated inside its reason


def test_check_passes_on_honest_implementations(capsys):
    argv = ["check", "-i", "eager", "-i", "chunked", *TINY_FLAGS, "--scenario", "train"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "2 of 2 supported pairs pass, 0 fail" in out


class _Broken(Eager):
    """Right shape, wrong scale: every magnitude but the near-one-hot one is off."""

    name = "test-broken"

    def forward(self, q, k, v, *, causal, scale):
        return super().forward(q, k, v, causal=causal, scale=scale * 1.5)


def test_check_fails_on_a_wrong_implementation(capsys, monkeypatch):
    monkeypatch.setitem(_REGISTRY, _Broken.name, _Broken())
    argv = ["check", "-i", "eager", "-i", _Broken.name, *TINY_FLAGS]
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "FAIL  test-broken on h4kv2d32/prefill/s64/b1/causal/fp32" in out
    assert "1 of 2 supported pairs pass, 1 fail" in out


def _assert_fits(out: str, width: int = 120) -> None:
    wide = [line for line in out.splitlines() if len(line) > width]
    assert not wide, f"{len(wide)} lines wider than {width}: {wide[0]!r}"
    assert not [line for line in out.splitlines() if line != line.rstrip()], "trailing spaces"


def test_list_fits_120_columns(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    _assert_fits(out)
    for name in attnbench.impl_names():  # each name whole, not folded over two lines
        assert any(line.startswith(name + " ") for line in out.splitlines()), name


def _fake_sweep(impls, workloads, mode, device, *, baseline=None, on_record=None, **_):
    """Records as a sweep writes them, without measuring: unsupported pairs skipped with the
    implementation's own reasons, the others timed at 123 us (the widest cells: 3 digits)."""
    from attnbench.measure.timing import TimingStats
    from attnbench.sweep import Record

    records = []
    for w in workloads:
        for impl in impls:
            why = impl.unsupported_reasons(w, device)
            rec = Record(impl.name, w.name, mode, device.type)
            if why:
                rec.reason = f"{impl.name}: {'; '.join(why)}"
            else:
                rec.time = TimingStats.from_samples([123.4e-6, 125.6e-6, 121.9e-6], "perf_counter")
                rec.tflops, rec.gbps, rec.tokens_per_s = 123.4, 1234.5, 1.234e7
                rec.host_peak_rss, rec.speedup, rec.max_abs_error = 987 << 20, 12.34, 1.2e-7
            records.append(rec)
    records[0].time = replace(records[0].time, note=NOT_STEADY)
    for rec in records:
        on_record(rec)
    return records


def test_run_of_every_implementation_fits_120_columns_skips_collapsed(capsys, monkeypatch):
    """Every implementation on the quick set (sweep faked: the text is the point): tables fit
    120 columns; an implementation skipped everywhere for one reason is named once, grouped
    with the others of that reason; a skip of one workload only is one line under its table."""
    monkeypatch.setattr(cli, "sweep", _fake_sweep)
    assert cli.main(["run", "--quick", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    _assert_fits(out)
    impls = attnbench.impl_names(benchmarked_only=True)
    quick = attnbench.workload_set("quick")
    assert all(w.name in out for w in quick)
    everywhere = out.split("skipped on every workload:\n")[1].split("\n\n")[0].splitlines()
    assert "  sdpa-efficient, sdpa-cudnn: needs a CUDA device" in everywhere
    for name in impls:  # measured in the tables, or named exactly once as skipped
        in_tables = sum(line.startswith(name + " ") for line in out.splitlines())
        skips = sum(name in line.strip().split(": ")[0].split(", ") for line in everywhere)
        assert (in_tables > 0) != (skips == 1), name
    skip_lines = [line for line in out.splitlines() if line.startswith("skipped: ")]
    assert len(skip_lines) <= len(quick) + 1  # one per table at most (train: two tables)
    assert "* eager: not steady" in out


def test_check_matrix_too_wide_is_split_to_fit_120_columns(capsys, monkeypatch):
    """Every implementation on the GPU set (check_pair faked): the matrix is cut into tables
    that fit 120 columns, each naming the workloads; every implementation appears once."""
    monkeypatch.setattr(cli, "check_pair", lambda impl, w, device: ("ok", []))
    argv = ["check", "-w", "gpu", "--device", "cpu"]
    for name in attnbench.impl_names(benchmarked_only=True):
        argv += ["-i", name]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    _assert_fits(out)
    headers = [line.split() for line in out.splitlines() if line.startswith("workload ")]
    assert len(headers) >= 2
    assert sorted(h for hs in headers for h in hs[1:]) == sorted(
        attnbench.impl_names(benchmarked_only=True)
    )
    for w in attnbench.workload_set("gpu"):
        assert sum(line.startswith(w.name + " ") for line in out.splitlines()) == len(headers)


def test_check_names_implementations_that_cannot_run_anything_once(capsys):
    argv = ["check", "-i", "eager", "-i", "sdpa-efficient", "-i", "sdpa-cudnn", *TINY_FLAGS]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    _assert_fits(out)
    if not CUDA:
        header = next(line for line in out.splitlines() if line.startswith("workload"))
        assert header.split() == ["workload", "eager"]
        assert "n/a on every workload:\n  sdpa-efficient, sdpa-cudnn: needs a CUDA device" in out


SIZE_FLAGS = ("--batch", "--heads", "--kv-heads", "--seq-len", "--kv-len", "--head-dim")


@pytest.mark.parametrize("value", ["0", "-3"])
@pytest.mark.parametrize("flag", SIZE_FLAGS)
def test_a_size_must_be_positive(flag, value, capsys):
    """0 once fell back to the flag's default and ran; now it is an error naming the flag."""
    for scenario in ("prefill", "decode"):
        argv = ["run", "-i", "eager", "--scenario", scenario, flag, value]
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        why = f"argument {flag}: must be a positive integer, got {value}"
        assert err == [f"attnbench: error: {why}"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["run", "-i", "nope"], "unknown implementation 'nope'"),
        (["check", "-w", "no/such/*"], "unknown workload or set"),
        (["run", "--heads", "4", "--kv-heads", "3"], "kv_heads (3) must divide q_heads (4)"),
        (["run", "--dtype", "fp4", "--heads", "2"], "fp4"),
        (["run", "--device", "tpu" if CUDA else "cuda:0"], "device"),
        (["list", "--workloads", "nope"], "unknown workload set 'nope'"),
        (["frobnicate"], "invalid choice"),
        (["run", "--seq-len", "many"], "argument --seq-len: not an integer: 'many'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, words, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnbench: error: "), captured.err
    assert words in lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_run_json_and_csv_schemas_with_ceilings(tmp_path, capsys, monkeypatch):
    from attnbench.measure import ceilings

    monkeypatch.setitem(ceilings.SIZES, "cpu", (128, 4))  # a fast roof; the schema is the point
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    argv = ["run", "-i", "eager", "-i", "sdpa-efficient", *TINY_FLAGS, "--dtype", "fp32"]
    assert cli.main([*argv, "--ceilings", "--json", str(js), "--csv", str(cs)]) == 0
    assert "ceilings fp32: " in capsys.readouterr().out
    doc = json.loads(js.read_text())
    assert set(doc) == {"system", "device", "baseline", "workloads", "records"}
    assert isinstance(doc["system"]["packages"], dict) and isinstance(doc["system"]["python"], str)
    ceil = doc["system"]["ceilings"]["fp32"]
    assert ceil["matmul_tflops"] > 0 and ceil["copy_gbps"] > 0 and isinstance(ceil["how"], str)
    (shape,) = doc["workloads"].values()
    assert shape["q_heads"] == 4 and shape["kv_heads"] == 2 and shape["head_dim"] == 32
    ok = [r for r in doc["records"] if r["reason"] is None]
    assert [r["impl"] for r in ok] == ["eager"]
    for rec in doc["records"]:
        assert set(attnbench.sweep.Record.__dataclass_fields__) == set(rec)
        assert rec["workload"] in doc["workloads"] and rec["mode"] == "forward"
    rec = ok[0]
    for key in ("tflops", "gbps", "tokens_per_s", "max_abs_error", "speedup"):
        assert isinstance(rec[key], float) and rec[key] > 0, key
    assert isinstance(rec["time"]["median"], float) and isinstance(rec["time"]["n"], int)
    assert isinstance(rec["host_peak_rss"], int)
    if not CUDA:
        skipped = next(r for r in doc["records"] if r["impl"] == "sdpa-efficient")
        assert isinstance(skipped["reason"], str) and skipped["time"] is None
    with cs.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["impl"] for r in rows] == [r["impl"] for r in doc["records"]]
    assert {"workload", "mode", "reason", "time.median", "time.n", "tflops", "gbps"} <= set(rows[0])
    assert float(rows[0]["time.median"]) == pytest.approx(rec["time"]["median"])
