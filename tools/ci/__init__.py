"""The continuous pipeline: each step runs as ``python -m tools.ci.NAME`` from the root."""
