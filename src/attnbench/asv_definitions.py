"""results/benchmarks.json as the union of every machine's benchmark definitions.

``asv publish`` draws a result only for a benchmark, and parameter values, that
results/benchmarks.json lists, and asv replaces that file with what each ``asv run`` discovered.
What a machine discovers depends on the machine (the workload set, the implementations that can
run there, CUDA-only figures), so a CPU run would drop the GPU-only benchmarks from the site.
This module, an asv plugin, makes asv's save a merge (:func:`merge`): nothing
already listed is dropped, and the file is rewritten only when the run found something new.
"""

from __future__ import annotations

from typing import Any

Definitions = dict[str, Any]  # benchmarks.json: benchmark name -> asv's description


def _union(first: list[list[str]], then: list[list[str]]) -> list[list[str]]:
    """Each parameter's values: ``first``'s in their order, then ``then``'s new ones."""
    return [
        [*values, *(v for v in more if v not in values)]
        for values, more in zip(first, then, strict=True)
    ]


def merge(listed: Definitions, discovered: Definitions) -> Definitions:
    """``listed`` plus what ``discovered`` adds. A benchmark listed with the same version and
    parameter names keeps its description and gains parameter values (so the file does not
    change with line numbers or source text); a new version or a reshaped benchmark replaces
    it (asv hides results of another version anyway); a benchmark not discovered stays."""
    merged = {name: d for name, d in listed.items() if name != "version"}
    for name, new in discovered.items():
        if name == "version" or not isinstance(new, dict):
            continue
        old = merged.get(name)
        if not isinstance(old, dict) or old.get("param_names") != new.get("param_names"):
            merged[name] = new
        elif old.get("version") != new.get("version"):
            merged[name] = {**new, "params": _union(new["params"], old["params"])}
        else:
            params = _union(old["params"], new["params"])
            merged[name] = old if params == old["params"] else {**old, "params": params}
    return merged


def install_in_asv() -> None:
    """Make ``asv.benchmarks.Benchmarks.save`` (``asv run``, ``asv continuous``) merge its
    discovery into the existing results/benchmarks.json instead of replacing it."""
    from asv import util
    from asv.benchmarks import Benchmarks
    from asv.console import log

    if getattr(Benchmarks.save, "__module__", None) == __name__:
        return

    def save(self: Benchmarks) -> None:
        path = self.get_benchmark_file_path(self._conf.results_dir)
        try:
            listed = util.load_json(path, api_version=self.api_version)
        except OSError:  # none yet
            listed = {}
        except util.UserError as exc:  # unreadable: asv's discovery alone, as asv would
            log.warning(f"{exc}: replaced by this run's benchmarks")
            listed = {}
        listed = {name: d for name, d in listed.items() if name != "version"}
        merged = merge(listed, self._all_benchmarks)
        if merged != listed:
            util.write_json(path, merged, self.api_version)

    save.__module__ = __name__
    Benchmarks.save = save  # type: ignore[method-assign]


def setup() -> None:
    """asv plugin (``".attnbench.asv_definitions"`` in asv.conf.json), called when asv loads it."""
    install_in_asv()
