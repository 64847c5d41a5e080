"""The environment variables the library reads, in one place (standard library only).

Every knob is read here, when it is asked for, so that a process (asv's benchmark children, a
test) that sets one before its first use is obeyed. Below the entry points (``attnbench`` CLI,
the asv suite, the tools) no other module reads ``os.environ``.

- ``ATTNBENCH_CACHE_DIR``: where probe answers and compiled kernels are kept
  (default: ``attnbench-$USER`` in the temporary directory);
- ``ATTNBENCH_FA4_DISK_CACHE=1``: flash-attn-4 keeps its compiled kernels there;
- ``ATTNBENCH_SETTLE_MS``: untimed milliseconds before a CUDA figure (default 200);
- ``TRITON_INTERPRET``: Triton's own switch, read as Triton reads it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

CACHE_DIR = "ATTNBENCH_CACHE_DIR"
FA4_DISK_CACHE = "ATTNBENCH_FA4_DISK_CACHE"
SETTLE_MS = "ATTNBENCH_SETTLE_MS"
#: flash-attn-4's own switches for its disk cache of compiled kernels
FA4_CACHE_ENABLED = "FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED"
FA4_CACHE_DIR = "FLASH_ATTENTION_CUTE_DSL_CACHE_DIR"


def cache_dir() -> Path:
    """``$ATTNBENCH_CACHE_DIR``, else a per-user folder in the temporary directory."""
    folder = os.environ.get(CACHE_DIR, "").strip()
    if folder:
        return Path(folder)
    user = os.environ.get("USER") or str(os.getuid() if hasattr(os, "getuid") else "user")
    return Path(tempfile.gettempdir()) / f"attnbench-{user}"


def fa4_disk_cache_requested() -> bool:
    return os.environ.get(FA4_DISK_CACHE, "").strip() == "1"


def fa4_disk_cache_enabled() -> bool:
    """flash-attn-4's own switch is on (set by :func:`fa4_disk_cache_requested` or a user)."""
    return os.environ.get(FA4_CACHE_ENABLED) == "1"


def settle_ms(default: float = 200.0) -> float:
    return float(os.environ.get(SETTLE_MS, default))


def triton_interpret_requested() -> bool:
    """``TRITON_INTERPRET`` as Triton parses it: its kernels run on the CPU, interpreted."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def probe_facts() -> dict[str, str | None]:
    """What of the environment changes which implementations can run: the commit asv
    measures and the GPUs this process sees."""
    return {
        "commit": os.environ.get("ASV_COMMIT"),
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
