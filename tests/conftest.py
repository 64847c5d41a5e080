"""Shared fixtures and helpers of attnbench's tests.

Implementations are discovered through the registry: a test parametrized over ``cpu_impl``
runs for every benchmarked implementation that can run an fp32 workload on this CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import attnbench
from attnbench import Workload

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")

#: implementations that must run on any CPU (a registry change that loses one is a bug)
REQUIRED_CPU_IMPLS = ("eager", "sdpa", "sdpa-math", "sdpa-flash", "chunked")

# a plain fp32 MHA problem: what every CPU implementation must be able to run
_PROBE = Workload(1, 2, 2, 8, 8, 32, causal=True, dtype="fp32")


def cpu_impl_names() -> list[str]:
    """Benchmarked implementations that run fp32 on the CPU, in registry order; those that
    compile on their first call (``compiles = True``: seconds per shape on a CPU) are left to
    tests/test_compiled_cpu.py, which runs them on a few workloads."""
    return [
        name
        for name in attnbench.impl_names(benchmarked_only=True)
        if not attnbench.get_impl(name).unsupported_reasons(_PROBE, CPU)
        and not getattr(attnbench.get_impl(name), "compiles", False)
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cpu_impl" in metafunc.fixturenames:
        metafunc.parametrize("cpu_impl", cpu_impl_names())


@pytest.fixture(scope="session")
def cpu_impls() -> list[str]:
    return cpu_impl_names()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def venv_bin() -> Path:
    """The directory of the Python running the tests (asv lives next to it)."""
    return Path(sys.executable).parent


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """A seed that differs between tests (fresh inputs) yet is reproducible for each test."""
    import zlib

    return zlib.crc32(request.node.nodeid.encode()) & 0x7FFFFFFF


@pytest.fixture(autouse=True)
def _fresh_import_probes():
    """Adapters cache their import attempts; tests that fake or hide packages need a fresh one."""
    from attnbench.impls._external import load

    load.cache_clear()
    yield
    load.cache_clear()
