"""The whole gate with real asv and git (tools.ci.gate_trial on attnbench itself, in a
scratch clone): a docs-only commit passes, a planted 1.5x slowdown of chunked fails the gate
naming only chunked's figures. Slow: two ``asv continuous`` runs of two commits each."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

ASV = Path(sys.executable).parent / "asv"


@pytest.mark.slow
@pytest.mark.skipif(not ASV.exists(), reason=f"no asv next to {sys.executable}")
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_gate_passes_a_docs_commit_and_catches_a_planted_slowdown(tmp_path):
    out = tmp_path / "trial.json"
    cmd = [
        sys.executable, "-m", "tools.ci.gate_trial", "--machine", "trialbox",
        "--trials", "1", "--plant", "chunked:1.5", "--json", str(out), "--keep",
        str(tmp_path / "scratch"), "--impls", "eager,chunked", "--bench", r"^forward\.Forward",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    same, planted = json.loads(out.read_text())
    logs = "\n".join(p.read_text()[-4000:] for p in (tmp_path / "scratch").glob("rows-*.log"))
    assert same["kind"] == "A/A" and same["exit_code"] == 0, logs
    assert planted["exit_code"] == 1, logs
    assert planted["regressions"], logs
    assert all("'chunked'" in name for name in planted["regressions"]), planted["regressions"]
    assert any("track_seconds" in name for name in planted["regressions"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_first_bad_names_the_commit_that_planted_a_slowdown(tmp_path):
    """base -> docs -> chunked 3x slower -> docs: the bisection names the third commit (3x:
    each step must be confirmed by every turn, and a busy 2-core machine's turns vary)."""
    from tools.ci import first_bad, gate_trial
    from tools.ci.pipeline import Project

    repo = gate_trial.scratch_clone(ROOT, tmp_path)
    base = gate_trial._git(repo, "rev-parse", "HEAD")
    gate_trial.commit_docs_only(repo)
    planted = gate_trial.commit_plant(repo, "HEAD", "chunked", 3.0)
    (repo / "docs" / "later.md").write_text("Another docs-only change.\n")
    gate_trial._git(repo, "add", "docs/later.md")
    gate_trial._git(repo, "commit", "-q", "-m", "docs again")
    head = gate_trial._git(repo, "rev-parse", "HEAD")
    pair = ("chunked", "h8kv2d64/prefill/s256/b2/full/fp32", "forward")
    found, steps = first_bad.first_bad(Project.load(repo), base, head, pair)
    assert found == planted, steps


def test_the_gates_path_options_are_made_absolute(tmp_path, monkeypatch):
    """The gate runs in the scratch clone: a relative --comment or --records given to the trial
    names a path where the trial was started."""
    from tools.ci import gate_trial

    monkeypatch.chdir(tmp_path)
    args = ["--comment", "c.md", "--records=r", "--factor", "1.05", "--bench", "x"]
    assert gate_trial.absolute_paths(args) == [
        "--comment", str(tmp_path / "c.md"), f"--records={tmp_path / 'r'}", "--factor", "1.05",
        "--bench", "x",
    ]  # fmt: skip
