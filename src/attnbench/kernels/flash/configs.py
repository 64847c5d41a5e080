"""Configurations of the in-house Triton kernels, chosen per shape: one table, one chooser.

A chooser, not an autotuner: the choice is deterministic, costs no benchmarking at ``bind``
time, and is recorded with each result (``Implementation.config``), so that a change of
configuration shows in history beside the change of speed. Each entry was measured against its
alternatives on a GPU (``lab/triton_bench.py``; why each rule is what it is: lab/NOTEBOOK.md).
Under Triton's interpreter (CPU) the same chooser runs, so that the interpreter tests walk the
same paths (dense, general, packed, split) as the GPU.

This module imports nothing beyond the standard library at import time: safe to import
anywhere. :data:`VARIANTS` names the experimental configurations that are registered as
implementations of their own (``triton-flash-<name>``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

MAX_HEAD_DIM = 256
#: SMs assumed off a GPU (Triton's interpreter): an H100's, so that the CPU walks its paths
INTERPRETER_SMS = 132


@dataclass(frozen=True)
class FwdConfig:
    """Forward: a program owns ``block_m`` query rows and walks K/V ``block_n`` at a time.

    ``dense``: use the dense specialization (causal or full, no window/documents/ALiBi, power-of-
    two head dims, one pass) where the workload allows it; else the general kernel runs.
    ``packed``: the GQA group's query heads share one block of rows (decode), K/V read once per
    KV head. ``num_splits``: key ranges, merged by the combine kernel, or with
    ``fused_combine`` by the split that finishes last (one launch). ``tma``: Q/K/V tiles
    through tensor descriptors (Hopper's TMA) where the inputs allow it."""

    block_m: int
    block_n: int
    num_warps: int = 8
    num_stages: int = 3
    tma: bool = False
    packed: bool = False
    num_splits: int = 1
    dense: bool = True
    fused_combine: bool = False

    def as_dict(self) -> dict:
        return {"kernel": "fwd", **asdict(self)}


@dataclass(frozen=True)
class BwdConfig:
    """Backward: the dK/dV kernel owns ``block_n1`` keys and walks queries ``block_m1`` at a
    time; the dQ kernel owns ``block_m2`` queries and walks keys ``block_n2`` at a time.

    ``keys_first``: the dK/dV grid launches a head's key blocks side by side, so the programs
    in flight share that head's Q and dO in L2 (the launch order only: the results are bitwise
    those of the other order). ``atomic_dq``: the dK/dV kernel also adds each query block's
    share of dQ into a float32 buffer with atomics and the dQ kernel does not run (dQ is then
    not bitwise reproducible). Both are always recorded, so history shows each result's."""

    block_m1: int
    block_n1: int
    block_m2: int
    block_n2: int
    num_warps: int = 8
    num_stages: int = 2
    atomic_dq: bool = False
    keys_first: bool = True

    def as_dict(self) -> dict:
        return {"kernel": "bwd", **asdict(self)}


def pow2(n: int, floor: int = 16) -> int:
    """The next power of two >= ``n``, at least ``floor`` (a tile's width)."""
    return max(floor, 1 << max(0, n - 1).bit_length())


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def num_sms(device: Any) -> int:
    """The streaming multiprocessors of a CUDA ``device``; :data:`INTERPRETER_SMS` elsewhere."""
    import torch  # here, not at the top: this module stays importable without torch

    device = torch.device(device)
    if device.type != "cuda":
        return INTERPRETER_SMS
    return torch.cuda.get_device_properties(device).multi_processor_count


def keys_per_split(kv_len: int, block_n: int, splits: int) -> int:
    """Keys each split covers: an equal share rounded up to whole tiles."""
    return cdiv(cdiv(kv_len, max(1, splits)), block_n) * block_n


def splits_for(kv_len: int, block_n: int, splits: int) -> int:
    """How many splits actually have keys once shares are rounded up to whole tiles."""
    return cdiv(kv_len, keys_per_split(kv_len, block_n, splits))


# -- forward ------------------------------------------------------------------------------------
#: the dense specialization's measured entries (head dim -> tiles), fp16/bf16/fp8, one pass
DENSE_FWD = {128: FwdConfig(128, 128, 8, 3, tma=True)}


def choose_fwd_config(
    batch: int,
    q_heads: int,
    kv_heads: int,
    q_len: int,
    kv_len: int,
    head_dim: int,
    v_head_dim: int,
    *,
    itemsize: int = 2,
    causal: bool = True,
    dense_mask: bool = True,
    num_sms: int = INTERPRETER_SMS,
) -> FwdConfig:
    """Tiles, warps, stages, path, packing and key splits for one shape.

    ``causal``: the mask has a causal part or any feature beyond ALiBi (the key range of each
    row is cut); ``dense_mask``: no window, documents or ALiBi (causal or full only)."""
    group = q_heads // kv_heads
    dmax = max(pow2(head_dim), pow2(v_head_dim))
    wide = dmax * itemsize  # bytes of one row of a tile: what shared memory limits
    if q_len * group <= 128 and q_len <= 16:  # decode-like: pack the group, split the keys
        block_m = pow2(q_len * group)
        block_n = 64 if wide <= 256 else 32
        programs = batch * kv_heads
        # about one wave of programs while each split keeps >= 4096 keys
        splits = max(1, round(num_sms / programs))
        if itemsize == 1:  # fp8: twice the keys per tile and the programs keep bf16's bytes
            block_n, splits = 2 * block_n, 2 * splits
        if kv_len < 4096 * splits:  # short shares need more programs in flight
            splits = max(splits, min(cdiv(kv_len, 512), cdiv(4 * num_sms, programs)))
        splits = min(splits, cdiv(kv_len, 256))
        # the split finishing last merges (one launch): H200, 1.23x the best two-launch
        # configuration at a 4096-key cache, 1.01x at 16384 (lab/NOTEBOOK.md)
        stages = 3 if wide <= 256 else 2
        return FwdConfig(block_m, block_n, 4, stages, False, True, splits, False, splits > 1)
    # the dense specialization only where it measured faster than the general kernel
    dense = DENSE_FWD.get(head_dim) if head_dim == v_head_dim and itemsize <= 2 else None
    programs = batch * q_heads * cdiv(q_len, 128)
    few = programs < num_sms and kv_len >= 4 * 256  # too few programs: split the keys
    if dense is not None and dense_mask and not few:
        return dense
    if itemsize > 2:  # float32: half the tile rows fit
        block_m, block_n, warps, stages = (64, 32, 4, 2) if dmax <= 128 else (32, 32, 4, 1)
    elif dmax <= 64:
        block_m, block_n, warps, stages = 128, 64, 8, 4
    elif dmax <= 128:
        block_m, block_n, warps, stages = (128, 32, 4, 4) if causal else (128, 64, 8, 3)
    else:
        block_m, block_n, warps, stages = 128, 32, 8, 3
    programs = batch * q_heads * cdiv(q_len, block_m)
    splits = 1
    if programs < num_sms and kv_len >= 4 * 256:
        splits = max(1, min(cdiv(2 * num_sms, programs), cdiv(kv_len, 512)))
    return FwdConfig(block_m, block_n, warps, stages, False, False, splits, False)


# -- backward -----------------------------------------------------------------------------------
def choose_bwd_config(head_dim: int, v_head_dim: int, itemsize: int = 2) -> BwdConfig:
    """The backward's tiles: the deterministic kernels (no atomics), a head's key blocks
    launched first."""
    dmax = max(pow2(head_dim), pow2(v_head_dim))
    if itemsize > 2:
        return BwdConfig(32, 64, 64, 32, 4, 1) if dmax <= 128 else BwdConfig(16, 32, 32, 16, 4, 1)
    if dmax <= 128:
        return BwdConfig(64, 128, 128, 64, 8, 3)
    return BwdConfig(64, 32, 64, 32, 8, 2)  # spill-free at D=256; H200: 1.39x (32,64,64,32,8,1)


# -- decode -------------------------------------------------------------------------------------
def decode_dict(config: FwdConfig) -> dict:
    """A decode configuration as recorded: the split count at the top, where a forward tile
    has ``block_m``."""
    return {
        "kernel": "decode",
        "block_n": config.block_n,
        "splits": config.num_splits,
        "num_warps": config.num_warps,
        "num_stages": config.num_stages,
        "rows": config.block_m,  # the packed group's query rows per program
        "fused_combine": config.fused_combine,
    }


# -- named variants -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """An experimental configuration of ``triton-flash``, benchmarked under its own name:
    ``bwd`` sets these :class:`BwdConfig` fields over the chooser's choice (every shape)."""

    description: str
    bwd: dict[str, Any] = field(default_factory=dict)

    def bwd_config(self, config: BwdConfig) -> BwdConfig:
        return replace(config, **self.bwd)


#: ``triton-flash-<name>``: experimental variants worth tracking beside the default
VARIANTS: dict[str, Variant] = {
    "atomic-dq": Variant(
        "triton-flash with dQ added by float32 atomics in the dK/dV kernel (no dQ kernel; dQ "
        "not bitwise reproducible)",
        bwd={"atomic_dq": True},
    ),
}


__all__ = [
    "DENSE_FWD",
    "INTERPRETER_SMS",
    "MAX_HEAD_DIM",
    "VARIANTS",
    "BwdConfig",
    "FwdConfig",
    "Variant",
    "choose_bwd_config",
    "choose_fwd_config",
    "decode_dict",
    "keys_per_split",
    "num_sms",
    "splits_for",
]
