"""Where asv's per-commit environments find PyTorch: the site directories of the Python that
runs asv.

asv.conf.json's ``install_command`` lists ``ATTNBENCH_HOST_SITE`` in a ``.pth`` file of each
asv environment. This module, an asv plugin, sets it in asv's own process (:func:`setup`), so a
plain ``asv run`` works wherever ``import torch`` works for asv's Python: a venv holding torch,
a venv over a system PyTorch (``--system-site-packages``), a conda env. Directories named in a
``.pth`` file are appended after the environment's own site-packages and their own ``.pth``
files are not read, so each commit's installed attnbench wins over an editable install.
"""

from __future__ import annotations

import importlib.util
import os
import site
import sysconfig
from collections.abc import MutableMapping

VARIABLE = "ATTNBENCH_HOST_SITE"


def host_site_dirs() -> list[str]:
    """This Python's ``PYTHONPATH`` entries, its site directories (its own first, then those
    it inherits), its user site, and the directory holding ``torch`` (found without importing
    it), existing ones only. ``PYTHONPATH``: asv removes its entries from the path of every
    benchmark process, so a package asv's Python finds only through it (wheels unpacked with
    ``pip --target`` on an offline host, say) would be missing from the benchmarks."""
    paths = sysconfig.get_paths()
    dirs = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    dirs += [*site.getsitepackages(), paths["purelib"], paths["platlib"]]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    spec = importlib.util.find_spec("torch")
    if spec is not None and spec.origin:
        dirs.append(os.path.dirname(os.path.dirname(spec.origin)))
    return [d for d in dict.fromkeys(os.path.abspath(d) for d in dirs) if os.path.isdir(d)]


def export_host_site(environ: MutableMapping[str, str] | None = None) -> str:
    """Set :data:`VARIABLE` in ``environ`` (``os.environ``) unless it has a value; the value."""
    environ = os.environ if environ is None else environ
    if not environ.get(VARIABLE):
        environ[VARIABLE] = os.pathsep.join(host_site_dirs())
    return environ[VARIABLE]


def setup() -> None:
    """asv plugin (``".attnbench.asv_host"`` in asv.conf.json), called when asv loads it: before
    any command creates or installs an environment."""
    export_host_site()
