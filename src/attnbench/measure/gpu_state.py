"""The GPU's SM clock, temperature and compute processes at a moment: what a figure was
measured under.

Read through NVML (``pynvml``, from nvidia-ml-py) when importable, else ``nvidia-smi``, else
``torch.cuda.clock_rate``/``temperature`` where present; ``None`` on the CPU or when nothing
answers. Readings are cheap enough to take at the start and end of each benchmark.

``clock_limits`` (NVML only) names what holds the SM clock below its maximum at that moment:
``sw_power_cap`` (the board's power limit), ``sw_thermal``/``hw_thermal``, ``hw_slowdown``,
``hw_power_brake``; the end reading, taken right after the samples, says why a clock fell.

``compute_processes`` counts the processes holding a CUDA context on the GPU, this one
included: above 1, another program shared the GPU while the figure was taken (a shared runner,
a job left running), which slows a kernel without any sign in its own samples. NVML and
``nvidia-smi`` list them; ``torch.cuda`` cannot, and its readings leave the key out.
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
        reading = {
            "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "temperature_c": pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
            "source": "nvml",
        }
    except Exception:
        return None
    try:
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        reading["compute_processes"] = len(procs)
        reading["process_mib"] = [_mib(p.usedGpuMemory) for p in procs]
    except Exception:  # an old driver or a restricted container: clock and temperature only
        pass
    reasons = _clock_limits(pynvml, handle)
    if reasons is not None:
        reading["clock_limits"] = reasons
    return reading


#: NVML's clock event ("throttle") reason bits: why the SM clock is below its maximum
CLOCK_LIMITS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
    0x2: "applications_clocks",
    0x10: "sync_boost",
}


def clock_limit_names(mask: int) -> list[str]:
    """The named reasons set in an NVML clock-event mask (idle and display bits left out)."""
    return [name for bit, name in CLOCK_LIMITS.items() if mask & bit]


def _clock_limits(pynvml, handle) -> list[str] | None:
    """What holds the SM clock down now (``[]``: nothing), ``None`` if NVML cannot say."""
    for name in ("EventReasons", "ThrottleReasons"):  # NVML 12.2+, then the older name
        try:
            return clock_limit_names(getattr(pynvml, f"nvmlDeviceGetCurrentClocks{name}")(handle))
        except Exception:
            continue
    return None


def _mib(used_bytes: int | None) -> int | None:
    return None if used_bytes is None else used_bytes // 2**20


def _smi(query: str, device: torch.device) -> str:
    return subprocess.run(
        ["nvidia-smi", query, "--format=csv,noheader,nounits", "-i", str(_index(device))],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip


def _nvidia_smi(device: torch.device) -> dict | None:
    try:
        reading = parse_smi(_smi("--query-gpu=clocks.sm,temperature.gpu", device))
    except (OSError, subprocess.SubprocessError):
        return None
    if reading:
        try:
            reading.update(parse_smi_apps(_smi("--query-compute-apps=pid,used_memory", device)))
        except (OSError, subprocess.SubprocessError):
            pass
    return reading


def parse_smi(text: str) -> dict | None:
    """``"1980, 45"`` (nvidia-smi's csv, no header or units) as a reading; ``None`` if not."""
    try:
        clock, temp = (field.strip() for field in text.strip().splitlines()[0].split(","))
        return {"sm_clock_mhz": int(float(clock)), "temperature_c": int(float(temp)),
                "source": "nvidia-smi"}  # fmt: skip
    except (ValueError, IndexError):
        return None


def parse_smi_apps(text: str) -> dict:
    """``"1234, 5120"`` lines (nvidia-smi's compute apps: pid, MiB) as ``compute_processes``
    and ``process_mib``; ``{}`` when a line is not of that form."""
    mib: list[int | None] = []
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        try:
            pid, used = (field.strip() for field in line.split(","))
        except ValueError:
            return {}
        if not pid.isdigit():
            return {}
        mib.append(int(used) if used.isdigit() else None)  # "[N/A]" in some containers
    return {"compute_processes": len(mib), "process_mib": mib}


def shared_with_others(reading: dict | None) -> bool:
    """Whether a reading saw processes besides this one on the GPU."""
    return bool(reading) and reading.get("compute_processes", 0) > 1


def _torch(device: torch.device) -> dict | None:
    reading: dict = {}
    for key, fn in (("sm_clock_mhz", "clock_rate"), ("temperature_c", "temperature")):
        try:
            reading[key] = getattr(torch.cuda, fn)(device)
        except Exception:
            pass
    return {**reading, "source": "torch.cuda"} if reading else None


def gpu_state(device: torch.device) -> dict | None:
    """``{"sm_clock_mhz", "temperature_c", "source"}`` and, where NVML or nvidia-smi answer,
    ``"compute_processes"``/``"process_mib"``, now; ``None`` on the CPU or if nothing answers."""
    if device.type != "cuda":
        return None
    for read in (_pynvml, _nvidia_smi, _torch):
        reading = read(device)
        if reading:
            return reading
    return None
