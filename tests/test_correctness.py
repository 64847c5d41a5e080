"""Every CPU implementation against the float64 reference, forward and backward.

Implementations come from the registry (``cpu_impl`` is parametrized in conftest.py); the
tolerances are attnbench's own (:data:`attnbench.measure.accuracy.TOLERANCES`). The last tests
feed deliberately wrong implementations through the same check, to prove it can fail.
"""

from __future__ import annotations

import math

import pytest
import torch

from attnbench import Workload, get_impl, prepare
from attnbench.impls.chunked import chunked_attention
from attnbench.impls.eager import Eager
from attnbench.impls.math import math_attention
from attnbench.measure.accuracy import TOLERANCES, compare
from attnbench.measure.correctness import MAGNITUDES, check_pair, passes

from .conftest import CPU, REQUIRED_CPU_IMPLS


def W(b, hq, hkv, sq, skv, d, *, causal=True, dtype="fp32", scenario="prefill", dv=None):
    return Workload(
        b, hq, hkv, sq, skv, d, causal=causal, dtype=dtype, scenario=scenario, v_head_dim=dv
    )


FP32_WORKLOADS = [
    # MHA / GQA / MQA, causal and not, head_dim 32/64/128
    W(2, 4, 4, 64, 64, 64),
    W(1, 4, 4, 96, 96, 128, causal=False),
    W(2, 8, 2, 100, 100, 64),
    W(1, 8, 2, 100, 100, 64, causal=False),
    W(2, 4, 1, 33, 33, 32),
    W(1, 4, 1, 40, 60, 32, causal=False),
    # decode: one query row against a long cache
    W(2, 8, 2, 1, 2048, 64, scenario="decode"),
    W(2, 8, 1, 1, 2048, 128, scenario="decode"),
    W(1, 4, 4, 1, 2048, 64, causal=False, scenario="decode"),
    # odd lengths, q_len != kv_len (causal aligned bottom-right)
    W(1, 4, 4, 1, 1, 64),
    W(1, 4, 2, 17, 17, 32),
    W(1, 4, 2, 1000, 1000, 64),
    W(1, 4, 2, 17, 1000, 64),
    W(1, 4, 2, 1000, 17, 64, causal=False),
    W(1, 4, 4, 1, 17, 128),
    W(2, 4, 2, 2, 17, 64),
    W(1, 6, 3, 31, 47, 32),
]
ids = [w.name for w in FP32_WORKLOADS]


def _check(case, dtype: str) -> None:
    err = case.forward_error()
    assert err.within(dtype), (
        f"{case.label}: {err} outside the {dtype} tolerance {TOLERANCES[dtype]}"
    )


def test_required_implementations_are_discovered(cpu_impls):
    missing = set(REQUIRED_CPU_IMPLS) - set(cpu_impls)
    assert not missing, f"CPU implementations missing from the registry: {missing}"
    assert "reference" not in cpu_impls  # not a contender: it is what the others are judged by
    assert not {"sdpa-cudnn", "sdpa-efficient"} & set(cpu_impls)  # CUDA only


@pytest.mark.parametrize("workload", FP32_WORKLOADS, ids=ids)
def test_forward_matches_reference_fp32(cpu_impl, workload, seed):
    reasons = get_impl(cpu_impl).unsupported_reasons(workload, CPU)
    assert reasons == [], f"{cpu_impl} should run {workload.name} on the CPU: {reasons}"
    case = prepare(cpu_impl, workload, CPU, seed=seed)
    out = case.forward()
    assert out.shape == (workload.batch, workload.q_heads, workload.q_len, workload.dv)
    assert out.dtype == torch.float32
    _check(case, "fp32")


def test_forward_v_head_dim_differs(cpu_impl, seed):
    workload = W(1, 4, 2, 50, 70, 64, dv=32)
    reasons = get_impl(cpu_impl).unsupported_reasons(workload, CPU)
    if reasons:
        assert any("head_dim of V" in r for r in reasons), reasons
        pytest.skip(f"{cpu_impl}: {'; '.join(reasons)}")
    _check(prepare(cpu_impl, workload, CPU, seed=seed), "fp32")


