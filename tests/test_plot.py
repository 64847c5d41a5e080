"""``attnbench plot``: reading a run's JSON, grouping, the fitted exponent, roofs, files, errors."""

from __future__ import annotations

import json
import random
from dataclasses import asdict

import pytest
from matplotlib.colors import to_hex

import attnbench
from attnbench import cli, plot
from attnbench.measure import ceilings
from attnbench.workload import Workload

LENGTHS = (128, 256, 512, 1024)


def _record(impl: str, w: Workload, seconds: float, memory: int, mode: str = "forward") -> dict:
    flops = w.forward_flops if mode == "forward" else w.flops
    return {
        "impl": impl,
        "workload": w.name,
        "mode": mode,
        "device": "cpu",
        "reason": None,
        "time": {"median": seconds, "iqr": seconds / 10},
        "tflops": flops / seconds / 1e12,
        "gbps": w.forward_bytes / seconds / 1e9,
        "gpu_peak_allocated": None,
        "host_peak_rss": memory,
    }


def _run_doc(system: dict | None = None, dtypes=("fp32",)) -> dict:
    """Two implementations over four lengths: one quadratic in memory, one linear."""
    rng = random.Random(7)
    workloads, records = {}, []
    for dtype in dtypes:
        for n in LENGTHS:
            w = Workload(1, 4, 4, n, n, 32, dtype=dtype)
            workloads[w.name] = asdict(w)
            records.append(_record("quad", w, 1e-6 * n * n, int(50 * n * n)))
            records.append(_record("lin", w, 1e-4 * n * rng.uniform(0.9, 1.1), int(4000 * n)))
    records.append({"impl": "gone", "workload": w.name, "mode": "forward", "reason": "no"})
    return {
        "system": system or {"cpu": "Test CPU", "gpu": None},
        "device": "cpu",
        "workloads": workloads,
        "records": records,
    }


@pytest.fixture
def run_json(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_run_doc()))
    return path


@pytest.mark.parametrize("power", [1.0, 2.0, 1.5])
def test_fit_exponent_recovers_the_power(power):
    rng = random.Random(int(power * 10))
    scale = rng.uniform(1e3, 1e6)
    ys = [scale * x**power * rng.uniform(0.97, 1.03) for x in LENGTHS]
    assert plot.fit_exponent(LENGTHS, ys) == pytest.approx(power, abs=0.05)


def test_fit_exponent_needs_two_lengths():
    assert plot.fit_exponent([256, 256], [1.0, 2.0]) is None
    assert plot.fit_exponent([256, 512], [0.0, 2.0]) is None


def test_load_run_keeps_measured_points_and_counts_skips(run_json):
    run = plot.load_run(run_json)
    assert run.skipped == 1
    assert {p.impl for p in run.points} == {"quad", "lin"}
    assert sorted({p.length for p in run.points}) == list(LENGTHS)


def test_groups_compare_like_with_like():
    doc = _run_doc(dtypes=("fp32", "bf16"))
    decode = Workload(2, 4, 1, 1, 4096, 32, scenario="decode", dtype="fp32")
    doc["workloads"][decode.name] = asdict(decode)
    doc["records"].append(_record("lin", decode, 1e-3, 1000))
    points = [
        plot.Point(r["impl"], Workload(**doc["workloads"][r["workload"]]), "forward", 1.0, 1.0, 1)
        for r in doc["records"]
        if r.get("reason") is None
    ]
    grouped = plot.groups(points)
    assert len(grouped) == 3  # fp32 prefill, bf16 prefill, decode
    dec = next(v for k, v in grouped.items() if k.startswith("decode"))
    assert [p.length for p in dec["lin"]] == [4096]
    for series in grouped.values():
        for pts in series.values():
            assert len({p.workload.dtype for p in pts}) == 1
            assert [p.length for p in pts] == sorted(p.length for p in pts)


def test_memory_legend_shows_the_fitted_exponents(run_json):
    plt = plot._pyplot()
    run = plot.load_run(run_json)
    fig = plot._length_figure(plt, plot.groups(run.points), "memory", "bytes", "t")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
    assert "quad (exp 2.00)" in labels
    lin = next(x for x in labels if x.startswith("lin"))
    assert float(lin.split("exp ")[1].rstrip(")")) == pytest.approx(1.0, abs=0.02)


def test_plot_writes_nonempty_png_and_svg(run_json, tmp_path):
    files = plot.plot_run(plot.load_run(run_json), tmp_path / "out")
    names = sorted(p.name for p in files)
    stems = ("memory", "roofline", "tflops", "time")
    assert names == sorted(f"{s}.{f}" for s in stems for f in ("png", "svg"))
    for path in files:
        data = path.read_bytes()
        assert len(data) > 1000
        assert data.startswith(b"\x89PNG") if path.suffix == ".png" else b"<svg" in data[:2000]


def test_roof_spec_peak_then_measured_ceilings_then_none():
    h100 = plot.roof_for({"gpu": "NVIDIA H100 80GB HBM3"}, "bf16")
    assert h100 is not None and h100.tflops > 100 and "H100" in h100.source
    measured = {"cpu": "x", "ceilings": {"fp32": {"matmul_tflops": 0.2, "copy_gbps": 20.0}}}
    roof = plot.roof_for(measured, "fp32")
    assert roof == plot.Roof(0.2, 0.02, "measured here")
    assert plot.roof_for(measured, "bf16") is None
    assert plot.roof_for({"cpu": "x"}, "fp32") is None


