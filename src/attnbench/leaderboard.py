"""A leaderboard page, the door of the published site: per machine and scenario, the latest
commit's results ranked, the change since the commit measured before it, and links into asv's
graphs with one machine, one workload (so one dtype) and the implementations that ran.

asv's results are read through asv's own API (:mod:`attnbench.asv_results`); the commits that
count are those ``asv publish`` draws (asv.conf.json's branches), so this page and asv's graphs
agree on what a machine's latest commit is. A result file that does not load is named on stderr
and left out; the rest of the page is written. The page is a jinja2 template
(``templates/leaderboard.html.j2``); it needs no network.
"""

from __future__ import annotations

import datetime
import itertools
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import asv_results
from .atomic import write_text
from .errors import AttnbenchError

#: figure -> the track_* method that records it
METRICS = {
    "tflops": "track_tflops",
    "gbps": "track_gbps",
    "seconds": "track_seconds",
    "speedup": "track_speedup_vs_eager",
    "max_error": "track_max_error",
}
PARAM_NAMES = ["implementation", "workload"]
SCENARIO_ORDER = ("prefill", "decode", "train")
#: the most series a workload's graph link selects (asv draws 8 by default)
GRAPH_SERIES = 8
BASELINE = "eager"
#: a change smaller than this is drawn plain (asv.conf.json's regressions_thresholds)
CHANGE_THRESHOLD = 0.05
#: what encodeURIComponent leaves alone (asv builds and parses its hash with it)
_URI_SAFE = "-_.!~*'()"
AUTO = "auto"


class LeaderboardError(AttnbenchError):
    """asv results that cannot be read; the message names the file and the problem."""


@dataclass
class Entry:
    """One implementation on one workload at the latest commit."""

    impl: str
    impl_param: str  # as asv stores it: repr of the string, quotes included
    status: str  # "ok" | "skipped" | "failed"
    values: dict[str, float | None] = field(default_factory=dict)
    previous: float | None = None  # the ranking figure at the machine's previous commit

    def change(self, rank_by: str) -> float | None:
        """Ranking figure now / at the previous commit - 1 (None if either is missing)."""
        now = self.values.get(rank_by)
        return now / self.previous - 1.0 if now and self.previous else None


@dataclass
class Board:
    """The ranked entries of one workload of one suite on one machine."""

    machine: str
    suite: str  # e.g. forward.ForwardMetrics
    scenario: str
    workload: str
    workload_param: str
    rank_by: str  # "tflops" or "gbps"
    entries: list[Entry]

    @property
    def mode(self) -> str:
        return "forward+backward" if "Backward" in self.suite else "forward"

    @property
    def ranked(self) -> list[Entry]:
        return [e for e in self.entries if e.status == "ok"]

    def graph_selection(self) -> list[str]:
        """The implementations a workload's graph shows: the best ranked, eager kept."""
        params = [e.impl_param for e in self.ranked]
        if len(params) <= GRAPH_SERIES:
            return params
        chosen = params[:GRAPH_SERIES]
        baseline = next((e.impl_param for e in self.ranked if e.impl == BASELINE), None)
        if baseline and baseline not in chosen:
            chosen[-1] = baseline
        return chosen

    def graph_link(self, impl_param: str | None = None) -> str:
        """asv's graph of the ranking figure on this machine and workload: of one
        implementation, or of :meth:`graph_selection`."""
        impls = [impl_param] if impl_param else self.graph_selection()
        return graph_link(
            f"{self.suite}.{METRICS[self.rank_by]}",
            self.machine,
            {"implementation": impls, "workload": [self.workload_param]},
        )


@dataclass
class MachineResults:
    name: str
    info: dict
    commit: str
    date: int | None
    boards: list[Board]
    previous: str | None = None  # the commit measured before ``commit`` on this machine


# -- reading ---------------------------------------------------------------------------------
def _unquote(param: str) -> str:
    """asv stores string parameters as their repr: ``'eager'`` -> ``eager``."""
    if len(param) >= 2 and param[0] == param[-1] and param[0] in "'\"":
        return param[1:-1]
    return param


def graph_link(benchmark: str, machine: str, params: dict[str, list[str] | str | None]) -> str:
    """``../index.html#<benchmark>?machine=..&p-<name>=..``: asv 0.6's hash route to a graph,
    relative to html/leaderboard/; a parameter may repeat (several values selected); values
    encoded as encodeURIComponent does."""
    parts = [f"machine={quote(machine, safe=_URI_SAFE)}"]
    for name, values in params.items():
        for value in [values] if isinstance(values, str) else values or []:
            parts.append(f"p-{quote(name, safe=_URI_SAFE)}={quote(value, safe=_URI_SAFE)}")
    return f"../index.html#{benchmark}?{'&'.join(parts)}"


