"""Configurations of the in-house Triton kernels, chosen per shape: one table, one chooser.

A chooser, not an autotuner: the choice is deterministic, costs no benchmarking at ``bind``
time, and is recorded with each result (``Implementation.config``), so that a change of
configuration shows in history beside the change of speed. The CUDA entries were measured on
an H100 (``tools/triton_bench.py`` times the alternatives, ``docs/triton-tuning.md`` logs each
change); ``tools/triton_resources.py`` (an sm_90 compile, no GPU needed) rules out entries that
spill or need more than the H100's 227 KiB of shared memory.

Under Triton's interpreter (CPU) the same chooser runs, so that the interpreter tests walk the
same paths (dense, general, packed, split) as the GPU.

This module imports nothing beyond the standard library: it is safe to import anywhere.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

MAX_HEAD_DIM = 256
#: the dense specialization's tiles span the whole head dim: powers of two only
DENSE_HEAD_DIMS = (16, 32, 64, 128, 256)


V4_KEYS = ("lookahead", "ws")
V5_KEYS = ("atomic_dq", "keys_first")


@dataclass(frozen=True)
class FwdConfig:
    """Forward: a program owns ``block_m`` query rows and walks K/V ``block_n`` at a time.

    ``dense``: use the dense specialization (causal or full, no window/documents/ALiBi, power-of-
    two head dims, one pass) where the workload allows it; else the general kernel runs.
    ``packed``: the GQA group's query heads share one block of rows (decode), K/V read once per
    KV head. ``num_splits``: key ranges, merged by the combine kernel. ``tma``: Q/K/V tiles
    through tensor descriptors (Hopper's TMA) where the inputs allow it.

    v4 options of the dense specialization's unmasked loop, off by default (off: the v3 kernel,
    and the recorded dict without these keys): ``lookahead``: the QK^T of the next key tile is
    issued before the softmax of this one (FlashAttention-3's intra-warpgroup overlap);
    ``ws``: Triton's automatic warp specialization of that loop (``tl.range(...,
    warp_specialize=True)``; tensor descriptors only, see :data:`FWD_VARIANTS`)."""

    block_m: int
    block_n: int
    num_warps: int = 8
    num_stages: int = 3
    tma: bool = False
    packed: bool = False
    num_splits: int = 1
    dense: bool = True
    lookahead: bool = False
    ws: bool = False

    def as_dict(self) -> dict:
        out = {"kernel": "fwd", **asdict(self)}
        for key in V4_KEYS:  # recorded only when set: v3 configurations read as before
            if not out[key]:
                del out[key]
        return out


@dataclass(frozen=True)
class BwdConfig:
    """Backward: the dK/dV kernel owns ``block_n1`` keys and walks queries ``block_m1`` at a
    time; the dQ kernel owns ``block_m2`` queries and walks keys ``block_n2`` at a time.

    ``keys_first`` (v5, **on by default**; H100-measured 1.03-1.21x the v3 order's backward,
    docs/triton-tuning.md): the dK/dV grid launches a head's key blocks side by side (grid
    ``(Skv / block_n1, B * Hkv)``) instead of one key block of every head (v3's ``(B * Hkv,
    Skv / block_n1)``), so the programs in flight share that head's Q, dO (and float32 dQ) in
    L2; the launch order only: without ``atomic_dq`` the results are bitwise those of the v3
    order.
    ``atomic_dq`` (v5 option, off by default): the dK/dV kernel also adds each query block's
    share of dQ into a float32 buffer with atomics and the dQ kernel does not run (5 matmuls
    per pair of blocks instead of 7; dQ is then not bitwise reproducible). Both are always
    recorded (:meth:`as_dict`), so that history shows the launch order of every result."""

    block_m1: int
    block_n1: int
    block_m2: int
    block_n2: int
    num_warps: int = 8
    num_stages: int = 2
    atomic_dq: bool = False
    keys_first: bool = True

    def as_dict(self) -> dict:
        # every field, the two v5 booleans included (records before v5 have neither key: they
        # ran the v3 order, ``keys_first`` False, without atomics)
        return {"kernel": "bwd", **asdict(self)}


def pow2(n: int, floor: int = 16) -> int:
    """The next power of two >= ``n``, at least ``floor`` (a tile's width)."""
    return max(floor, 1 << max(0, n - 1).bit_length())


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


# -- forward ------------------------------------------------------------------------------------
#: dense specialization, fp16/bf16, one pass: H100 search of the pre-merge triton-flash (v2),
#: S=4096 B=4 H=32: 515/457 TFLOP/s full/causal vs 497/437 with 128x64 (docs/triton-tuning.md)
DENSE_FWD = {128: FwdConfig(128, 128, 8, 3, tma=True)}

#: the forward variants of the dense specialization that ``tools/triton_bench.py --variants``
#: measures side by side (docs/triton-tuning.md, v4): each maps the chosen dense
#: configuration to the variant's; "v3" is the chooser's own choice. Measured on the H100, none
#: faster than v3 (docs/triton-tuning.md, v4): none is the default.
FWD_VARIANTS: dict[str, dict] = {
    "v3": {},
    # QK^T of tile j+1 in flight during the softmax of tile j (sm_90 compile, Triton 3.7.1,
    # D=128 bf16: 178 registers, no spill, 160 KiB shared memory; v3: 187/200, 225 KiB)
    "v4": {"lookahead": True, "block_n": 64, "num_stages": 3},
    "v4-s4": {"lookahead": True, "block_n": 64, "num_stages": 4},  # 192 KiB
    # 128-key tiles: a second 128x128 float32 score tile (250 registers); 3 stages need 288
    # KiB of shared memory, 2 stages 224 KiB (the H100 allows 227)
    "v4-128": {"lookahead": True, "num_stages": 2},
    # Triton's automatic warp specialization of the unmasked loop (on Hopper: Meta's autoWS
    # pass). Triton 3.7.1's sm_90 compile leaves this loop unspecialized (the v3 kernel) at 8
    # warps and fails at 4: kept to check Triton 3.6.0 on the H100, not expected to help
    "v4-ws": {"ws": True},
}
#: environment variable naming the variant the chooser applies to dense configurations
FWD_VARIANT_ENV = "ATTNBENCH_TRITON_FWD_VARIANT"


def fwd_variant(config: FwdConfig, variant: str | None) -> FwdConfig:
    """``config`` as the named variant of :data:`FWD_VARIANTS` (dense configurations only;
    others, and ``None``/"v3", come back unchanged)."""
    if not variant or variant == "v3" or not config.dense or config.packed:
        return config
    if variant not in FWD_VARIANTS:
        raise ValueError(f"unknown forward variant {variant!r}: one of {sorted(FWD_VARIANTS)}")
    changes = dict(FWD_VARIANTS[variant])
    if changes.get("ws") and not config.tma:
        changes["tma"] = True  # Hopper's autoWS crashes on pointer loads (triton#9728)
    return replace(config, **changes)


def env_fwd_variant() -> str | None:
    """The variant named by ``ATTNBENCH_TRITON_FWD_VARIANT`` (unset or empty: none)."""
    return os.environ.get(FWD_VARIANT_ENV) or None


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
    num_sms: int = 132,
    variant: str | None = None,
) -> FwdConfig:
    """Tiles, warps, stages, path, packing and key splits for one shape.

    ``causal``: the mask has a causal part or any feature beyond ALiBi (the key range of each
    row is cut); ``dense_mask``: no window, documents or ALiBi (causal or full only);
    ``variant``: a name of :data:`FWD_VARIANTS`, applied to the dense entry (default v3)."""
    group = q_heads // kv_heads
    dmax = max(pow2(head_dim), pow2(v_head_dim))
    wide = dmax * itemsize  # bytes of one row of a tile: what shared memory limits
    if q_len * group <= 128 and q_len <= 16:  # decode-like: pack the group, split the keys
        block_m = pow2(q_len * group)
        block_n = 64 if wide <= 256 else 32
        programs = batch * kv_heads
        # about one wave of programs while each split keeps >= 4096 keys (H100: kv65536 b8,
        # 2 splits 698 us vs 5 splits 747 us); shorter shares need more programs in flight to
        # keep memory busy (kv4096 b8: 2 splits 120 us, the old triton-decode's 8: 66 us)
        splits = max(1, round(num_sms / programs))
        if itemsize == 1:
            # fp8: a key carries half the bytes, so twice the keys per tile and twice the
            # programs keep as many bytes in flight. H200, b8 32/8 heads, kv16k / kv64k, us
            # (block_n/splits): 64/2 133/517 (no faster than bf16), 128/2 103/387, 64/4 93/353,
            # 128/4 83/313, 128/8 87/316 (python tools/fp8_check.py)
            block_n, splits = 2 * block_n, 2 * splits
        if kv_len < 4096 * splits:
            splits = max(splits, min(cdiv(kv_len, 512), cdiv(4 * num_sms, programs)))
        splits = min(splits, cdiv(kv_len, 256))
        return FwdConfig(block_m, block_n, 4, 3 if wide <= 256 else 2, False, True, splits, False)
    # dense specialization where it measured faster than the general kernel: D=128 fp16/bf16
    # (H100, B=4 H=32: 437-516 against 367-409 TFLOP/s). At D=64 and D=256 the general kernel
    # with its own tiles measured faster (gpt2-small d64 60 vs 152 us, gemma d256 663 vs 692 us)
    # (fp8, itemsize 1: the same tiles, half the shared memory, V transposed; H200 400-601
    # TFLOP/s, 0.89-1.20x bf16: docs/triton-tuning.md, v6)
    dense = DENSE_FWD.get(head_dim) if head_dim == v_head_dim and itemsize <= 2 else None
    programs = batch * q_heads * cdiv(q_len, 128)
    few = programs < num_sms and kv_len >= 4 * 256  # too few programs: split the keys
    if dense is not None and dense_mask and not few:
        return fwd_variant(dense, variant)
    # general kernel. H100 searches (--tune), against the previous choice: d64 fp16 s1024 causal
    # 2.2x (4 warps on 128 rows spilled); d128 s8192 causal 1.10x, d128 s4096 full 1.09x;
    # d256 s4096 causal 1.47x
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
#: backward variants that ``tools/triton_bench.py --bwd-variants`` measures beside the default
#: (docs/triton-tuning.md, v5): each maps the chosen configuration to the variant's; "v5" is
#: the chooser's own (deterministic) choice, v3's kernels with a head's key blocks launched
#: first. H100-measured (2026-11-25, bwd TFLOP/s against the v3 order, D=128 bf16 B=4 H=32):
#: v3-kf (now the default) 1.03-1.21x, atomic-kf 1.06-1.25x, atomic 0.74-0.86x, atomic-kf-m32
#: 0.81-0.97x, atomic-kf-n64 0.57-0.68x. Each entry names ``keys_first`` explicitly, so that a
#: name keeps meaning the configuration that was measured under it. Tile changes apply to
#: fp16/bf16 with head dims up to 128 only (elsewhere only the options).
BWD_VARIANTS: dict[str, dict] = {
    "v5": {},  # the default (the chooser's choice): = "v3-kf"
    # the launch order before v5: one key block of every head in flight (re-measurable)
    "v3": {"keys_first": False},
    # dQ by float32 atomics in the dK/dV kernel, the default's tiles and v3's launch order (one
    # key block of every head in flight: the dQ tiles of ~132 heads, far more than L2 holds).
    # sm_90 compile, Triton 3.7.1, D=128 bf16 (docs/triton-tuning.md, v5): 64x128 w8 s3, 255
    # registers, 72-88 bytes of spill (v3's dK/dV: 16-40), 193 KiB shared memory
    "atomic": {"atomic_dq": True, "keys_first": False},
    # the same, a head's key blocks side by side: its Q, dO and float32 dQ tiles stay in L2
    # (measured fastest, +1-6 % over v5, but dQ is not bitwise reproducible: opt-in only)
    "atomic-kf": {"atomic_dq": True, "keys_first": True},
    # ... 32 query rows per step: 244-248 registers, no spill, 136 KiB; twice the steps
    "atomic-kf-m32": {"atomic_dq": True, "keys_first": True, "block_m1": 32, "num_stages": 2},
    # ... 64 keys per program: no spill, 129 KiB, but twice the dQ atomics per FLOP
    "atomic-kf-n64": {"atomic_dq": True, "keys_first": True, "block_n1": 64, "num_stages": 2},
    # the launch order alone, deterministic (the v3 kernels otherwise): the name under which
    # the v5 default was measured; now the same configuration as "v5"
    "v3-kf": {"keys_first": True},
    # (128 query rows per step, 128x128 w8 s2: 704-768 bytes of spill and 257 KiB of shared
    # memory, over the H100's 227: not a variant)
}
#: the name of the chooser's own backward choice in :data:`BWD_VARIANTS`
BWD_DEFAULT = "v5"
#: environment variable naming the backward variant the chooser applies
BWD_VARIANT_ENV = "ATTNBENCH_TRITON_BWD_VARIANT"


