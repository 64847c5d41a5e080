"""Figures of a run (``attnbench run --json``): time, TFLOP/s and memory against sequence
length per implementation, and each result on the card's roofline.

matplotlib (Agg) is imported only when a figure is drawn. Series compare like with like: one
panel per group of workloads that differ only in length (:func:`group_key`).
"""

from __future__ import annotations

import functools
import json
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .atomic import atomic_open
from .errors import AttnbenchError
from .impls import impl_names
from .workload import Workload

FORMATS = ("png", "svg")


class PlotError(AttnbenchError):
    """A run file that cannot be plotted; the message says why."""


@dataclass(frozen=True)
class Point:
    """One measured (implementation, workload, mode) as the figures need it."""

    impl: str
    workload: Workload
    mode: str
    seconds: float
    tflops: float | None
    memory: int | None  # GPU peak allocated, else host peak above the RSS before the call

    @property
    def length(self) -> int:
        """The x of the length plots: q_len, or kv_len for decode."""
        w = self.workload
        return w.kv_len if w.scenario == "decode" else w.q_len

    @property
    def intensity(self) -> float:
        """FLOPs per fewest byte of what was timed."""
        w = self.workload
        if self.mode == "forward":
            return w.forward_flops / w.forward_bytes
        return w.flops / w.bytes


@dataclass(frozen=True)
class Roof:
    tflops: float
    tbps: float
    source: str


@dataclass
class Run:
    points: list[Point]
    skipped: int
    system: dict
    device: str

    @property
    def memory_label(self) -> str:
        if self.device.startswith("cuda") or self.system.get("gpu"):
            return "GPU peak allocated bytes"
        return "host peak RSS above the RSS before the call, bytes"


# -- reading -------------------------------------------------------------------------------
def _workload(d: dict) -> Workload:
    known = {f.name for f in fields(Workload)}
    return Workload(**{k: v for k, v in d.items() if k in known})


def load_run(path: str | Path) -> Run:
    """The measured points of a run file; :class:`PlotError` naming the problem otherwise."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise PlotError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlotError(f"{path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise PlotError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise PlotError(f"{path}: no 'records' list (expected the file of attnbench run --json)")
    shapes = doc.get("workloads") or {}
    points, skipped = [], 0
    for rec in doc["records"]:
        try:
            if rec.get("reason") is not None:
                skipped += 1
                continue
            # GPU: bytes allocated at the peak; host: the peak above the RSS before the call
            # (the process's own footprint would flatten the fitted exponent to ~0)
            mem = rec.get("gpu_peak_allocated")
            if mem is None:
                mem = rec.get("host_extra_rss")
            points.append(
                Point(
                    impl=str(rec["impl"]),
                    workload=_workload(shapes[rec["workload"]]),
                    mode=str(rec.get("mode", "forward")),
                    seconds=float(rec["time"]["median"]),
                    tflops=rec.get("tflops"),
                    memory=mem if mem is not None else rec.get("host_peak_rss"),
                )
            )
        except (KeyError, TypeError, ValueError, AttnbenchError) as exc:
            raise PlotError(
                f"{path}: a record cannot be read ({type(exc).__name__}: {exc})"
            ) from None
    if not points:
        raise PlotError(f"{path}: nothing to plot ({skipped} records, none measured)")
    return Run(points, skipped, doc.get("system") or {}, str(doc.get("device", "")))


# -- grouping and fitting ------------------------------------------------------------------
def group_key(p: Point) -> str:
    """Everything but the length: scenario, mode, model heads, batch, mask, dtype."""
    w = p.workload
    mask = w.name.split("/")[4]  # causal | full, plus -win/-docs/-alibi
    heads = f"{w.q_heads}/{w.kv_heads}x{w.head_dim}"
    return f"{w.scenario} [{p.mode}] {w.model} h{heads} b{w.batch} {mask} {w.dtype}"


def groups(points: Iterable[Point]) -> dict[str, dict[str, list[Point]]]:
    """{group: {impl: points sorted by length}}."""
    out: dict[str, dict[str, list[Point]]] = {}
    for p in points:
        out.setdefault(group_key(p), {}).setdefault(p.impl, []).append(p)
    for series in out.values():
        for pts in series.values():
            pts.sort(key=lambda p: p.length)
    return out


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Slope of log(y) on log(x), least squares: ~2 for quadratic, ~1 for linear growth.
    ``None`` with fewer than two distinct positive x (or non-positive y)."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if x and y and x > 0 and y > 0]
    if len({x for x, _ in pairs}) < 2:
        return None
    lx = np.log([x for x, _ in pairs])
    ly = np.log([y for _, y in pairs])
    return float(np.polyfit(lx, ly, 1)[0])


# -- roofs -----------------------------------------------------------------------------------
def roof_for(system: dict, dtype: str) -> Roof | None:
    """The card's spec peak when known, else ceilings measured by ``run --ceilings``."""
    gpu = system.get("gpu")
    if gpu:
        try:
            from .measure.peaks import peak_for
        except ImportError:  # pragma: no cover - the table arrives with another change
            peak_for = None
        peak = peak_for(gpu, dtype) if peak_for else None
        if peak is not None:
            return Roof(peak.tflops, peak.tbps, peak.source)
    ceil = (system.get("ceilings") or {}).get(dtype)
    if isinstance(ceil, dict) and ceil.get("matmul_tflops") and ceil.get("copy_gbps"):
        return Roof(ceil["matmul_tflops"], ceil["copy_gbps"] / 1000, "measured here")
    return None


