"""Which figures improve by rising. asv treats every figure as lower-is-better; attnbench
publishes speedups and rates as they are (3.1 x, 600 TFLOP/s) and corrects the direction
where it can: the site's regression list (:mod:`attnbench.asv_plugin`). ``asv compare``
is not corrected: its marks on these figures read the other way round."""

from __future__ import annotations

import re

# benchmark method names (the last part of an asv name) whose value is better when higher
HIGHER_IS_BETTER = re.compile(r"^track_(speedup\w*|tflops\w*|gbps\w*|tokens_per_s\w*)$")


def higher_is_better(benchmark_name: str) -> bool:
    """True for e.g. ``forward.Forward.track_tflops`` or ``track_speedup_vs_eager(...)``."""
    method = benchmark_name.split("(", 1)[0].rsplit(".", 1)[-1]
    return bool(HIGHER_IS_BETTER.match(method))


def is_regression(benchmark_name: str, before: float, after: float, factor: float = 1.1) -> bool:
    """Whether ``before -> after`` is worse by more than ``factor``, in the figure's direction."""
    if higher_is_better(benchmark_name):
        return after * factor < before
    return after > before * factor
