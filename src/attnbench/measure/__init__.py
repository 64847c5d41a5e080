"""Measuring, once: timing, memory, errors. Shared by the asv suite, the CLI and the tests."""