@pytest.mark.parametrize("with_ceilings", [False, True])
def test_roofline_title_says_when_there_is_no_roof(with_ceilings):
    system = {"cpu": "Test CPU"}
    if with_ceilings:
        system["ceilings"] = {"fp32": {"matmul_tflops": 0.1, "copy_gbps": 10.0}}
    doc = _run_doc(system)
    plt = plot._pyplot()
    run = plot.Run(
        [
            plot.Point(
                r["impl"],
                Workload(**doc["workloads"][r["workload"]]),
                "forward",
                r["time"]["median"],
                r["tflops"],
                1,
            )
            for r in doc["records"]
            if r.get("reason") is None
        ],
        0,
        system,
        "cpu",
    )
    fig = plot._roofline_figure(plt, run)
    title = fig.axes[0].get_title()
    lines = len(fig.axes[0].get_lines())
    plt.close(fig)
    assert ("no roof for fp32" in title) is not with_ceilings
    assert lines == (1 if with_ceilings else 0)


def test_measure_ceilings_on_cpu(monkeypatch):
    monkeypatch.setitem(ceilings.SIZES, "cpu", (128, 4))
    c = ceilings.measure_ceilings("cpu", "fp32")
    assert c.matmul_tflops > 0 and c.copy_gbps > 0
    assert "128x128" in c.how and "4 MiB" in c.how


def test_cli_plot_prints_the_files(run_json, tmp_path, capsys):
    out = tmp_path / "figs"
    assert cli.main(["plot", str(run_json), "--out", str(out), "--format", "svg"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed and all(p.endswith(".svg") for p in printed)
    assert sorted(printed) == sorted(str(p) for p in out.iterdir())


def _bad_files(tmp_path):
    skipped = {"records": [{"impl": "a", "workload": "w", "reason": "no"}], "workloads": {}}
    missing_shape = {"records": [{"impl": "a", "workload": "w", "time": {"median": 1.0}}]}
    cases = {
        "broken.json": ("{not json", "not JSON"),
        "list.json": ("[1, 2]", "no 'records' list"),
        "skipped.json": (json.dumps(skipped), "nothing to plot"),
        "noshape.json": (json.dumps(missing_shape), "a record cannot be read"),
    }
    for name, (text, _) in cases.items():
        (tmp_path / name).write_text(text)
    return [(str(tmp_path / n), words) for n, (_, words) in cases.items()]


def test_cli_plot_errors_exit_2_with_one_line(tmp_path, run_json, capsys):
    cases = [*_bad_files(tmp_path), (str(tmp_path / "absent.json"), "no such file")]
    for path, words in cases:
        assert cli.main(["plot", path, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("attnbench: error: ") and words in err[0]
    argv = ["plot", str(run_json), "--out", str(tmp_path / "o"), "--format", "gif"]
    assert cli.main(argv) == 2
    assert "unknown format gif" in capsys.readouterr().err


def test_every_registered_implementation_has_its_own_colour():
    names = attnbench.impl_names()
    colours = [plot.impl_colour(n) for n in names]
    assert len(set(colours)) == len(names)
    assert all(c.startswith("#") and len(c) == 7 for c in colours)
    assert plot.impl_colour("no-longer-registered") == plot.impl_colour("no-longer-registered")


def _line_colours(fig) -> dict[str, str]:
    return {
        line.get_label().split(" (")[0]: to_hex(line.get_color())
        for ax in fig.axes
        for line in ax.get_lines()
    }


def _doc_of(impls: list[str], lengths=LENGTHS) -> dict:
    workloads, records = {}, []
    for n in lengths:
        w = Workload(1, 4, 4, n, n, 32)
        workloads[w.name] = asdict(w)
        records += [_record(impl, w, 1e-6 * n * (i + 1), 1000 * n) for i, impl in enumerate(impls)]
    return {
        "system": {"cpu": "Test CPU"},
        "device": "cpu",
        "workloads": workloads,
        "records": records,
    }


def test_an_implementation_keeps_its_colour_whatever_else_a_figure_shows(tmp_path):
    """chunked drawn beside different others, in a different order, in line plots, the
    roofline and bar charts (the leaderboard's): always chunked's colour."""
    plt = plot._pyplot()
    chunked = plot.impl_colour("chunked")
    seen = []
    for impls in (["eager", "chunked"], ["sdpa-flash", "triton-flash", "fa2", "chunked"]):
        path = tmp_path / f"{len(impls)}.json"
        path.write_text(json.dumps(_doc_of(impls)))
        run = plot.load_run(path)
        fig = plot._length_figure(plt, plot.groups(run.points), "seconds", "s", "t")
        seen.append(_line_colours(fig)["chunked"])
        plt.close(fig)
        fig = plot._roofline_figure(plt, run)
        (scatter,) = [c for c in fig.axes[0].collections if c.get_label() == "chunked"]
        seen.append(to_hex(scatter.get_facecolor()[0]))
        plt.close(fig)
    assert seen == [chunked] * 4
    assert chunked != plot.impl_colour("eager")


def test_bar_chart_colours_by_implementation(tmp_path):
    """The leaderboard's bars: the 13 implementations of the GPU suite, each its own colour,
    the same as in the line plots."""
    names = attnbench.impl_names(benchmarked_only=True)[:13]
    data = {"w1": {n: 1.0 + i for i, n in enumerate(names)}, "w2": {names[3]: 2.0}}
    plt = plot._pyplot()
    fig = plot._bar_figure(plt, data, "t", "x")
    drawn = {c.get_label(): to_hex(c.patches[0].get_facecolor()) for c in fig.axes[0].containers}
    plt.close(fig)
    assert drawn == {n: plot.impl_colour(n) for n in names}
    assert len(set(drawn.values())) == 13
    (png,) = plot.bar_chart(data, "t", "x", tmp_path, "bars", formats=("png",))
    assert png.stat().st_size > 0