def test_forward_sampled_check_of_a_large_workload(cpu_impl, seed):
    """B*Hq*Sq*Skv above FULL_CHECK_PAIRS: the error is taken on the bottom rows of KV head 0."""
    workload = W(1, 8, 2, 1500, 1500, 32)
    case = prepare(cpu_impl, workload, CPU, seed=seed)
    _check(case, "fp32")


@pytest.mark.parametrize("magnitude", [3.0, 10.0])
def test_forward_large_scores_stay_finite(cpu_impl, magnitude, seed):
    """Scores of std ~ magnitude² (exp(100) overflows fp32) need the max subtracted."""
    case = prepare(cpu_impl, W(1, 4, 2, 70, 130, 64), CPU, seed=seed, magnitude=magnitude)
    err = case.forward_error()
    rel, abs_ = TOLERANCES["fp32"]
    assert err.nonfinite == 0
    assert err.rel_norm <= rel, err
    assert err.max_abs <= abs_ * magnitude, err  # V (and the output) scale with the magnitude


def test_forward_accepts_non_contiguous_inputs(cpu_impl, seed):
    """Q/K/V as projections usually leave them: (B, S, H, D) memory viewed as (B, H, S, D)."""
    gen = torch.Generator().manual_seed(seed)
    b, hq, hkv, sq, skv, d = 2, 8, 2, 40, 56, 32
    q = torch.randn(b, sq, hq, d, generator=gen).transpose(1, 2)
    k = torch.randn(b, skv, hkv, d, generator=gen).transpose(1, 2)
    v = torch.randn(b, skv, hkv, d, generator=gen).transpose(1, 2)
    assert not q.is_contiguous()
    scale = 1 / math.sqrt(d)
    for causal in (True, False):
        out = get_impl(cpu_impl).forward(q, k, v, causal=causal, scale=scale)
        expected = get_impl("reference").forward(q, k, v, causal=causal, scale=scale)
        err = compare(out, expected)
        assert err.within("fp32"), (causal, err)


LOW_PRECISION = [
    W(2, 8, 2, 77, 130, 64),
    W(1, 4, 4, 64, 64, 128, causal=False),
    W(2, 8, 1, 1, 2048, 64, scenario="decode"),
]


@pytest.mark.parametrize("impl", ["eager", "sdpa", "chunked"])
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("base", LOW_PRECISION, ids=[w.name for w in LOW_PRECISION])
def test_forward_matches_reference_low_precision(impl, dtype, base, seed):
    workload = base.with_(dtype=dtype)
    assert get_impl(impl).unsupported_reasons(workload, CPU) == []
    case = prepare(impl, workload, CPU, seed=seed)
    assert case.forward().dtype == workload.torch_dtype
    _check(case, dtype)


TRAIN_WORKLOADS = [
    W(2, 4, 4, 64, 64, 64, scenario="train"),
    W(1, 8, 2, 37, 90, 32, scenario="train"),
    W(1, 4, 1, 50, 50, 64, causal=False, scenario="train"),
    W(1, 4, 2, 48, 48, 128, dtype="bf16", scenario="train"),
]


@pytest.mark.parametrize("workload", TRAIN_WORKLOADS, ids=[w.name for w in TRAIN_WORKLOADS])
def test_gradients_match_reference(cpu_impl, workload, seed):
    impl = get_impl(cpu_impl)
    if not impl.supports_backward:
        pytest.skip(f"{cpu_impl} has no backward pass")
    case = prepare(impl, workload, CPU, seed=seed, mode="forward_backward")
    errors = case.gradient_errors()
    assert set(errors) == {"dq", "dk", "dv"}
    bad = {n: e for n, e in errors.items() if not e.within(workload.dtype)}
    assert not bad, f"{case.label}: gradients outside the {workload.dtype} tolerance: {bad}"


