"""In-house attention in pure PyTorch: online softmax over tiles, memory linear in length.

Queries are processed ``block_q`` rows at a time and keys/values ``block_kv`` columns at a
time, keeping a running row maximum, row sum and output accumulator (float32) as
FlashAttention does; the full score matrix never exists. Tiles above the causal diagonal are
skipped. GQA groups query heads onto their KV head without copying K or V.

Both products are taken in float32 from the input values (a product of two fp16 or bf16
numbers is exact in float32), so, as in a fused kernel's float32 accumulators, no score is
rounded to the input dtype before scaling and softmax: rounded, bf16 scores lose a few
percent once q·k is large, and fp16 ones overflow.
"""

from __future__ import annotations

import torch

from ..masks import causal_mask, causal_offset
from .base import NO_FP8_IN_TORCH, Implementation
from .registry import register


def chunked_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool,
    scale: float,
    block_q: int = 512,
    block_kv: int = 512,
) -> torch.Tensor:
    b, hq, sq, d = q.shape
    hkv, skv, dv = k.shape[1], k.shape[2], v.shape[-1]
    g = hq // hkv
    offset = causal_offset(sq, skv)
    qg = q.view(b, hkv, g, sq, d)
    out = torch.empty(b, hkv, g, sq, dv, dtype=q.dtype, device=q.device)
    for qs in range(0, sq, block_q):
        qe = min(qs + block_q, sq)
        rows = qe - qs
        q_tile = qg[:, :, :, qs:qe].reshape(b, hkv, g * rows, d).float()
        row_max = torch.full((b, hkv, g * rows, 1), float("-inf"), device=q.device)
        row_sum = torch.zeros((b, hkv, g * rows, 1), device=q.device)
        acc = torch.zeros((b, hkv, g * rows, dv), device=q.device)
        kv_end = min(skv, qe + offset) if causal else skv  # last row of the tile sees < this
        for ks in range(0, kv_end, block_kv):
            ke = min(ks + block_kv, kv_end)
            scores = torch.matmul(q_tile, k[:, :, ks:ke].transpose(-1, -2).float()) * scale
            if causal and ke - 1 > qs + offset:  # tile crosses the diagonal
                allowed = causal_mask(rows, ke - ks, q.device, q_start=qs + offset, kv_start=ks)
                scores = scores.view(b, hkv, g, rows, ke - ks).masked_fill(~allowed, float("-inf"))
                scores = scores.view(b, hkv, g * rows, ke - ks)
            new_max = torch.maximum(row_max, scores.amax(dim=-1, keepdim=True))
            correction = torch.exp(row_max - new_max)
            probs = torch.exp(scores - new_max)
            row_sum = row_sum * correction + probs.sum(dim=-1, keepdim=True)
            acc = acc * correction + torch.matmul(probs, v[:, :, ks:ke].float())
            row_max = new_max
        out[:, :, :, qs:qe] = (acc / row_sum).view(b, hkv, g, rows, dv).to(q.dtype)
    return out.view(b, hq, sq, dv)


@register
class Chunked(Implementation):
    name = "chunked"
    dtype_notes = {"fp8": NO_FP8_IN_TORCH}
    family = "in-house"
    description = "in-house pure-PyTorch online-softmax attention, tiled; memory linear in length"
    nightly_only = True  # on a GPU: a loop of PyTorch matmuls (each commit's CPU run has it)

    def forward(self, q, k, v, *, causal, scale, mask=None):
        return chunked_attention(q, k, v, causal=causal, scale=scale)
