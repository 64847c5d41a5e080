"""attnbench.textout: tables that fit the width, split matrices, wrapped lines, grouped reasons."""

from __future__ import annotations

import io

import pytest

from attnbench import textout


def _render(tables, width: int = 120) -> list[str]:
    out = io.StringIO()
    con = textout.console(out)
    con.width = width
    for t in tables:
        textout.show(con, t)
    return out.getvalue().splitlines()


@pytest.mark.parametrize("n", [0, 1, 5, 30])
def test_split_table_fits_and_keeps_every_column_once(n):
    out = io.StringIO()
    con = textout.console(out)
    keys = [f"model-{i}/prefill/s4096/b4/causal/bf16" for i in range(3)]
    columns = [(f"implementation-{i}", ["ok", "n/a", "FAIL"]) for i in range(n)]
    tables = textout.split_table(con, "workload", keys, columns)
    lines = _render(tables)
    assert max(len(line) for line in lines) <= 120
    headers = [line.split() for line in lines if line.startswith("workload")]
    assert len(headers) == len(tables) == max(1, -(-n // 4))  # 4 such columns fit 120
    assert [h for hs in headers for h in hs[1:]] == [h for h, _ in columns]
    if len(tables) > 1:  # shares about equal, not 4 + 4 + ... + a lone last column
        sizes = [len(hs) - 1 for hs in headers]
        assert max(sizes) - min(sizes) <= 1


def test_off_a_terminal_the_width_is_120():
    assert textout.console(io.StringIO()).width == textout.WIDTH == 120


def test_show_leaves_no_trailing_spaces():
    lines = _render([textout.table(["a", "long header"], [["x", "1"], ["yy", "22"]], right=[1])])
    assert lines[0] == "a   long header"
    assert lines[2:] == ["x             1", "yy           22"]


def test_wrapped_keeps_names_whole_with_a_hanging_indent():
    out = io.StringIO()
    con = textout.console(out)
    names = ", ".join(f"xformers-cutlass-{i}" for i in range(12))
    textout.wrapped(con, f"skipped: {names} (needs xformers)")
    lines = out.getvalue().splitlines()
    assert len(lines) > 1 and all(len(line) <= 120 for line in lines)
    assert all(line.startswith("    ") for line in lines[1:])
    assert " ".join(line.strip() for line in lines) == f"skipped: {names} (needs xformers)"


def test_grouped_reasons_drop_the_repeated_name():
    pairs = [("a", "a: no CUDA"), ("b", "b: no CUDA"), ("c", "no fp8")]
    assert textout.grouped_reasons(pairs) == "a, b (no CUDA); c (no fp8)"
