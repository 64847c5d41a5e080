"""A leaderboard page beside asv's site: per machine and scenario, the latest commit's results
ranked, with links into asv's graphs.

asv's JSON is read directly (``results/benchmarks.json``, ``results/<machine>/machine.json``,
``results/<machine>/<commit>-<env>.json``, version 2): no asv import, so the page can be written
wherever attnbench is installed. A result row is ``[result, params, version, ...]`` as named by
the file's ``result_columns``; ``result`` runs over the product of ``params`` in order; NaN
means skipped (asv's ``SkipNotImplemented``), ``null`` means failed.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

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
#: what encodeURIComponent leaves alone (asv builds and parses its hash with it)
_URI_SAFE = "-_.!~*'()"


class LeaderboardError(AttnbenchError):
    """asv results that cannot be read; the message names the file and the problem."""


@dataclass
class Entry:
    """One implementation on one workload at the latest commit."""

    impl: str
    impl_param: str  # as asv stores it: repr of the string, quotes included
    status: str  # "ok" | "skipped" | "failed"
    values: dict[str, float | None] = field(default_factory=dict)


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

    def graph_link(self, impl_param: str | None = None) -> str:
        """asv's graph page of the ranking figure, this machine and workload (one impl or all)."""
        return graph_link(
            f"{self.suite}.{METRICS[self.rank_by]}",
            self.machine,
            {"implementation": impl_param, "workload": self.workload_param},
        )


@dataclass
class MachineResults:
    name: str
    info: dict
    commit: str
    date: int | None
    boards: list[Board]


