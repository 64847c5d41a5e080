"""attnbench run's progress bar: advanced once per record on a terminal, silent otherwise."""

from attnbench import cli


def test_run_shows_progress_on_a_terminal(monkeypatch):
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: True, raising=False)
    seen = []
    with cli._progress(3) as advance:
        for name in ("a", "b", "c"):
            advance(type("R", (), {"impl": name, "workload": "w"})())
            seen.append(name)
    assert seen == ["a", "b", "c"]


def test_no_progress_bar_off_a_terminal(monkeypatch):
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: False, raising=False)
    with cli._progress(1) as advance:
        assert advance(None) is None