# -- chunked: tile boundaries and the causal diagonal -----------------------------------------
@pytest.mark.parametrize(
    ("sq", "skv", "causal", "block_q", "block_kv", "hq", "hkv"),
    [
        (100, 130, True, 16, 32, 8, 2),  # GQA, diagonal offset 30, ragged last tiles
        (100, 130, False, 16, 32, 8, 2),
        (100, 100, True, 16, 32, 4, 4),  # diagonal through the tile corners
        (130, 130, True, 32, 16, 4, 1),  # MQA, block_q > block_kv
        (7, 300, True, 16, 32, 4, 2),  # one q tile, many kv tiles, all but the last unmasked
        (33, 40, True, 1, 7, 2, 1),  # one row per tile
        (64, 64, True, 64, 64, 2, 2),  # one tile exactly
    ],
)
def test_chunked_small_blocks(sq, skv, causal, block_q, block_kv, hq, hkv, seed):
    gen = torch.Generator().manual_seed(seed)
    b, d = 2, 32
    q = torch.randn(b, hq, sq, d, generator=gen)
    k = torch.randn(b, hkv, skv, d, generator=gen)
    v = torch.randn(b, hkv, skv, d, generator=gen)
    scale = 1 / math.sqrt(d)
    out = chunked_attention(q, k, v, causal=causal, scale=scale, block_q=block_q, block_kv=block_kv)
    expected = get_impl("reference").forward(q, k, v, causal=causal, scale=scale)
    err = compare(out, expected)
    assert err.within("fp32"), err


def test_chunked_small_blocks_gradients(seed):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(1, 8, 100, 32), (1, 2, 130, 32), (1, 2, 130, 32)]
    leaves = [torch.randn(*s, generator=gen).requires_grad_() for s in shapes]
    grad_out = torch.randn(1, 8, 100, 32, generator=gen)
    out = chunked_attention(*leaves, causal=True, scale=0.2, block_q=16, block_kv=32)
    actual = torch.autograd.grad(out, leaves, grad_out)
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    ref = math_attention(*ref_leaves, causal=True, scale=0.2)
    expected = torch.autograd.grad(ref, ref_leaves, grad_out.double())
    for name, a, e in zip("qkv", actual, expected, strict=True):
        err = compare(a, e)
        assert err.within("fp32"), (f"d{name}", err)


# -- the check itself can fail --------------------------------------------------------------
class NoCausalMask(Eager):
    name = "test-no-causal-mask"

    def forward(self, q, k, v, *, causal, scale):
        return math_attention(q, k, v, causal=False, scale=scale, softmax_dtype=torch.float32)


class SwappedKVHeads(Eager):
    name = "test-swapped-kv-heads"

    def forward(self, q, k, v, *, causal, scale):
        return super().forward(q, k.flip(1), v.flip(1), causal=causal, scale=scale)


class SlightlyWrongScale(Eager):
    name = "test-scale-off-by-0.1-percent"

    def forward(self, q, k, v, *, causal, scale):
        return super().forward(q, k, v, causal=causal, scale=scale * 1.001)


class OneNaN(Eager):
    name = "test-one-nan"

    def forward(self, q, k, v, *, causal, scale):
        out = super().forward(q, k, v, causal=causal, scale=scale).clone()
        out[0, 0, -1, 0] = float("nan")
        return out


class WrongGradQ(Eager):
    """Exact output, but dQ doubled: only the gradient check can catch it."""

    name = "test-wrong-dq"

    def forward(self, q, k, v, *, causal, scale):
        q2 = q.detach() + 2 * (q - q.detach())  # same values, twice the gradient
        return super().forward(q2, k, v, causal=causal, scale=scale)


@pytest.mark.parametrize(
    "wrong",
    [NoCausalMask(), SwappedKVHeads(), SlightlyWrongScale(), OneNaN()],
    ids=lambda i: i.name,
)
def test_wrong_implementation_fails_the_check(wrong, seed):
    workload = W(2, 8, 2, 40, 64, 64)  # GQA, causal with q_len != kv_len
    case = prepare(wrong, workload, CPU, seed=seed)
    err = case.forward_error()
    assert not err.within("fp32"), f"{wrong.name} passed the fp32 check: {err}"
    assert not err.within("bf16") or isinstance(wrong, SlightlyWrongScale)
    # the honest implementation on the very same inputs passes
    assert prepare("eager", workload, CPU, seed=seed).forward_error().within("fp32")


def test_wrong_gradient_fails_the_gradient_check(seed):
    workload = W(1, 4, 2, 32, 48, 32, scenario="train")
    case = prepare(WrongGradQ(), workload, CPU, seed=seed, mode="forward_backward")
    assert case.forward_error().within("fp32")
    errors = case.gradient_errors()
    assert not errors["dq"].within("fp32"), errors["dq"]
    assert errors["dk"].within("fp32") and errors["dv"].within("fp32"), errors