def bwd_variant(config: BwdConfig, variant: str | None, *, tiles: bool = True) -> BwdConfig:
    """``config`` as the named variant of :data:`BWD_VARIANTS` (``None``/"v5": unchanged);
    ``tiles=False`` applies only ``atomic_dq``/``keys_first``, keeping the chooser's tiles
    (the variants' tiles were compiled for fp16/bf16 head dims up to 128 only)."""
    if not variant or variant == BWD_DEFAULT:
        return config
    if variant not in BWD_VARIANTS:
        raise ValueError(f"unknown backward variant {variant!r}: one of {sorted(BWD_VARIANTS)}")
    changes = dict(BWD_VARIANTS[variant])
    if not tiles:
        changes = {k: v for k, v in changes.items() if k in V5_KEYS}
    return replace(config, **changes)


def env_bwd_variant() -> str | None:
    """The variant named by ``ATTNBENCH_TRITON_BWD_VARIANT`` (unset or empty: none)."""
    return os.environ.get(BWD_VARIANT_ENV) or None


def choose_bwd_config(
    head_dim: int, v_head_dim: int, itemsize: int = 2, *, variant: str | None = None
) -> BwdConfig:
    """The backward's tiles (by default the deterministic kernels, no atomics, a head's key
    blocks launched first: v5); ``variant``: a name of :data:`BWD_VARIANTS` (default v5; "v3":
    the launch order before v5)."""
    dmax = max(pow2(head_dim), pow2(v_head_dim))
    if itemsize > 2:
        cfg = BwdConfig(32, 64, 64, 32, 4, 1) if dmax <= 128 else BwdConfig(16, 32, 32, 16, 4, 1)
    elif dmax <= 64:
        cfg = BwdConfig(64, 128, 128, 64, 8, 3)
    elif dmax <= 128:  # H100, s8192 causal: 1.29x over (64, 64, 64, 64, 4 warps, 2 stages)
        cfg = BwdConfig(64, 128, 128, 64, 8, 3)
    else:
        cfg = BwdConfig(32, 64, 64, 32, 8, 1)
    return bwd_variant(cfg, variant, tiles=itemsize <= 2 and dmax <= 128)


