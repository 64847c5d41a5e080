"""tools/results_table.py: the tables of docs/results.md, read from an asv result file."""

from __future__ import annotations

import importlib.util
import json

import pytest

from .conftest import ROOT


def _tool():
    spec = importlib.util.spec_from_file_location(
        "results_table", ROOT / "tools" / "results_table.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _asv_file(tmp_path):
    cols = ["result", "params"]
    prefill = [["'a'", "'b'"], ["'m/prefill/s1'"]]
    decode = [["'a'", "'b'"], ["'m/decode/kv8'"]]
    results = {
        "forward.ForwardMetrics.track_tflops": [[100.4, float("nan")], prefill],
        "forward.ForwardMetrics.track_seconds": [[1e-3, None], prefill],
        "forward.DecodeMetrics.track_gbps": [[2000.0, 2500.6], decode],
        "train.ForwardBackwardMetrics.track_tflops": [[50.0, None], [["'a'", "'b'"], ["'t'"]]],
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"result_columns": cols, "results": results}))
    return path


def test_matrix_has_one_row_per_workload_and_the_scenarios_figure(tmp_path):
    lines = _tool().matrix(_asv_file(tmp_path)).splitlines()
    assert lines[0] == "| workload | mode | a | b |"
    assert "| `m/prefill/s1` | forward | 100 | – |" in lines  # TFLOP/s; NaN is a skip
    assert "| `m/decode/kv8` | forward | 2000 | 2501 |" in lines  # GB/s for decode
    assert "| `t` | fwd+bwd | 50 | – |" in lines


def test_pair_table_reads_every_forward_class(tmp_path):
    text = _tool().table(_asv_file(tmp_path))
    assert "| m/prefill/s1 | a | 1.00 ms | 100.4 |" in text
    assert "| m/decode/kv8 | b |" in text and "2501" in text


def test_count_counts_benchmarks_values_and_the_measured_ones(tmp_path):
    assert _tool().count(_asv_file(tmp_path)) == "r.json: 4 benchmarks, 8 values, 5 measured"


def test_spread_compares_two_runs_pair_by_pair(tmp_path):
    cols = ["result", "params"]
    params = [["'a'", "'b'", "'c'"], ["'m/prefill/s1'"]]

    def run(name, seconds):
        path = tmp_path / name
        results = {"forward.ForwardMetrics.track_seconds": [seconds, params]}
        path.write_text(json.dumps({"result_columns": cols, "results": results}))
        return path

    # a: 1 ms -> 1.01 ms (+1 %); b: 200 us -> 250 us (+25 %); c: 50 us -> 40 us (short)
    text = _tool().spread(run("a.json", [1e-3, 2e-4, 5e-5]), run("b.json", [1.01e-3, 2.5e-4, 4e-5]))
    lines = text.splitlines()
    assert lines[0] == "2 pairs at or above 100 µs in both runs: 1 within 2%, largest +25.0%"
    assert lines[1] == "1 shorter pairs: largest -20.0%"
    rows = [line for line in lines if line.startswith("| ForwardMetrics")]
    assert [r.split(" | ")[1] for r in rows] == ["b", "c", "a"]  # largest difference first
    assert rows[2].endswith("| +1.0% |")


def test_spread_with_records_gives_minima_and_conditions(tmp_path):
    """--records: per pair the minimum's difference and each run's median/minimum (two
    populations read well above 1), per class each run's start temperature and end clock."""
    cols = ["result", "params"]
    params = [["'a'"], ["'m/decode/kv8'"]]

    def run(name, seconds, median, minimum, temp, clock):
        path = tmp_path / f"{name}.json"
        results = {"forward.DecodeMetrics.track_seconds": [[seconds], params]}
        path.write_text(json.dumps({"result_columns": cols, "results": results}))
        state = {"start": {"temperature_c": temp}, "end": {"sm_clock_mhz": clock}}
        rec = {
            "suite": "DecodeMetrics", "impl": "a", "workload": "m/decode/kv8",
            "time": {"median": median, "min": minimum}, "extra": {"gpu_state": state},
        }  # fmt: skip
        other = {"suite": "Availability", "impl": "a", "reason": None}  # not a pair: ignored
        records = tmp_path / f"{name}.jsonl"
        records.write_text(json.dumps(other) + "\n" + json.dumps(rec) + "\n")
        return path, records

    a, ra = run("a", 4.29e-3, 4.29e-3, 1.79e-3, 51, 1980)  # two populations in run A
    b, rb = run("b", 1.80e-3, 1.80e-3, 1.79e-3, 43, 1845)
    lines = _tool().spread(a, b, records=(ra, rb)).splitlines()
    (row,) = [line for line in lines if line.startswith("| DecodeMetrics | a |")]
    assert row.endswith("| -58.0% | +0.0% | 2.40 | 1.01 | within a run |")
    assert lines[0].endswith("0 within 2%, largest -58.0%; outside it: 1 within a run")
    assert "| DecodeMetrics | A | 1 | 51 | 1980, 1980 |" in lines
    assert "| DecodeMetrics | B | 1 | 43 | 1845, 1845 |" in lines


