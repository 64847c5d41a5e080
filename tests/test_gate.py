"""The regression gate's verdicts (tools.ci.gate, tools.ci.verdict): from samples and noise,
derived figures following their time, first calls apart, presence, and confirmation by
re-measuring. The whole gate with real asv and git is tests/test_gate_trial.py."""

from __future__ import annotations

import json
import random

import pytest

from tools.ci import gate, remeasure
from tools.ci import verdict as v

BASE, HEAD = "a" * 40, "b" * 40
W = "h8kv2d64/prefill/s256/b2/full/fp32"


def _samples(median: float, n: int = 60, spread: float = 0.02, seed: int = 0) -> tuple:
    rng = random.Random(seed)
    return tuple(median * (1 + rng.uniform(-spread, spread)) for _ in range(n))


def _side(median: float, seed: int = 0, **kw) -> v.Side:
    return v.Side(median, _samples(median, seed=seed), **kw)


def test_the_same_distribution_twice_is_unchanged():
    assert v.judge_time(_side(1e-3, 1), _side(1e-3, 2), 0.1).verdict == "unchanged"


def test_a_clear_slowdown_is_a_regression_and_a_speedup_an_improvement():
    assert v.judge_time(_side(1e-3, 1), _side(1.5e-3, 2), 0.1).verdict == "regression"
    assert v.judge_time(_side(1.5e-3, 1), _side(1e-3, 2), 0.1).verdict == "improvement"


def test_a_change_within_the_figures_own_drift_is_unsure():
    """1.3x, but the figure moved 20 % while it was sampled: not a verdict to fail on."""
    got = v.judge_time(_side(1e-3, 1, noise=0.2), _side(1.3e-3, 2), 0.1)
    assert got.verdict == "unsure" and "drift" in got.why


def test_a_change_with_overlapping_samples_is_unsure_and_one_without_samples_a_candidate():
    no_samples = v.judge_time(v.Side(1e-3), v.Side(2e-3), 0.1)  # the re-measure decides
    assert no_samples.verdict == "regression" and "no samples" in no_samples.why
    few = v.judge_time(v.Side(1e-3, (1e-3, 1e-3)), v.Side(2e-3, (2e-3, 2e-3)), 0.1)
    assert few.verdict == "regression"  # two samples a side: too few to test, re-measured
    wide = v.Side(1.3e-3, tuple([0.5e-3, 2.5e-3] * 10))
    overlap = v.judge_time(_side(1e-3, 1), wide, 0.1)
    assert overlap.verdict == "unsure" and "overlap" in overlap.why


def test_a_record_with_a_caution_makes_a_change_unsure():
    got = v.judge_time(_side(1e-3, caution="not steady"), _side(2e-3, 2), 0.1)
    assert got.verdict == "unsure" and "not steady" in got.why


@pytest.mark.parametrize(
    ("base", "head", "expected"),
    [
        (v.Side(float("nan")), None, "gone"),  # skipped at base, missing at head
        (v.Side(1.0), None, "gone"),
        (None, v.Side(1.0), "new"),
        (v.Side(1.0), v.Side(None), "failed"),  # ran at base, fails at head
        (v.Side(None), v.Side(1.0), "fixed"),
        (v.Side(float("nan")), v.Side(float("nan")), "n/a"),
    ],
)
def test_presence(base, head, expected):
    assert v.presence(base, head).verdict == expected
    assert (expected in v.FAILING) == (expected == "failed")


def test_first_calls_and_errors_and_memory_have_their_own_rules():
    slower = v.judge_first_call(v.Side(0.01), v.Side(3.7))
    assert slower.verdict == "slower first call" and slower.verdict not in v.FAILING
    assert v.judge_first_call(v.Side(0.01), v.Side(0.9)).verdict == "unchanged"  # under 1 s
    assert v.judge_error(v.Side(1e-7), v.Side(1e-5), 1e-4).verdict == "unchanged"
    assert v.judge_error(v.Side(1e-7), v.Side(1e-3), 1e-4).verdict == "regression"
    assert v.judge_memory(v.Side(100.0), v.Side(120.0), 1.1).verdict == "regression"
    assert v.judge_memory(v.Side(100.0), v.Side(105.0), 1.1).verdict == "unchanged"


def _name(method: str, impl: str, cls: str = "ForwardMetrics") -> str:
    return f"forward.{cls}.{method}('{impl}', '{W}')"


