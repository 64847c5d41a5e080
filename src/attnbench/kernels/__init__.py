"""Kernels written in-house. Each module here imports its compiler (Triton) at module level, so
import one only where it runs (inside an implementation's ``bind``/``forward``), never from
``import attnbench``."""