# -- decode -------------------------------------------------------------------------------------
def decode_dict(config: FwdConfig) -> dict:
    """A decode configuration as recorded: the split count at the top (asv's
    ``track_kernel_config`` reads ``splits`` where there is no ``block_m``)."""
    return {
        "kernel": "decode",
        "block_n": config.block_n,
        "splits": config.num_splits,
        "num_warps": config.num_warps,
        "num_stages": config.num_stages,
        "rows": config.block_m,  # the packed group's query rows per program
    }


def keys_per_split(kv_len: int, block_n: int, splits: int) -> int:
    """Keys each split covers: an equal share rounded up to whole tiles."""
    return cdiv(cdiv(kv_len, max(1, splits)), block_n) * block_n


def splits_for(kv_len: int, block_n: int, splits: int) -> int:
    """How many splits actually have keys once shares are rounded up to whole tiles."""
    return cdiv(kv_len, keys_per_split(kv_len, block_n, splits))


def check_head_dims(head_dim: int, v_head_dim: int) -> None:
    for d in (head_dim, v_head_dim):
        if not 1 <= d <= MAX_HEAD_DIM:
            raise ValueError(f"head_dim {d} unsupported by the Triton kernels (1..{MAX_HEAD_DIM})")


__all__ = [
    "BWD_DEFAULT",
    "BWD_VARIANTS",
    "BWD_VARIANT_ENV",
    "DENSE_FWD",
    "DENSE_HEAD_DIMS",
    "FWD_VARIANTS",
    "FWD_VARIANT_ENV",
    "MAX_HEAD_DIM",
    "BwdConfig",
    "FwdConfig",
    "bwd_variant",
    "choose_bwd_config",
    "choose_fwd_config",
    "decode_dict",
    "env_bwd_variant",
    "env_fwd_variant",
    "fwd_variant",
    "keys_per_split",
    "splits_for",
]