def _records(folder, commit, medians: dict[str, float], note: str | None = None) -> None:
    lines = []
    for seed, (impl, median) in enumerate(medians.items()):
        samples = sorted(_samples(median, seed=seed + len(commit)))
        time_ = {"median": median, "samples": samples, "batches": [median, median], "note": note}
        lines.append(json.dumps(
            {"suite": "ForwardMetrics", "impl": impl, "workload": W, "time": time_, "extra": {}}
        ))  # fmt: skip
    (folder / f"{commit[:8]}.jsonl").write_text("\n".join(lines) + "\n")


def _loaded(medians: dict[str, float], speedup: dict[str, float]) -> dict:
    out = {}
    for impl, median in medians.items():
        out[_name("track_seconds", impl)] = (median, None, "1")
        out[_name("track_tflops", impl)] = (1e-3 / median, None, "1")
        out[_name("track_speedup_vs_eager", impl)] = (speedup[impl], None, "1")
        out[_name("track_compile_seconds", impl)] = (0.01, None, "1")
    return out


def _compare(tmp_path, base: dict, head: dict, speedups=None, note=None):
    speedups = speedups or ({i: 1.0 for i in base}, {i: 1.0 for i in head})
    _records(tmp_path, BASE, base)
    _records(tmp_path, HEAD, head, note)
    loaded = _loaded(base, speedups[0]), _loaded(head, speedups[1])
    rows = gate.compare(None, "m", BASE, HEAD, 1.1, tmp_path, loaded=loaded)
    return {(r.benchmark.rsplit(".", 1)[-1], r.pair[0]): r for r in rows}


def test_derived_figures_follow_their_pairs_own_time_not_the_ratio(tmp_path):
    """chunked 1.5x slower: its TFLOP/s and speedup follow; eager's own time is unchanged, so
    chunked's speedup is judged by chunked's time even where eager's baseline moved."""
    rows = _compare(
        tmp_path,
        {"eager": 2e-3, "chunked": 1e-3, "sdpa": 1e-3},
        {"eager": 2e-3, "chunked": 1.5e-3, "sdpa": 1e-3},
        speedups=(
            {"eager": 1, "chunked": 2, "sdpa": 4.07},
            {"eager": 1, "chunked": 1.33, "sdpa": 0.033},
        ),
    )
    assert rows[("track_seconds", "chunked")].verdict == "regression"
    assert rows[("track_tflops", "chunked")].verdict == "regression"
    assert rows[("track_speedup_vs_eager", "chunked")].verdict == "regression"
    assert rows[("track_seconds", "sdpa")].verdict == "unchanged"
    assert rows[("track_speedup_vs_eager", "sdpa")].verdict == "unchanged"  # 4.07x -> 0.033x


def test_a_caution_in_the_record_makes_the_change_unsure(tmp_path):
    rows = _compare(tmp_path, {"chunked": 1e-3}, {"chunked": 2e-3}, note="not steady: 4 batches")
    assert rows[("track_seconds", "chunked")].verdict == "unsure"
    assert "not steady" in rows[("track_seconds", "chunked")].why


def test_an_unconfirmed_regression_is_unsure_and_does_not_fail(tmp_path, monkeypatch):
    rows = list(_compare(tmp_path, {"chunked": 1e-3}, {"chunked": 1.5e-3}).values())
    pair = ("chunked", W, "forward")
    for ratios, expected in (([1.01, 0.99, 1.3], "unsure"), ([1.49, 1.52, 1.4], "regression")):
        monkeypatch.setattr(remeasure, "alternate", lambda *a, r=ratios, **k: {pair: r})
        settled, said = gate.confirm(None, BASE, HEAD, rows, 1.1, 2)
        by = {r.benchmark.rsplit(".", 1)[-1]: r for r in settled}
        assert by["track_seconds"].verdict == expected, by["track_seconds"].why
        assert by["track_tflops"].verdict == expected  # derived: follows the settled time
        assert ("not confirmed" in said[0]) == (expected == "unsure")
    text = gate.markdown(settled, BASE, HEAD, "m", 1.1, said)
    assert "1 regression(s)" in text and "Re-measured" in text


def test_the_paired_re_measure_decides_the_direction(tmp_path, monkeypatch):
    """Base measured in a busy phase: head looked 2x faster; the turns say 1.5x slower."""
    rows = list(_compare(tmp_path, {"chunked": 2e-3}, {"chunked": 1e-3}).values())
    assert {r.verdict for r in rows if r.kind == "time"} == {"improvement"}
    pair = ("chunked", W, "forward")
    monkeypatch.setattr(remeasure, "alternate", lambda *a, **k: {pair: [1.5, 1.45, 1.52, 1.6, 1.5]})
    settled, _ = gate.confirm(None, BASE, HEAD, rows, 1.1, 5)
    time_row = next(r for r in settled if r.kind == "time")
    assert time_row.verdict == "regression" and "other way" in time_row.why


