"""Tile configurations of the in-house Triton kernels, chosen per shape from a table.

A table, not an autotuner: the choice is deterministic, costs no benchmarking at ``bind`` time,
and is recorded with each result (``Implementation.config``), so that a change of configuration
shows in history beside the change of speed. The entries for CUDA are tuned for the H100
(``tools/triton_bench.py`` times the alternatives; ``docs/triton-tuning.md`` logs each change).
On the CPU the kernels run under the Triton interpreter, where only correctness matters and
large tiles keep the number of interpreted steps small.

Until measured, the CUDA entries avoid what ``tools/triton_resources.py`` (sm_90 compile
without a GPU) shows to be costly: register spills, and shared memory beyond the H100's 227 KiB.

This module imports nothing beyond the standard library: it is safe to import anywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

HEAD_DIMS = (16, 32, 64, 128, 256)  # powers of two: tiles span the whole head dim


@dataclass(frozen=True)
class FwdConfig:
    """Forward: each program owns ``block_m`` query rows and walks K/V ``block_n`` at a time."""

    block_m: int
    block_n: int
    num_warps: int = 8
    num_stages: int = 3
    tma: bool = False  # load Q/K/V through tensor descriptors (TMA) where the inputs allow

    def as_dict(self) -> dict:
        return {"kernel": "fwd", **asdict(self)}


@dataclass(frozen=True)
class BwdConfig:
    """Backward: the dK/dV kernel owns ``block_n1`` keys and walks queries ``block_m1`` at a
    time; the dQ kernel owns ``block_m2`` queries and walks keys ``block_n2`` at a time."""

    block_m1: int
    block_n1: int
    block_m2: int
    block_n2: int
    num_warps: int = 8
    num_stages: int = 2

    def as_dict(self) -> dict:
        return {"kernel": "bwd", **asdict(self)}


@dataclass(frozen=True)
class DecodeConfig:
    """Split-KV decode: ``splits`` programs per (batch, KV head), each over ``block_n``-key
    tiles of its share of the cache; a second kernel combines the partial results."""

    block_n: int
    splits: int
    num_warps: int = 4
    num_stages: int = 3

    def as_dict(self) -> dict:
        return {"kernel": "decode", **asdict(self)}


# -- forward ------------------------------------------------------------------------------
_FWD_CUDA = {
    16: FwdConfig(128, 64, 4, 3),
    32: FwdConfig(128, 64, 4, 3),
    64: FwdConfig(128, 128, 8, 3),
    128: FwdConfig(128, 128, 8, 3, tma=True),  # H100 search: 515/457 vs 497/437 (128x64)
    256: FwdConfig(128, 64, 8, 2),
}
_FWD_CPU = FwdConfig(64, 64, 1, 1)  # interpreter: fewer, larger steps


def fwd_config(head_dim: int, device_type: str, *, causal: bool = False) -> FwdConfig:
    """The forward configuration for ``head_dim`` on ``device_type`` ("cuda" or "cpu")."""
    _check_head_dim(head_dim)
    if device_type != "cuda":
        return _FWD_CPU
    return _FWD_CUDA[head_dim]


# -- backward -----------------------------------------------------------------------------
_BWD_CUDA = {
    16: BwdConfig(64, 128, 128, 64, 4, 3),
    32: BwdConfig(64, 128, 128, 64, 4, 3),
    64: BwdConfig(64, 128, 128, 64, 8, 3),
    128: BwdConfig(64, 128, 128, 64, 8, 2),  # H100 search: 5.73 vs 6.34 ms fwd+bwd s4096
    256: BwdConfig(64, 64, 64, 64, 8, 2),
}
_BWD_CPU = BwdConfig(64, 64, 64, 64, 1, 1)


def bwd_config(head_dim: int, device_type: str, *, causal: bool = False) -> BwdConfig:
    _check_head_dim(head_dim)
    if device_type != "cuda":
        return _BWD_CPU
    return _BWD_CUDA[head_dim]


# -- decode -------------------------------------------------------------------------------
DECODE_PROGRAMS_PER_SM = 4  # enough programs in flight to keep HBM busy, few enough to combine
MIN_KEYS_PER_SPLIT = 256


def decode_config(
    batch: int,
    kv_heads: int,
    kv_len: int,
    head_dim: int,
    device_type: str,
    *,
    num_sms: int = 132,
) -> DecodeConfig:
    """Splits so that ``batch * kv_heads * splits`` fills the SMs a few times over, each split
    at least ``MIN_KEYS_PER_SPLIT`` keys (the combine step's cost stays negligible)."""
    _check_head_dim(head_dim)
    if device_type != "cuda":
        block_n = 64
        return DecodeConfig(block_n, splits_for(kv_len, block_n, 4), 1, 1)
    block_n = 64 if head_dim <= 128 else 32
    wanted = math.ceil(DECODE_PROGRAMS_PER_SM * num_sms / (batch * kv_heads))
    splits = max(1, min(wanted, kv_len // MIN_KEYS_PER_SPLIT))
    return DecodeConfig(block_n, splits_for(kv_len, block_n, splits), 4, 3)


def keys_per_split(kv_len: int, block_n: int, splits: int) -> int:
    """Keys each split covers: an equal share rounded up to whole tiles."""
    share = math.ceil(kv_len / max(1, splits))
    return math.ceil(share / block_n) * block_n


def splits_for(kv_len: int, block_n: int, splits: int) -> int:
    """How many splits actually have keys once shares are rounded up to whole tiles."""
    return math.ceil(kv_len / keys_per_split(kv_len, block_n, splits))


def _check_head_dim(head_dim: int) -> None:
    if head_dim not in HEAD_DIMS:
        raise ValueError(
            f"head_dim {head_dim} unsupported by the Triton kernels "
            f"(supported: {', '.join(map(str, HEAD_DIMS))})"
        )
