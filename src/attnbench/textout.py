"""Text a person reads in a terminal or a log: rich tables that fit the width (120 columns off
a terminal), wide tables split into column groups, long lines wrapped, skip reasons grouped."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import TextIO

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

#: the width of text written to a file, a pipe or a CI log (a terminal uses its own)
WIDTH = 120


def console(out: TextIO) -> Console:
    """A console on ``out``: the terminal's width on a terminal, else :data:`WIDTH`; text is
    printed as given (no markup: workload names hold brackets)."""
    tty = hasattr(out, "isatty") and out.isatty()
    width = shutil.get_terminal_size((WIDTH, 24)).columns if tty else WIDTH
    return Console(file=out, width=width, markup=False, highlight=False, emoji=False)


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()
) -> Table:
    """A borderless table with a rule under the headers; columns in ``right`` right-aligned
    (numbers), long cells wrapped when the table is wider than the console."""
    right = set(right)
    t = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),  # with the column divider: two spaces between columns
        header_style="bold",
    )
    for i, h in enumerate(headers):
        t.add_column(h, justify="right" if i in right else "left", overflow="fold")
    for row in rows:
        t.add_row(*row)
    return t


def show(con: Console, renderable) -> None:
    """Print ``renderable`` without the spaces rich pads the last column with (logs, diffs)."""
    with con.capture() as captured:
        con.print(renderable)
    con.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def split_table(
    con: Console,
    key: str,
    keys: Sequence[str],
    columns: Sequence[tuple[str, Sequence[str]]],
) -> list[Table]:
    """A matrix too wide for the console as several tables, each the ``key`` column beside a
    share of ``columns`` (header, cells): as few tables as fit, their shares about equal."""
    greedy: list[Sequence] = []
    start = 0
    while start < len(columns) or not greedy:
        end = start + 1
        while end < len(columns) and _fits(con, key, keys, columns[start : end + 1]):
            end += 1
        greedy.append(columns[start:end])
        start = end
    size, extra = divmod(len(columns), len(greedy))  # the first `extra` shares one larger
    bounds = [i * size + min(i, extra) for i in range(len(greedy) + 1)]
    even = [columns[a:b] for a, b in pairwise(bounds)]
    chunks = even if all(_fits(con, key, keys, c) for c in even) else greedy
    return [_matrix(key, keys, chunk) for chunk in chunks]


def _matrix(key: str, keys: Sequence[str], columns) -> Table:
    headers = [key] + [h for h, _ in columns]
    return table(headers, [[k] + [cells[i] for _, cells in columns] for i, k in enumerate(keys)])


def _fits(con: Console, key: str, keys: Sequence[str], columns) -> bool:
    unbounded = con.options.update_width(1 << 16)  # Measurement clamps to the width given
    return Measurement.get(con, unbounded, _matrix(key, keys, columns)).maximum <= con.width


def wrapped(con: Console, text: str, indent: str = "    ") -> None:
    """One logical line, wrapped at the console's width with a hanging indent (words and
    names with hyphens kept whole)."""
    con.out(
        textwrap.fill(
            text,
            width=con.width,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
    )


def without_name(name: str, reason: str) -> str:
    """A reason without the ``"<name>: "`` that errors put in front (the name is shown)."""
    prefix = f"{name}: "
    return reason[len(prefix) :] if reason.startswith(prefix) else reason


def by_reason(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """{reason: names}: names sharing a reason together, in first-seen order."""
    grouped: dict[str, list[str]] = {}
    for name, reason in pairs:
        grouped.setdefault(without_name(name, reason), []).append(name)
    return grouped


def grouped_reasons(pairs: Iterable[tuple[str, str]]) -> str:
    """``"a, b (reason); c (other)"``: one line for names and their reasons."""
    return "; ".join(f"{', '.join(names)} ({why})" for why, names in by_reason(pairs).items())