def test_eager_builds_its_masks_once_per_workload(monkeypatch, seed):
    """eager's bound call times the math alone: the masks are built in ``bind`` (a document
    mask built in the call copied its lengths from the host every time) and the answer is the
    one built per call; a subclass with its own ``forward`` is still bound through it."""
    from attnbench.masks import MaskSpec

    workload = Workload(1, 4, 2, 48, 48, 32, dtype="fp32", documents=3, alibi=True)
    case = prepare("eager", workload, CPU, seed=seed)
    q, k, v = case.inputs.q, case.inputs.k, case.inputs.v
    per_call = get_impl("eager").forward(q, k, v, causal=True, scale=workload.scale,
                                         mask=workload.mask)  # fmt: skip
    built = []
    for name in ("allowed", "bias"):
        real = getattr(MaskSpec, name)
        counted = lambda s, *a, _r=real, **kw: built.append(1) or _r(s, *a, **kw)  # noqa: E731
        monkeypatch.setattr(MaskSpec, name, counted)
    assert torch.equal(case.fn(q, k, v), per_call) and built == []
    plain = W(1, 4, 2, 48, 48, 32)
    honest, wrong = (prepare(i, plain, CPU) for i in ("eager", SlightlyWrongScale()))
    args = (honest.inputs.q, honest.inputs.k, honest.inputs.v)
    assert not torch.equal(wrong.fn(*args), honest.fn(*args))


# -- half precision at large q·k: scores must not be rounded to the input dtype ---------------
HALF_MAGNITUDE_WORKLOAD = W(1, 2, 2, 128, 128, 64)


@pytest.mark.parametrize(("dtype", "magnitude"), [("bf16", 30.0), ("fp16", 30.0), ("fp16", 100.0)])
def test_chunked_half_precision_at_large_magnitude(dtype, magnitude, seed):
    """Scores of std ~ magnitude²: rounded to bf16 before scaling they lost 8.7e-2 (bf16 x30),
    and fp16 x100 overflowed to NaN; in float32 chunked is as accurate as SDPA's kernels."""
    workload = HALF_MAGNITUDE_WORKLOAD.with_(dtype=dtype)
    err = prepare("chunked", workload, CPU, seed=seed, magnitude=magnitude).forward_error()
    sdpa = prepare("sdpa", workload, CPU, seed=seed, magnitude=magnitude).forward_error()
    assert err.nonfinite == 0, err
    assert passes(err, dtype, magnitude), err
    assert err.rel_norm <= max(4 * sdpa.rel_norm, 1e-3), (err, sdpa)


def test_check_covers_the_magnitude_where_half_precision_breaks():
    """At x30 eager's bf16 scores (rounded before the softmax) miss bf16's tolerance."""
    assert any(10 <= m <= 100 for m in MAGNITUDES), MAGNITUDES
    workload = HALF_MAGNITUDE_WORKLOAD.with_(dtype="bf16")
    err = prepare("eager", workload, CPU, magnitude=30.0).forward_error()
    assert not passes(err, "bf16", 30.0), err


def test_check_shows_eager_lossy_at_large_magnitude_never_ok():
    """eager stays the plain baseline: its half-precision loss is shown, not passed silently,
    and not a failure of the implementation (it declares that its scores are rounded)."""
    workload = HALF_MAGNITUDE_WORKLOAD.with_(dtype="bf16")
    status, notes = check_pair(get_impl("eager"), workload, CPU)
    assert status == "lossy", (status, notes)
    assert any(n.startswith("x30:") for n in notes), notes
    assert check_pair(get_impl("chunked"), workload, CPU) == ("ok", [])


def test_check_fails_an_undeclared_loss_at_large_magnitude():
    """An implementation that rounds its scores without declaring it fails the check."""

    class RoundsScores(Eager):
        name = "test-rounds-scores"
        rounds_scores = False

    status, notes = check_pair(RoundsScores(), HALF_MAGNITUDE_WORKLOAD.with_(dtype="bf16"), CPU)
    assert status == "FAIL" and any(n.startswith("x30:") for n in notes), (status, notes)
