"""attnbench.availability: the device-wide reasons, asked in a child process, kept in a file."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch

from attnbench import availability, get_impl

from .conftest import CPU


def test_problems_name_the_device_wide_reason():
    found = availability.problems(["eager", "sdpa-cudnn", "fa3"], "cpu")
    assert found["eager"] is None
    assert found["sdpa-cudnn"] == "needs a CUDA device"
    assert found["fa3"] == get_impl("fa3").device_problem(CPU)
    assert "flash-attn-3" in found["fa3"]


def test_a_device_problem_is_every_workload_s_only_reason():
    from attnbench import select_workloads

    w = select_workloads(["quick"])[0]
    assert get_impl("sdpa-cudnn").unsupported_reasons(w, CPU) == ["needs a CUDA device"]


def test_probe_asks_a_child_once_then_reads_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNBENCH_CACHE_DIR", str(tmp_path))
    calls = []
    real = subprocess.run

    def counting(cmd, **kwargs):
        calls.append(cmd)
        return real(cmd, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting)
    first = availability.probe(["eager", "sdpa-cudnn"], "cpu")
    assert first == {"eager": None, "sdpa-cudnn": "needs a CUDA device"}
    assert len(calls) == 1 and calls[0][1:3] == ["-m", "attnbench.availability"]
    assert availability.probe(["eager", "sdpa-cudnn"], "cpu") == first
    assert len(calls) == 1  # the file answered
    (cached,) = tmp_path.glob("availability-*.json")
    assert json.loads(cached.read_text()) == first
    # another commit (asv sets ASV_COMMIT) is another question
    monkeypatch.setenv("ASV_COMMIT", "feedface")
    assert availability.probe(["eager", "sdpa-cudnn"], "cpu") == first
    assert len(calls) == 2


def test_the_child_searches_the_path_of_the_process_that_asks(monkeypatch, tmp_path):
    """asv's benchmark processes drop PYTHONPATH's entries from sys.path, not from the
    environment: the child must see what the benchmarks see (fa4 found by the probe and then
    'not installed' in every sweep, H200)."""
    monkeypatch.setenv("ATTNBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stripped"))
    monkeypatch.syspath_prepend(str(tmp_path / "kept"))
    seen = []
    real = subprocess.run
    monkeypatch.setattr(
        subprocess, "run", lambda cmd, **kw: seen.append(kw["env"]) or real(cmd, **kw)
    )
    assert availability.probe(["eager"], "cpu") == {"eager": None}
    child_path = seen[0]["PYTHONPATH"].split(os.pathsep)
    assert str(tmp_path / "kept") in child_path and str(tmp_path / "stripped") not in child_path


def test_a_failed_probe_rules_nothing_out(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ATTNBENCH_CACHE_DIR", str(tmp_path))

    def broken(cmd, **kwargs):
        raise subprocess.CalledProcessError(1, cmd, stderr="RuntimeError: no CUDA GPUs")

    monkeypatch.setattr(subprocess, "run", broken)
    assert availability.probe(["eager", "fa4"], "cuda") == {"eager": None, "fa4": None}
    assert "availability probe failed" in capsys.readouterr().err
    assert not list(tmp_path.glob("availability-*.json"))  # a failure is not remembered


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU answer")
def test_main_prints_json(capsys):
    assert availability.main(["--device", "cpu", "eager", "sdpa-efficient"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "eager": None,
        "sdpa-efficient": "needs a CUDA device",
    }