# -- reading ---------------------------------------------------------------------------------
def _load(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LeaderboardError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LeaderboardError(f"{path}: cannot read it as JSON ({exc})") from None


def _unquote(param: str) -> str:
    """asv stores string parameters as their repr: ``'eager'`` -> ``eager``."""
    if len(param) >= 2 and param[0] == param[-1] and param[0] in "'\"":
        return param[1:-1]
    return param


def graph_link(benchmark: str, machine: str, params: dict[str, str | None]) -> str:
    """``../index.html#<benchmark>?machine=..&p-<name>=..``: asv 0.6's hash route to a graph,
    relative to html/leaderboard/; values encoded as encodeURIComponent does."""
    parts = [f"machine={quote(machine, safe=_URI_SAFE)}"]
    for name, value in params.items():
        if value is not None:
            parts.append(f"p-{quote(name, safe=_URI_SAFE)}={quote(value, safe=_URI_SAFE)}")
    return f"../index.html#{benchmark}?{'&'.join(parts)}"


def _rows(doc: dict, path: Path) -> dict[str, dict[tuple[str, str], float | None]]:
    """{benchmark: {(impl_param, workload_param): value}} of one result file."""
    columns = doc.get("result_columns") or ["result", "params", "version"]
    try:
        i_res, i_par = columns.index("result"), columns.index("params")
    except ValueError:
        raise LeaderboardError(f"{path}: result_columns lacks result/params") from None
    out: dict[str, dict[tuple[str, str], float | None]] = {}
    for name, row in (doc.get("results") or {}).items():
        if not isinstance(row, list) or len(row) <= max(i_res, i_par):
            continue
        values, params = row[i_res], row[i_par]
        if not isinstance(values, list) or not isinstance(params, list) or len(params) != 2:
            continue
        keys = list(itertools.product(*params))
        if len(keys) != len(values):
            raise LeaderboardError(
                f"{path}: {name} has {len(values)} results for {len(keys)} parameter pairs"
            )
        out[name] = dict(zip(keys, values, strict=True))
    return out


def _current(rows: dict, benchmarks: dict, doc: dict) -> dict:
    """Drop results of benchmark versions that benchmarks.json no longer has (as asv does)."""
    columns = doc.get("result_columns") or []
    i_ver = columns.index("version") if "version" in columns else None
    kept = {}
    for name, values in rows.items():
        bench = benchmarks.get(name)
        if not bench or bench.get("param_names") != PARAM_NAMES:
            continue
        version = doc["results"][name][i_ver] if i_ver is not None else None
        if version is not None and bench.get("version") not in (None, version):
            continue
        kept[name] = values
    return kept


def _status(values: dict[str, float | None]) -> str:
    present = [v for v in values.values() if v is not None]
    if any(not (isinstance(v, float) and math.isnan(v)) for v in present):
        return "ok"
    return "skipped" if present else "failed"


def _boards(machine: str, rows: dict) -> list[Board]:
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
            entries = []
            for impl_param in dict.fromkeys(i for i, w in pairs if w == wl_param):
                values = {k: _number(r.get((impl_param, wl_param))) for k, r in metric_rows.items()}
                raw = {k: r.get((impl_param, wl_param)) for k, r in metric_rows.items()}
                entries.append(Entry(_unquote(impl_param), impl_param, _status(raw), values))
            entries.sort(key=lambda e: _rank_key(e, rank_by))
            boards.append(Board(machine, suite, scenario, workload, wl_param, rank_by, entries))
    order = {s: i for i, s in enumerate(SCENARIO_ORDER)}
    boards.sort(key=lambda b: (order.get(b.scenario, 99), b.suite, b.workload))
    return boards


def _number(v: object) -> float | None:
    return v if isinstance(v, (int, float)) and not math.isnan(v) else None


def _rank_key(e: Entry, rank_by: str) -> tuple:
    value = e.values.get(rank_by)
    return (e.status != "ok", value is None, -(value or 0.0), e.impl)


def read_results(results: str | Path) -> list[MachineResults]:
    """Each machine's latest commit (by commit date), ranked; machines sorted by name."""
    root = Path(results)
    if not root.is_dir():
        raise LeaderboardError(f"{root}: no such directory (asv's results_dir)")
    benchmarks = _load(root / "benchmarks.json")
    if not isinstance(benchmarks, dict):
        raise LeaderboardError(f"{root / 'benchmarks.json'}: not asv's benchmark list")
    machines = []
    for mdir in sorted(p for p in root.iterdir() if (p / "machine.json").is_file()):
        info = _load(mdir / "machine.json")
        docs = []
        for path in sorted(mdir.glob("*.json")):
            if path.name == "machine.json":
                continue
            doc = _load(path)
            if isinstance(doc, dict) and doc.get("commit_hash"):
                docs.append((path, doc))
        if not docs:
            continue
        latest = max(docs, key=lambda d: d[1].get("date") or 0)[1]
        rows: dict = {}
        for path, doc in docs:
            if doc["commit_hash"] == latest["commit_hash"]:
                for name, values in _current(_rows(doc, path), benchmarks, doc).items():
                    rows.setdefault(name, values)
        info = info if isinstance(info, dict) else {}
        boards = _boards(mdir.name, rows)
        machines.append(
            MachineResults(mdir.name, info, latest["commit_hash"], latest.get("date"), boards)
        )
    if not machines:
        raise LeaderboardError(f"{root}: no machine with results (results/<machine>/*.json)")
    return machines


# -- rendering -------------------------------------------------------------------------------
_CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 0.3em 0 1em; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #ddd; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.first td { font-weight: bold; }
p.note, p.skipped { color: #666; font-size: 0.9em; }
img { max-width: 100%; }
h4 { margin-bottom: 0.2em; }
"""
_RANK_LABEL = {"tflops": "TFLOP/s", "gbps": "GB/s"}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


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
    return f"{value:.3g}"


def _date(ms: int | None) -> str:
    import datetime

    if not ms:
        return "date unknown"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)).strip("-")


def render_board(board: Board) -> str:
    """One workload's table: ranked measured entries, then the skipped and failed ones."""
    rank = _RANK_LABEL[board.rank_by]
    out = [
        f'<h4><a href="{_e(board.graph_link())}">{_e(board.workload)}</a></h4>',
        "<table><tr><th>#</th><th>implementation</th>"
        f'<th class="num">{rank}</th><th class="num">median time</th>'
        '<th class="num">speedup vs eager</th><th class="num">max abs error</th></tr>',
    ]
    ok = [e for e in board.entries if e.status == "ok"]
    for n, e in enumerate(ok, 1):
        v = e.values
        out.append(
            f"<tr{' class=first' if n == 1 else ''}><td>{n}</td>"
            f'<td><a href="{_e(board.graph_link(e.impl_param))}">{_e(e.impl)}</a></td>'
            f'<td class="num">{_fmt(v.get(board.rank_by), board.rank_by)}</td>'
            f'<td class="num">{_fmt(v.get("seconds"), "seconds")}</td>'
            f'<td class="num">{_fmt(v.get("speedup"), "speedup")}</td>'
            f'<td class="num">{_fmt(v.get("max_error"), "max_error")}</td></tr>'
        )
    out.append("</table>")
    for status in ("skipped", "failed"):
        names = [e.impl for e in board.entries if e.status == status]
        if names:
            out.append(f'<p class="skipped">{status}: {_e(", ".join(names))}</p>')
    return "\n".join(out)


def _machine_line(m: MachineResults) -> str:
    info = m.info
    bits = [str(info.get(k)) for k in ("cpu", "os", "arch") if info.get(k)]
    if info.get("num_cpu"):
        bits.append(f"{info['num_cpu']} CPUs")
    if str(info.get("ram", "")).isdigit():
        bits.append(f"{int(info['ram']) / 2**30:.0f} GiB RAM")
    return f"{'; '.join(bits)}. Commit {m.commit[:8]}, {_date(m.date)}."


def render_page(machines: list[MachineResults], figures: dict[str, list[str]]) -> str:
    """The whole page; ``figures`` maps a section id to figure file names beside the page."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>attnbench leaderboard</title>",
        f"<style>{_CSS}</style></head><body>",
        '<p><a href="../index.html">&larr; asv overview (all benchmarks, history)</a></p>',
        "<h1>attnbench leaderboard</h1>",
        '<p class="note">Each machine\'s latest measured commit. Ranked by TFLOP/s (prefill, '
        "train) or GB/s over the fewest bytes (decode); speedup is against eager timed in the "
        "same process; max abs error is against the float64 reference. A workload's name links "
        "to asv's graph of every implementation on it, an implementation's name to its own "
        "history. docs/reading-the-numbers.md explains each figure.</p>",
        "<ul>",
    ]
    out += [f'<li><a href="#{_e(_slug(m.name))}">{_e(m.name)}</a></li>' for m in machines]
    out.append("</ul>")
    for m in machines:
        out.append(f'<h2 id="{_e(_slug(m.name))}">{_e(m.name)}</h2>')
        out.append(f'<p class="note">{_e(_machine_line(m))}</p>')
        if not m.boards:
            out.append('<p class="note">no attnbench track_* results at this commit</p>')
        for (scenario, suite), boards in _sections(m.boards).items():
            sid = _slug(m.name, scenario, suite)
            out.append(f'<h3 id="{_e(sid)}">{_e(scenario)} [{_e(boards[0].mode)}]</h3>')
            for name in figures.get(sid, []):
                if name.endswith(".svg"):
                    alt = f"speedup vs eager, {m.name}, {scenario}"
                    out.append(f'<p><img src="{_e(name)}" alt="{_e(alt)}"></p>')
            out += [render_board(b) for b in boards]
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _sections(boards: list[Board]) -> dict[tuple[str, str], list[Board]]:
    sections: dict[tuple[str, str], list[Board]] = {}
    for b in boards:
        sections.setdefault((b.scenario, b.suite), []).append(b)
    return sections


def _figures(machines: list[MachineResults], out: Path) -> dict[str, list[str]]:
    """Speedup-vs-eager bars per machine and section, drawn by :mod:`attnbench.plot`."""
    from .plot import bar_chart

    figures: dict[str, list[str]] = {}
    for m in machines:
        for (scenario, suite), boards in _sections(m.boards).items():
            data = {
                b.workload: {
                    e.impl: e.values["speedup"]
                    for e in b.entries
                    if e.status == "ok" and e.values.get("speedup")
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


def write_leaderboard(results: str | Path, html_dir: str | Path) -> list[Path]:
    """Write ``<html_dir>/leaderboard/index.html`` and its figures; return the files."""
    machines = read_results(results)
    out = Path(html_dir) / "leaderboard"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LeaderboardError(f"cannot create {out}: {exc.strerror}") from None
    figures = _figures(machines, out)
    page = out / "index.html"
    page.write_text(render_page(machines, figures), encoding="utf-8")
    return [page] + [out / name for names in figures.values() for name in names]
