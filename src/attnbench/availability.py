"""Which implementations can run anything at all on a device, and why not: probed once.

:meth:`Implementation.device_problem` answers for one implementation (its package missing or
broken, the device type or GPU generation not served, torch's glue failing on one tiny call).
Asking it imports optional packages and may touch the GPU, which a parent process that forks
benchmark processes (asv's forkserver) must not do; :func:`probe` therefore asks a child
process, and remembers the answer in a small file keyed by everything that could change it
(interpreter, installed commit, package versions, visible GPUs), so that the many processes of
one ``asv run`` agree on the same answer and pay for it once.

``python -m attnbench.availability [--device cuda] [NAME ...]`` prints the answer as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .atomic import write_json
from .settings import cache_dir, probe_facts

#: distributions whose presence or version changes what can run
_DISTRIBUTIONS = (
    "torch", "triton", "flash-attn", "flash-attn-3", "flash-attn-4", "xformers",
    "nvidia-cudnn-cu12",
)  # fmt: skip
PROBE_TIMEOUT_S = 300


def problems(names: Sequence[str], device: str) -> dict[str, str | None]:
    """``{name: why it can run nothing on device, or None}``, asked in this process."""
    import torch

    from .devices import resolve_device
    from .impls import get_impl

    dev = resolve_device(device)
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = get_impl(name).device_problem(dev)
        except Exception as exc:  # a broken backend is a reason, never a crash of the probe
            out[name] = f"availability check failed: {type(exc).__name__}: {exc}"
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return out


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for dist in _DISTRIBUTIONS:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = None
    return found


def cache_key(names: Sequence[str], device: str) -> str:
    """A digest of what decides the answer (no import of torch or any backend)."""
    package = Path(__file__).resolve().parent
    newest = max((p.stat().st_mtime_ns for p in package.rglob("*.py")), default=0)
    facts = {
        "python": sys.executable,
        "path": sys.path,
        "package": str(package),
        "sources": newest,
        "versions": _versions(),
        **probe_facts(),
        "device": device,
        "names": list(names),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]


def probe(names: Sequence[str], device: str = "cuda") -> dict[str, str | None]:
    """:func:`problems` asked in a child process, the answer kept in :func:`cache_dir`.

    If the child fails, every name maps to ``None`` (nothing is ruled out; each case then
    reports its own reason) and a warning goes to stderr."""
    path = cache_dir() / f"availability-{cache_key(names, device)}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    cmd = [sys.executable, "-m", "attnbench.availability", "--device", device, *names]
    # the child searches this process's path, not its environment's: asv's benchmark processes
    # drop PYTHONPATH's entries from sys.path but not from the environment they pass on
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=True, env=env
        )
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        print(f"attnbench: availability probe failed, ruling nothing out: {detail[-500:]}",
              file=sys.stderr)  # fmt: skip
        return dict.fromkeys(names)
    try:
        write_json(path, answer)  # atomic: concurrent processes read a whole file or none
    except OSError:
        pass
    return answer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnbench.availability")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("names", nargs="*", help="implementations (default: every one)")
    args = parser.parse_args(argv)
    from .impls import impl_names

    print(json.dumps(problems(args.names or impl_names(), args.device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
