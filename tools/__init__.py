"""The project's tools: the continuous pipeline (tools.ci) and developer helpers."""
