"""What a result was measured on: machine, GPU, driver and library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path

import torch

OPTIONAL_PACKAGES = (
    "triton",
    "flash-attn",
    "flash-attn-3",
    "flash-attn-4",
    "nvidia-cutlass-dsl",
    "xformers",
    "nvidia-ml-py",
    "asv",
    "asv-runner",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _driver_version() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_name() -> str | None:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def machine_info() -> dict:
    """Everything a reader needs to know to trust (or reproduce) a figure."""
    info: dict = {
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cpu": _cpu_model(),
        "num_cpu": os.cpu_count(),
        "ram": _ram_bytes(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": gpu_name(),
        "packages": {p: v for p in OPTIONAL_PACKAGES if (v := _version(p))},
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu_count=torch.cuda.device_count(),
            gpu_memory=props.total_memory,
            gpu_sm_count=props.multi_processor_count,
            gpu_capability=f"{props.major}.{props.minor}",
            cudnn=torch.backends.cudnn.version(),
            driver=_driver_version(),
        )
    return info


def asv_machine_entry(name: str, info: dict) -> dict:
    """This machine's asv fields (:func:`coarse_asv_fields` of what :func:`machine_info`
    found): asv has no GPU field, so the GPU model and count go into ``cpu``."""
    cpu = info["cpu"]
    if info.get("gpu"):
        cpu += f" | GPU: {info['gpu']} x{info['gpu_count']}"
    entry = {
        "machine": name,
        "os": info["os"],
        "arch": info["arch"],
        "cpu": cpu,
        "num_cpu": str(info["num_cpu"]),
        "ram": str(info.get("ram") or ""),
    }
    return coarse_asv_fields(entry)


def coarse_asv_fields(fields: dict) -> dict:
    """asv keys each graph by a machine's fields (all in the graph's path): kept coarse, the
    same runner after a kernel build, a driver update or a RAM figure a few MB off draws one
    history, not several. OS as kernel major.minor, RAM in GiB, no driver or CUDA version in
    ``cpu`` (``python -m attnbench.system`` prints them). Idempotent; other keys untouched."""
    out = dict(fields)
    system, _, release = str(out.get("os", "")).partition(" ")
    version = re.match(r"\d+\.\d+", release)  # 6.18.44-fc-v973-gpu: 6.18
    if version:
        out["os"] = f"{system} {version.group(0)}"
    if str(out.get("ram", "")).isdigit():
        out["ram"] = f"{round(int(out['ram']) / 2**30)} GiB"
    if "cpu" in out:
        out["cpu"] = re.sub(r", driver [^|]*$", "", str(out["cpu"]))
    return out


def register_asv_machine(name: str) -> dict:
    """Record this machine for asv under ``name`` (:func:`asv_machine_entry`). ``asv machine
    --yes`` alone would record the name only."""
    from asv.machine import MachineCollection

    from .atomic import install_in_asv

    install_in_asv()  # MachineCollection.save rewrites ~/.asv-machine.json: whole or not at all
    entry = asv_machine_entry(name, machine_info())
    MachineCollection.save(name, entry)
    return entry