Rows = dict[str, dict[tuple[str, str], Any]]


def _rows(results: list[Any], benchmarks: dict) -> Rows:
    """{benchmark: {(impl_param, workload_param): value}} of one commit's result files, for
    the benchmark versions benchmarks.json has (as asv publish keeps them)."""
    out: Rows = {}
    for result in results:
        for name in sorted(result.get_result_keys(benchmarks)):
            if benchmarks[name].get("param_names") != PARAM_NAMES or name in out:
                continue
            params = result.get_result_params(name)
            values = result.get_result_value(name, params)
            keys = list(itertools.product(*params))
            if not isinstance(values, list) or len(keys) != len(values):
                continue
            out[name] = dict(zip(keys, values, strict=True))
    return out


def _status(values: dict[str, Any]) -> str:
    present = [v for v in values.values() if v is not None]
    if any(not (isinstance(v, float) and math.isnan(v)) for v in present):
        return "ok"
    return "skipped" if present else "failed"


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not math.isnan(v) else None


def _rank_key(e: Entry, rank_by: str) -> tuple:
    value = e.values.get(rank_by)
    return (e.status != "ok", value is None, -(value or 0.0), e.impl)


def _boards(machine: str, rows: Rows, before: Rows) -> list[Board]:
    suites = sorted({name.rsplit(".", 1)[0] for name in rows})
    boards = []
    for suite in suites:
        metric_rows = {key: rows.get(f"{suite}.{method}", {}) for key, method in METRICS.items()}
        if not metric_rows["tflops"] and not metric_rows["gbps"]:
            continue
        pairs = list(dict.fromkeys(k for r in metric_rows.values() for k in r))
        for wl_param in dict.fromkeys(w for _, w in pairs):
            workload = _unquote(wl_param)
            parts = workload.split("/")
            scenario = parts[1] if len(parts) > 1 else "?"
            rank_by = "gbps" if scenario == "decode" else "tflops"
            earlier = before.get(f"{suite}.{METRICS[rank_by]}", {})
            entries = []
            for impl_param in dict.fromkeys(i for i, w in pairs if w == wl_param):
                pair = (impl_param, wl_param)
                raw = {k: r.get(pair) for k, r in metric_rows.items()}
                values = {k: _number(v) for k, v in raw.items()}
                entry = Entry(_unquote(impl_param), impl_param, _status(raw), values)
                entry.previous = _number(earlier.get(pair))
                entries.append(entry)
            entries.sort(key=lambda e: _rank_key(e, rank_by))
            boards.append(Board(machine, suite, scenario, workload, wl_param, rank_by, entries))
    order = {s: i for i, s in enumerate(SCENARIO_ORDER)}
    boards.sort(key=lambda b: (order.get(b.scenario, 99), b.suite, b.workload))
    return boards


def _benchmarks(root: Path) -> dict:
    from asv import util

    path = root / "benchmarks.json"
    try:
        benchmarks = util.load_json(str(path), api_version=2)
    except FileNotFoundError:
        raise LeaderboardError(f"{path}: no such file") from None
    except (OSError, ValueError, util.UserError) as exc:
        raise LeaderboardError(f"{path}: cannot read it as asv's benchmark list ({exc})") from None
    if not isinstance(benchmarks, dict):
        raise LeaderboardError(f"{path}: not asv's benchmark list")
    return benchmarks


def _has_gpu(info: dict | None) -> bool:
    """attnbench writes a machine's GPU into asv's "cpu" field (attnbench.system)."""
    return "GPU" in str((info or {}).get("cpu", ""))


def _warn(skipped: asv_results.Skipped) -> None:
    print(f"attnbench leaderboard: skipped {skipped}", file=sys.stderr)


