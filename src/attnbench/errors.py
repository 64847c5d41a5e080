"""Errors that name the problem, so a user (or a skipped benchmark) can read why."""

from __future__ import annotations


class AttnbenchError(Exception):
    """Base class of every error attnbench raises on purpose."""


class UnknownNameError(AttnbenchError, KeyError):
    """An implementation, workload or set name that the registry does not know."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        shown = ", ".join(known[:12]) + (" ..." if len(known) > 12 else "")
        super().__init__(f"unknown {kind} {name!r}{hint} (known: {shown})")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InvalidWorkloadError(AttnbenchError, ValueError):
    """A workload whose shape or dtype cannot describe attention."""


class UnsupportedError(AttnbenchError):
    """An implementation cannot run a workload here; the message says why."""
