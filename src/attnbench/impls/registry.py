"""The registry of implementations: register with a decorator, look up by name."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TypeVar

from ..errors import UnknownNameError
from .base import Implementation

_REGISTRY: dict[str, Implementation] = {}
T = TypeVar("T", bound=type[Implementation])


def register(cls: T) -> T:
    """Class decorator: make an implementation known under its ``name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"implementation {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def get_impl(name: str) -> Implementation:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("implementation", name, list(_REGISTRY)) from None


def impl_names(*, benchmarked_only: bool = False) -> list[str]:
    return [n for n, i in _REGISTRY.items() if i.benchmarked or not benchmarked_only]


def select_impls(patterns: list[str]) -> list[Implementation]:
    """Implementations by exact name or glob (``sdpa-*``), in order, no repeats."""
    chosen: dict[str, Implementation] = {}
    for pattern in patterns:
        matches = [i for n, i in _REGISTRY.items() if fnmatchcase(n, pattern)]
        if not matches:
            raise UnknownNameError("implementation", pattern, list(_REGISTRY))
        for impl in matches:
            chosen.setdefault(impl.name, impl)
    return list(chosen.values())
