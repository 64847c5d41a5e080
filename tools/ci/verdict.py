"""The gate's verdict on one figure, from both sides' samples and measured noise.

Each asv figure is of one kind, which decides how it is judged:

- ``time``: a measured time (``track_seconds``, asv's ``time_*``). Judged from samples: the
  ratio of medians must exceed the smallest effect the gate looks for (``--factor``) and the
  figure's own noise (how far its batch medians moved while it was sampled), and the two
  sides' samples must differ (Mann-Whitney U, asv's implementation). A time flagged this way is
  a *candidate*: the gate re-measures it before it fails a job (as it re-measures an ``unsure``
  one, beyond the factor but too noisy to tell).
- ``derived``: computed from the pair's time (TFLOP/s, GB/s, tokens/s, speedup vs eager): it
  follows the verdict of the time it was computed from, never the ratio of two noisy numbers.
- ``memory``: bytes: a rise beyond ``--memory-factor`` (GPU bytes allocated, exact for a code
  path) or :data:`RSS_FACTOR` (host peak RSS, which moves by itself).
- ``error``: forward error against the float64 reference: a regression only when head exceeds
  the dtype's tolerance and base did not.
- ``first-call``: bind + compile seconds: a cache hit on one side and a miss on the other is
  common, so a change is reported in its own section and never fails the gate.
- ``info``: anything else: shown, never judged.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

#: p-value under which two sides' samples are taken as different (asv's own default)
P_THRESHOLD = 0.002
#: a first call this many times slower (and by a second at least) is reported
FIRST_CALL_FACTOR = 3.0
FIRST_CALL_MIN_SECONDS = 1.0
#: host peak RSS (asv's ``peakmem_*``) moves by itself: 277 -> 309 MB (1.12x) for unchanged
#: code in a 2-core machine's gate trial; GPU bytes allocated are exact and keep --memory-factor
RSS_FACTOR = 1.25

FAILING = ("regression", "failed")
GOOD = ("improvement", "fixed")


@dataclass(frozen=True)
class Side:
    """One commit's measurement of one figure."""

    value: float | None  # None: the benchmark failed; NaN: skipped (n/a)
    samples: tuple[float, ...] | None = None
    noise: float = 0.0  # relative drift of the figure while it was sampled
    caution: str = ""  # why the record itself is not trusted ("not steady", shared GPU)

    @property
    def measured(self) -> bool:
        return self.value is not None and not math.isnan(self.value)


@dataclass(frozen=True)
class Judgement:
    verdict: str  # regression, improvement, unsure, unchanged, failed, fixed, gone, new, n/a
    why: str = ""


def kind_of(benchmark: str) -> str:
    """The kind of an asv benchmark (``module.Class.method``), by its method's name."""
    method = benchmark.rsplit(".", 1)[-1]
    if method == "track_seconds" or method.startswith("time_"):
        return "time"
    if method in ("track_tflops", "track_gbps", "track_tokens_per_s", "track_speedup_vs_eager"):
        return "derived"
    if method.startswith("peakmem_") or method.endswith("_memory"):
        return "memory"
    if method in ("track_max_error", "track_rel_error"):
        return "error"
    if method == "track_compile_seconds":
        return "first-call"
    return "info"


def drift(samples: list[float] | tuple[float, ...]) -> float:
    """Relative gap between the medians of the first and second half of samples in the order
    taken (asv's rounds come one after the other): the drift while they were taken."""
    half = len(samples) // 2
    if half == 0:
        return 0.0
    a, b = statistics.median(samples[:half]), statistics.median(samples[half:])
    mid = statistics.median(samples)
    return abs(b - a) / mid if mid else 0.0


def presence(base: Side | None, head: Side | None) -> Judgement | None:
    """The verdict when a side has no number to compare, else ``None``."""
    if head is None:
        return Judgement("gone", "not in head's results (benchmark or parameter removed)")
    if base is None:
        return Judgement("new", "not in base's results")
    if head.value is None and base.value is not None:
        return Judgement("failed" if base.measured else "n/a", "head's benchmark failed")
    if base.value is None and head.measured:
        return Judgement("fixed", "base's benchmark failed")
    if not (base.measured and head.measured):
        return Judgement("n/a", "skipped on a side")
    return None


def significant(base: Side, head: Side) -> bool | None:
    """Whether the two sides' samples differ (Mann-Whitney U at :data:`P_THRESHOLD`); ``None``
    where samples are missing or too few for the test to ever say so."""
    from asv._stats import binom, mann_whitney_u  # asv==0.6.6 is pinned

    if not base.samples or not head.samples:
        return None
    m, n = len(base.samples), len(head.samples)
    if 1 / binom(m + n, min(m, n)) >= P_THRESHOLD:
        return None
    return mann_whitney_u(list(base.samples), list(head.samples))[1] < P_THRESHOLD


def judge_time(base: Side, head: Side, min_effect: float) -> Judgement:
    """A time's verdict (lower is better); ``regression``/``improvement`` are candidates the
    gate confirms by re-measuring (also where samples are missing, as in older results)."""
    ratio = head.value / base.value  # type: ignore[operator]
    change = abs(math.log(ratio))
    if change <= math.log1p(min_effect):
        return Judgement("unchanged")
    direction = "regression" if ratio > 1 else "improvement"
    said = f"{ratio:.3f}x"
    caution = "; ".join(
        f"{name}: {side.caution}" for name, side in (("base", base), ("head", head)) if side.caution
    )
    if caution:
        return Judgement("unsure", f"{said}, but {caution}: re-run")
    noise = max(base.noise, head.noise)
    if change <= math.log1p(2 * noise):
        return Judgement(
            "unsure", f"{said}, within twice the figure's drift while sampled ({noise:.1%}): re-run"
        )
    differ = significant(base, head)
    if differ is None:  # the re-measure decides
        return Judgement(direction, f"{said}, no samples to test")
    if not differ:
        return Judgement("unsure", f"{said}, but the samples overlap (Mann-Whitney): re-run")
    return Judgement(direction, f"{said}, samples differ")


def judge_memory(base: Side, head: Side, factor: float) -> Judgement:
    ratio = head.value / base.value if base.value else math.inf  # type: ignore[operator]
    if ratio > factor:
        return Judgement("regression", f"{ratio:.3f}x the bytes")
    if ratio < 1 / factor:
        return Judgement("improvement", f"{ratio:.3f}x the bytes")
    return Judgement("unchanged")


def judge_error(base: Side, head: Side, tolerance: float | None) -> Judgement:
    """Worse only when head's error crosses the dtype's tolerance and base's did not."""
    if tolerance is None:
        return Judgement("unchanged", "no tolerance known for this dtype")
    over_b, over_h = base.value > tolerance, head.value > tolerance  # type: ignore[operator]
    if over_h and not over_b:
        return Judgement("regression", f"error {head.value:.3g} above the tolerance {tolerance:g}")
    if over_b and not over_h:
        return Judgement("improvement", f"error back within the tolerance {tolerance:g}")
    return Judgement("unchanged")


def judge_first_call(base: Side, head: Side) -> Judgement:
    """First-call seconds: reported when much slower, never failing (its own section)."""
    b, h = base.value, head.value
    if h > FIRST_CALL_FACTOR * b and h - b > FIRST_CALL_MIN_SECONDS:  # type: ignore[operator]
        return Judgement("slower first call", f"{h / b:.1f}x: a compile cache miss, or slower")  # type: ignore[operator]
    return Judgement("unchanged")
