"""Spec-sheet peak rates of known GPUs, and the check that no derived rate exceeds them.

Dense (no sparsity) tensor-core rates for fp16/bf16 and fp8 (half the data sheets' "with
sparsity" figures); fp32 is the non-tensor-core rate that
PyTorch's default fp32 matmul (TF32 off) can reach. Bandwidth is HBM bandwidth. Sources: NVIDIA's
data sheets of each card (SXM form factor unless the name says PCIe).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    tflops: float  # dense, for the dtype asked
    tbps: float  # memory bandwidth, TB/s
    source: str


#: (substring of torch.cuda.get_device_name(), {dtype: TFLOP/s}, TB/s); first match wins
_CARDS: list[tuple[str, dict[str, float], float]] = [
    ("B200", {"fp16": 2250.0, "bf16": 2250.0, "fp8": 4500.0, "fp32": 80.0}, 8.0),
    ("H200", {"fp16": 989.4, "bf16": 989.4, "fp8": 1978.9, "fp32": 66.9}, 4.8),
    ("H100 PCIe", {"fp16": 756.0, "bf16": 756.0, "fp8": 1513.0, "fp32": 51.2}, 2.0),
    ("H100 NVL", {"fp16": 835.5, "bf16": 835.5, "fp8": 1670.5, "fp32": 60.0}, 3.9),
    ("H100", {"fp16": 989.4, "bf16": 989.4, "fp8": 1978.9, "fp32": 66.9}, 3.35),
    ("A100-SXM4-40GB", {"fp16": 312.0, "bf16": 312.0, "fp32": 19.5}, 1.555),
    ("A100-PCIE-40GB", {"fp16": 312.0, "bf16": 312.0, "fp32": 19.5}, 1.555),
    ("A100", {"fp16": 312.0, "bf16": 312.0, "fp32": 19.5}, 2.039),
]


def peak_for(device_name: str, dtype: str) -> Peak | None:
    """The card's peak for ``dtype`` (``fp16``/``bf16``/``fp8``/``fp32``), or ``None`` if
    unknown (A100s have no fp8 tensor cores: no fp8 entry)."""
    for key, rates, tbps in _CARDS:
        if key.lower() in device_name.lower() and dtype in rates:
            return Peak(rates[dtype], tbps, f"{key} data sheet")
    return None


class ImplausibleRateError(ValueError):
    """A derived rate above the card's peak: the timing or the work count is wrong."""


def check_plausible(
    device_name: str, dtype: str, tflops: float | None, gbps: float | None, slack: float = 1.02
) -> str | None:
    """Raise :class:`ImplausibleRateError` if a rate exceeds the card's peak (times ``slack``);
    return a note when the card is unknown (nothing checked), else ``None``."""
    peak = peak_for(device_name, dtype)
    if peak is None:
        return f"no peak known for {device_name!r} ({dtype}): rates not checked"
    if tflops is not None and tflops > peak.tflops * slack:
        raise ImplausibleRateError(
            f"{tflops:.1f} TFLOP/s exceeds the {device_name} {dtype} peak of {peak.tflops} "
            f"({peak.source}): timing or FLOP count is wrong"
        )
    if gbps is not None and gbps > peak.tbps * 1000 * slack:
        raise ImplausibleRateError(
            f"{gbps:.0f} GB/s exceeds the {device_name} bandwidth of {peak.tbps} TB/s "
            f"({peak.source}): timing or byte count is wrong"
        )
    return None