# -- drawing ---------------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotError("plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@functools.cache
def _palettes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(colours of registered implementations, colours of other names): tab10, tab20's light
    halves and tab20b, then tab20c; all distinct."""
    _pyplot()
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    def hexes(name: str) -> list[str]:
        return [to_hex(c) for c in colormaps[name].colors]

    registered = hexes("tab10") + hexes("tab20")[1::2] + hexes("tab20b")
    return tuple(registered), tuple(hexes("tab20c"))


def impl_colour(name: str) -> str:
    """The colour (``#rrggbb``) of an implementation in every figure and page: set by its
    place in the registry, never by which others a figure shows. A name not registered (say,
    results of a removed implementation) takes one of a separate set by a stable hash."""
    registered, others = _palettes()
    names = impl_names()
    if name in names:
        return registered[names.index(name) % len(registered)]
    return others[zlib.crc32(name.encode()) % len(others)]


def colors(names: Iterable[str]) -> dict[str, str]:
    """{name: :func:`impl_colour`} for the series of one figure."""
    return {name: impl_colour(name) for name in names}


def _panels(plt, n: int, title: str):
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, list(axes.flat[:n])


def _save(plt, fig, out: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    fig.tight_layout()
    written = []
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format=fmt, dpi=110)
        written.append(path)
    plt.close(fig)
    return written


def _length_figure(plt, grouped, metric: str, ylabel: str, title: str):
    fig, axes = _panels(plt, len(grouped), title)
    color = colors({i for series in grouped.values() for i in series})
    for ax, (key, series) in zip(axes, grouped.items(), strict=False):
        for impl, pts in series.items():
            xs = [p.length for p in pts]
            ys = [getattr(p, metric) for p in pts]
            label = impl
            if metric == "memory":
                slope = fit_exponent(xs, ys)
                label += f" (exp {slope:.2f})" if slope is not None else " (one length)"
            ax.plot(xs, ys, marker="o", label=label, color=color[impl])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        decode = key.startswith("decode")
        ax.set_xlabel("kv_len" if decode else "q_len")
        ax.set_ylabel(ylabel)
        ax.set_title(key, fontsize=8)
        ax.legend(fontsize=7)
    return fig


def _roofline_figure(plt, run: Run):
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    pts = [p for p in run.points if p.tflops]
    dtypes = sorted({p.workload.dtype for p in pts})
    for impl in sorted({p.impl for p in pts}):
        mine = [p for p in pts if p.impl == impl]
        xs, ys = [p.intensity for p in mine], [p.tflops for p in mine]
        ax.scatter(xs, ys, label=impl, s=22, color=impl_colour(impl))
    xs = [p.intensity for p in pts]
    lo, hi = min(xs) / 4, max(xs) * 4
    roofs, missing = [], []
    for dtype in dtypes:
        roof = roof_for(run.system, dtype)
        if roof is None:
            missing.append(dtype)
            continue
        grid = np.geomspace(
            min(lo, roof.tflops / roof.tbps / 4), max(hi, 4 * roof.tflops / roof.tbps)
        )
        ax.plot(grid, np.minimum(roof.tflops, grid * roof.tbps), "k--", lw=1)
        ax.annotate(
            f"{dtype}: {roof.tflops:.3g} TFLOP/s, {roof.tbps * 1000:.4g} GB/s ({roof.source})",
            (grid[-1], roof.tflops),
            ha="right",
            va="bottom",
            fontsize=7,
        )
        roofs.append(dtype)
    machine = run.system.get("gpu") or run.system.get("cpu") or run.device or "unknown machine"
    title = f"Roofline on {machine}"
    if missing:
        title += (
            f"\nno roof for {', '.join(missing)}: card unknown and no measured ceilings "
            "(attnbench run --ceilings)"
        )
    ax.set_title(title, fontsize=9)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs per fewest byte)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.legend(fontsize=7)
    return fig


def plot_run(run: Run, out: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write time, tflops, memory and roofline figures into ``out``; return the files."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise PlotError(
            f"unknown format {', '.join(bad) or '(none)'} (known: {', '.join(FORMATS)})"
        )
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlotError(f"cannot create {out}: {exc.strerror}") from None
    plt = _pyplot()
    grouped = groups(run.points)
    written: list[Path] = []
    for stem, metric, ylabel, title in (
        ("time", "seconds", "median seconds per call", "Median time"),
        ("tflops", "tflops", "TFLOP/s", "Achieved TFLOP/s"),
        ("memory", "memory", run.memory_label, "Peak memory (legend: fitted log-log exponent)"),
    ):
        with_metric = {
            k: {i: [p for p in pts if getattr(p, metric)] for i, pts in s.items()}
            for k, s in grouped.items()
        }
        with_metric = {k: {i: pts for i, pts in s.items() if pts} for k, s in with_metric.items()}
        with_metric = {k: s for k, s in with_metric.items() if s}
        if with_metric:
            fig = _length_figure(plt, with_metric, metric, ylabel, title)
            written += _save(plt, fig, out, stem, formats)
    if any(p.tflops for p in run.points):
        written += _save(plt, _roofline_figure(plt, run), out, "roofline", formats)
    return written


def bar_chart(
    data: dict[str, dict[str, float]],
    title: str,
    xlabel: str,
    out: str | Path,
    stem: str,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Horizontal bars, one block per category (``data``'s keys), one bar per series, log x."""
    plt = _pyplot()
    return _save(plt, _bar_figure(plt, data, title, xlabel), Path(out), stem, formats)


def _bar_figure(plt, data: dict[str, dict[str, float]], title: str, xlabel: str):
    series = list(dict.fromkeys(s for values in data.values() for s in values))
    color = colors(series)
    height = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(10.0, 0.9 + 0.22 * len(data) * max(1, len(series))))
    for j, name in enumerate(series):
        ys = [i + j * height for i, values in enumerate(data.values()) if name in values]
        xs = [values[name] for values in data.values() if name in values]
        ax.barh(ys, xs, height=height, label=name, color=color[name])
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(data))], list(data), fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside: no bar hidden
    return fig