def test_a_change_too_noisy_to_tell_is_re_measured_and_can_be_confirmed(tmp_path, monkeypatch):
    """A planted 1.5x slowdown on a busy machine: the run's own samples drifted, so the screen
    says unsure; the paired turns settle it (a real regression must not stay unsure)."""
    rows = list(
        _compare(tmp_path, {"chunked": 1e-3}, {"chunked": 1.5e-3}, note="not steady").values()
    )
    assert {r.verdict for r in rows if r.kind == "time"} == {"unsure"}
    pair = ("chunked", W, "forward")
    monkeypatch.setattr(remeasure, "alternate", lambda *a, **k: {pair: [1.5, 1.45, 1.52, 1.6]})
    settled, said = gate.confirm(None, BASE, HEAD, rows, 1.1, 4)
    time_row = next(r for r in settled if r.kind == "time")
    assert time_row.verdict == "regression" and "could not tell" in time_row.why
    assert said and "slower" in said[0]


@pytest.mark.parametrize(
    ("ratios", "way"),
    [
        ([1.5, 1.5, 1.4], 1),
        ([0.6, 0.7, 0.65], -1),
        ([1.5, 1.02, 1.5], 0),  # one round barely moved
        ([1.06, 1.07, 1.08], 0),  # under the effect
        ([1.5, 0.6, 1.5], 0),
        ([1.5, None, 1.5], 0),
    ],
)
def test_confirmation_needs_every_round_to_move_the_same_way(ratios, way):
    assert remeasure.direction(ratios, 0.1) == way


def test_one_turn_against_asks_for_as_many_turns_again_and_then_allows_one():
    five = [0.66, 1.47, 1.5, 1.6, 1.48]  # a burst of load in the first turn
    assert remeasure.direction(five, 0.1) == 0
    assert remeasure.worth_more_turns(five, 0.1)
    assert remeasure.direction([*five, 1.5, 1.49, 1.52, 1.46, 1.51], 0.1) == 1
    assert remeasure.direction([*five, 1.5, 0.9, 1.52, 1.46, 1.51], 0.1) == 0  # two against
    assert not remeasure.worth_more_turns([1.0, 1.02, 0.97, 1.2, 0.99], 0.1)  # A/A
    assert not remeasure.worth_more_turns([1.5] * 5, 0.1)  # already decided


def test_host_rss_needs_a_larger_rise_than_gpu_bytes():
    rss = "forward.Forward.peakmem_forward('eager', 'w')"
    gpu = "forward.ForwardMetrics.track_gpu_peak_memory('eager', 'w')"
    b, h = v.Side(277e6), v.Side(309e6)  # seen for unchanged code in a CPU trial
    assert gate.judge(rss, b, h, 1.1, 1.1).verdict == "unchanged"
    assert gate.judge(gpu, b, h, 1.1, 1.1).verdict == "regression"
    assert gate.judge(rss, b, v.Side(400e6), 1.1, 1.1).verdict == "regression"


def test_kinds():
    assert v.kind_of("forward.Forward.time_forward") == "time"
    assert v.kind_of("forward.ForwardMetrics.track_seconds") == "time"
    assert v.kind_of("forward.ForwardMetrics.track_speedup_vs_eager") == "derived"
    assert v.kind_of("forward.ForwardMetrics.track_gpu_peak_memory") == "memory"
    assert v.kind_of("train.ForwardBackward.peakmem_forward_backward") == "memory"
    assert v.kind_of("forward.ForwardMetrics.track_compile_seconds") == "first-call"
    assert v.kind_of("forward.ForwardMetrics.track_rel_error") == "error"


def test_a_corrupt_results_file_stops_the_gate_naming_it(tmp_path):
    from types import SimpleNamespace

    folder = tmp_path / "results" / "box"
    folder.mkdir(parents=True)
    (folder / "machine.json").write_text('{"machine": "box", "version": 1}')
    (folder / f"{BASE[:8]}-virtualenv-py3.11.json").write_text('{"results": {"a"')  # cut short
    with pytest.raises(gate.PipelineError, match=f"{BASE[:8]}-virtualenv-py3.11.json"):
        gate._load(SimpleNamespace(results=tmp_path / "results"), "box", BASE)
