"""asv plugin (``"plugins": [".attnbench.asv_plugin"]`` in asv.conf.json): make the site's
regression list respect figures that improve by rising (speedups, TFLOP/s, GB/s).

asv's step detection looks for upward steps. For a higher-is-better figure it is fed the
reciprocal series, so a drop from 600 to 300 TFLOP/s is reported as a regression (and a
rise is not); the values it reports are turned back into the figure's own units.
"""

from __future__ import annotations

from asv.plugins.regressions import Regressions

from .direction import higher_is_better

_original = Regressions._process_regression.__func__  # type: ignore[attr-defined]


def _inverse(x: float | None) -> float | None:
    return 1.0 / x if x else x


def _process_regression(cls, regressions, revision_to_hash, repo, all_params, graph_data, graph):
    j, entry_name, steps, threshold = graph_data
    if not higher_is_better(entry_name):
        return _original(cls, regressions, revision_to_hash, repo, all_params, graph_data, graph)
    flipped = [
        (left, right, 1.0 / value, 1.0 / value, (err or 0.0) / value**2)
        for left, right, value, _min, err in steps
        if value and value > 0
    ]
    before = len(regressions)
    _original(
        cls,
        regressions,
        revision_to_hash,
        repo,
        all_params,
        (j, entry_name, flipped, threshold),
        graph,
    )
    for entry in regressions[before:]:
        entry[4], entry[5] = _inverse(entry[4]), _inverse(entry[5])  # last_v, best_v
        entry[6] = [(a, b, _inverse(vb), _inverse(va)) for a, b, vb, va in entry[6]]
    return None


def setup() -> None:
    """Called by asv's plugin manager when it loads this module."""
    Regressions._process_regression = classmethod(_process_regression)  # type: ignore[method-assign]
