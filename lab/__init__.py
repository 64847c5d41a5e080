"""The kernel lab: tools that measure, profile and inspect the in-house kernels (README.md)."""
