"""asv plugin (``"plugins": [".attnbench.asv_plugin"]`` in asv.conf.json): make the site's
regression list respect figures that improve by rising (speedups, TFLOP/s, GB/s); make asv's
JSON files (results, benchmarks.json) be written atomically (:mod:`attnbench.atomic`); and have
``asv publish`` ship the site's scripts and styles instead of loading them from CDNs
(:mod:`attnbench.offline_site`).

asv's step detection looks for upward steps. For a higher-is-better figure it is fed the
reciprocal series, so a drop from 600 to 300 TFLOP/s is reported as a regression (and a
rise is not); the values it reports are turned back into the figure's own units.
"""

from __future__ import annotations

import math

from asv.plugins.regressions import Regressions
from asv.publishing import OutputPublisher

from .atomic import install_in_asv
from .direction import higher_is_better
from .offline_site import make_offline

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


class OfflineAssets(OutputPublisher):
    """The last step of ``asv publish``: the site's pages load the copies it ships."""

    name = "offline-assets"
    button_label = None
    description = "scripts and styles shipped with the site (attnbench.offline_site)"
    order = math.inf

    @classmethod
    def publish(cls, conf, repo, benchmarks, graphs, revisions) -> None:
        make_offline(conf.html_dir)


def setup() -> None:
    """Called by asv's plugin manager when it loads this module."""
    install_in_asv()  # a kill while asv saves a commit's results keeps its earlier shards
    Regressions._process_regression = classmethod(_process_regression)  # type: ignore[method-assign]