def test_costs_sum_each_class_s_sweep_and_first_calls(tmp_path):
    def rec(suite, impl, wall, first):
        extra = {"wall_seconds": wall, "first_call_seconds": first}
        return {"suite": suite, "impl": impl, "workload": f"w-{impl}", "extra": extra}

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(json.dumps(r) for r in [
        {"suite": "Availability", "impl": "x", "reason": None},  # not a pair
        rec("ForwardMetrics", "eager-compiled", 10.0, 8.0), rec("ForwardMetrics", "sdpa", 1.0, 0.5),
    ]))  # fmt: skip
    b.write_text(json.dumps(rec("ForwardMetrics", "eager-compiled", 80.0, 75.0)))
    lines = _tool().costs(a, b).splitlines()
    assert "| ForwardMetrics | A | 2 | 11.0 | 8.5 |" in lines
    assert "| ForwardMetrics | B | 1 | 80.0 | 75.0 |" in lines
    assert "| eager-compiled | 8.0 | 75.0 |" in lines  # per implementation, both runs
    assert "| B | ForwardMetrics | eager-compiled | `w-eager-compiled` | 75.0 |" in lines
    assert not [line for line in lines if "timing s" in line]  # no record has phases


def test_costs_sum_each_class_s_phases(tmp_path):
    """``phase_seconds`` summed per class and run; a record without them counts 0."""

    def rec(suite, phases):
        extra = {"wall_seconds": sum(phases.values()), "phase_seconds": phases}
        return {"suite": suite, "impl": "x", "workload": "w", "extra": extra}

    a = tmp_path / "a.jsonl"
    a.write_text("\n".join(json.dumps(r) for r in [
        rec("ForwardMetrics", {"prepare": 1.0, "timing": 2.0, "memory": 0.25, "error": 0.5}),
        rec("ForwardMetrics", {"prepare": 0.5, "timing": 1.5, "memory": 0.25}),
        rec("DecodeMetrics", {"prepare": 0.1, "timing": 0.2, "memory": 0.3, "error": 0.4}),
        {"suite": "DecodeMetrics", "impl": "y", "workload": "w", "extra": {"wall_seconds": 1}},
    ]))  # fmt: skip
    lines = _tool().costs(a).splitlines()
    assert "| class | run | prepare s | timing s | memory s | error s |" in lines
    assert "| ForwardMetrics | A | 1.5 | 3.5 | 0.5 | 0.5 |" in lines
    assert "| DecodeMetrics | A | 0.1 | 0.2 | 0.3 | 0.4 |" in lines


def test_spread_from_records_alone_compares_what_both_runs_measured(tmp_path):
    """A run cut short leaves records but no asv file: the records' medians are compared,
    pairs only one run reached are left out."""

    def records(name, medians):
        path = tmp_path / f"{name}.jsonl"
        recs = [{"suite": "ForwardMetrics", "impl": impl, "workload": "m/prefill/s1",
                 "time": {"median": t, "min": t}} for impl, t in medians.items()]  # fmt: skip
        path.write_text("\n".join(json.dumps(r) for r in recs))
        return path

    a = records("a", {"x": 1e-3, "y": 2e-3, "z": 3e-3})
    b = records("b", {"x": 1.03e-3, "y": 2e-3})  # z not reached
    lines = _tool().spread(None, None, records=(a, b)).splitlines()
    assert lines[0] == (
        "2 pairs at or above 100 µs in both runs: 1 within 2%, largest +3.0%; outside it: 1 offset"
    )
    assert not [line for line in lines if "| z |" in line]
    with pytest.raises(ValueError, match="two asv result files or two records"):
        _tool().spread(None, None)


def test_command_line_forms_and_mistakes(tmp_path):
    """The docstring's forms go where they say; a wrong combination is a usage error."""
    tool, path = _tool(), _asv_file(tmp_path)
    assert tool.main(["--count", str(path)]) == tool.count(path)
    assert tool.main([str(path)]) == tool.table(path)
    assert tool.main(["--spread", str(path), str(path)]) == tool.spread(path, path)
    for wrong in (["--spread", str(path)], ["--records", "a", "b", str(path)], ["--count"]):
        with pytest.raises(SystemExit):
            tool.main(wrong)


def test_history_has_a_column_per_commit_and_a_dash_where_unmeasured(tmp_path):
    def rec(impl, median, reason=None):
        time = None if reason else {"median": median}
        return {"suite": "ForwardMetrics", "impl": impl, "workload": "w", "mode": "forward",
                "reason": reason, "time": time}  # fmt: skip

    old, new = tmp_path / "7c4b0342.jsonl", tmp_path / "a23074d7.jsonl"
    old.write_text("\n".join(json.dumps(r) for r in [rec("k", 8.3e-3), rec("m", 0, "n/a")]))
    new.write_text("\n".join(json.dumps(r) for r in [rec("k", 5.9e-3), rec("m", 1e-4)]))
    lines = _tool().history(old, new).splitlines()
    assert lines[0] == "| implementation | workload | 7c4b034 | a23074d |"
    assert "| k | `w` forward | 8300 | 5900 |" in lines
    assert "| m | `w` forward | - | 100 |" in lines
