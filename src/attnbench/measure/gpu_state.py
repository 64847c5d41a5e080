"""The GPU's SM clock and temperature at a moment: what a figure was measured under.

Read through NVML (``pynvml``, from nvidia-ml-py) when importable, else ``nvidia-smi``, else
``torch.cuda.clock_rate``/``temperature`` where present; ``None`` on the CPU or when nothing
answers. Readings are cheap enough to take at the start and end of each benchmark.
"""

from __future__ import annotations

import subprocess

import torch


def device_name(device: torch.device) -> str | None:
    """The GPU's name (what peak tables match on), ``None`` off CUDA."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def _index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def _pynvml(device: torch.device) -> dict | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        props = torch.cuda.get_device_properties(device)
        bus = getattr(props, "pci_bus_id", None)
        if bus is not None:
            pci = f"{props.pci_domain_id:08x}:{bus:02x}:{props.pci_device_id:02x}.0"
            handle = pynvml.nvmlDeviceGetHandleByPciBusId(pci)
        else:
            handle = pynvml.nvmlDeviceGetHandleByIndex(_index(device))
        return {
            "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "temperature_c": pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
            "source": "nvml",
        }
    except Exception:
        return None


def _nvidia_smi(device: torch.device) -> dict | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=clocks.sm,temperature.gpu", "--format=csv,noheader,nounits",
             "-i", str(_index(device))],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
        return parse_smi(out)
    except (OSError, subprocess.SubprocessError):
        return None


def parse_smi(text: str) -> dict | None:
    """``"1980, 45"`` (nvidia-smi's csv, no header or units) as a reading; ``None`` if not."""
    try:
        clock, temp = (field.strip() for field in text.strip().splitlines()[0].split(","))
        return {"sm_clock_mhz": int(float(clock)), "temperature_c": int(float(temp)),
                "source": "nvidia-smi"}  # fmt: skip
    except (ValueError, IndexError):
        return None


def _torch(device: torch.device) -> dict | None:
    reading: dict = {}
    for key, fn in (("sm_clock_mhz", "clock_rate"), ("temperature_c", "temperature")):
        try:
            reading[key] = getattr(torch.cuda, fn)(device)
        except Exception:
            pass
    return {**reading, "source": "torch.cuda"} if reading else None


def gpu_state(device: torch.device) -> dict | None:
    """``{"sm_clock_mhz", "temperature_c", "source"}`` now, or ``None`` (CPU, nothing answers)."""
    if device.type != "cuda":
        return None
    for read in (_pynvml, _nvidia_smi, _torch):
        reading = read(device)
        if reading:
            return reading
    return None