def read_results(
    results: str | Path,
    config: str | Path | None = AUTO,
    on_skip: Callable[[asv_results.Skipped], None] = _warn,
) -> list[MachineResults]:
    """Each machine's latest commit (by commit date) ranked, against the commit before it;
    machines with a GPU first, then by name. ``config``: the asv.conf.json whose branches
    decide which commits count (``"auto"``: the one beside ``results``; None: every commit).
    ``on_skip`` is told of each file asv would leave out (default: one line on stderr)."""
    root = Path(results)
    if not root.is_dir():
        raise LeaderboardError(f"{root}: no such directory (asv's results_dir)")
    try:
        import asv  # noqa: F401
    except ImportError:
        raise LeaderboardError("reading asv's results needs asv (pip install asv)") from None
    benchmarks = _benchmarks(root)
    if config == AUTO:
        config = asv_results.find_config(root)
    counted = asv_results.counted_commits(config) if config else None
    found = asv_results.scan(root, counted)
    for skipped in found.skipped:
        on_skip(skipped)
    machines = []
    for name in sorted(found.results, key=lambda n: (not _has_gpu(found.machines.get(n)), n)):
        by_commit: dict[str, list[Any]] = {}
        for result in found.results[name]:
            by_commit.setdefault(result.commit_hash, []).append(result)
        dates = {c: max(r.date or 0 for r in rs) for c, rs in by_commit.items()}
        order = sorted(by_commit, key=lambda c: dates[c], reverse=True)
        latest, previous = order[0], (order[1] if len(order) > 1 else None)
        rows = _rows(by_commit[latest], benchmarks)
        before = _rows(by_commit[previous], benchmarks) if previous else {}
        info = found.machines.get(name, {})
        machines.append(
            MachineResults(
                name, info, latest, dates[latest] or None, _boards(name, rows, before), previous
            )
        )
    if not machines:
        raise LeaderboardError(f"{root}: no machine with results (results/<machine>/*.json)")
    return machines


# -- rendering -------------------------------------------------------------------------------
def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "seconds":
        for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
            if value >= scale:
                return f"{value / scale:.3g} {unit}"
        return f"{value / 1e-9:.3g} ns"
    if kind == "speedup":
        return f"{value:.2f}x"
    if kind == "max_error":
        return f"{value:.2e}"
    if kind == "change":
        return f"{value * 100:+.1f} %"
    return f"{value:.3g}"


def _change_class(change: float | None) -> str:
    """CSS class of a change in a higher-is-better figure: better, worse or within noise."""
    if change is None or abs(change) < CHANGE_THRESHOLD:
        return ""
    return "better" if change > 0 else "worse"


def _date(ms: int | None) -> str:
    if not ms:
        return "date unknown"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)).strip("-")


def _machine_line(m: MachineResults) -> str:
    info = m.info
    bits = [str(info.get(k)) for k in ("cpu", "os", "arch") if info.get(k)]
    if info.get("num_cpu"):
        bits.append(f"{info['num_cpu']} CPUs")
    if str(info.get("ram", "")).isdigit():
        bits.append(f"{int(info['ram']) / 2**30:.0f} GiB RAM")
    return f"{'; '.join(bits)}. Commit {m.commit[:8]}, {_date(m.date)}."


def _sections(boards: list[Board]) -> dict[tuple[str, str], list[Board]]:
    sections: dict[tuple[str, str], list[Board]] = {}
    for b in boards:
        sections.setdefault((b.scenario, b.suite), []).append(b)
    return sections


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("attnbench", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(fmt=_fmt, change_class=_change_class, slug=_slug)
    env.globals.update(machine_line=_machine_line, sections=_sections, rank_label=_RANK_LABEL)
    return env


_RANK_LABEL = {"tflops": "TFLOP/s", "gbps": "GB/s"}


def render_page(machines: list[MachineResults], figures: dict[str, list[str]]) -> str:
    """The whole page; ``figures`` maps a section id to figure file names beside the page."""
    template = _environment().get_template("leaderboard.html.j2")
    return template.render(machines=machines, figures=figures)


def _figures(machines: list[MachineResults], out: Path) -> dict[str, list[str]]:
    """Speedup-vs-eager bars per machine and section, drawn by :mod:`attnbench.plot`."""
    from .plot import bar_chart

    figures: dict[str, list[str]] = {}
    for m in machines:
        for (scenario, suite), boards in _sections(m.boards).items():
            data = {
                b.workload: {
                    e.impl: e.values["speedup"] for e in b.ranked if e.values.get("speedup")
                }
                for b in boards
            }
            data = {k: v for k, v in data.items() if v}
            if not data:
                continue
            sid = _slug(m.name, scenario, suite)
            title = f"{m.name}: {scenario} [{boards[0].mode}], speedup vs eager"
            paths = bar_chart(data, title, "speedup vs eager (x, log scale)", out, sid)
            figures[sid] = [p.name for p in paths]
    return figures


def write_leaderboard(
    results: str | Path,
    html_dir: str | Path,
    config: str | Path | None = AUTO,
    on_skip: Callable[[asv_results.Skipped], None] = _warn,
) -> list[Path]:
    """Write ``<html_dir>/leaderboard/index.html`` and its figures; return the files.
    ``config`` and ``on_skip``: as for :func:`read_results`."""
    machines = read_results(results, config, on_skip)
    out = Path(html_dir) / "leaderboard"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LeaderboardError(f"cannot create {out}: {exc.strerror}") from None
    figures = _figures(machines, out)
    page = write_text(out / "index.html", render_page(machines, figures))
    return [page] + [out / name for names in figures.values() for name in names]
