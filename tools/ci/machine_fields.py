"""Put every result file of a machine under its coarse asv fields, so its graphs join again.

asv keys each graph by the machine fields stored in every result file (os, ram, cpu...), so a
runner registered again with other fields (a kernel build, a driver update) starts a second
line. ``attnbench.system.register_asv_machine`` now records coarse fields
(:func:`attnbench.system.coarse_asv_fields`); this rewrites the fields of results measured
before, and of ``machine.json``, the same way. Figures are not touched.

    python -m tools.ci.machine_fields                    # every machine folder under results/
    python -m tools.ci.machine_fields results/h200-x1    # one
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from attnbench.atomic import write_text
from attnbench.system import coarse_asv_fields

from .pipeline import ROOT


def rewrite(folder: Path) -> int:
    """Coarsen the fields of ``folder``'s machine.json and result files; the files changed."""
    changed = 0
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if path.name == "machine.json":
            new = coarse_asv_fields(data)
            text = json.dumps(new, indent=4, sort_keys=True) + "\n"  # as asv writes it
        else:
            new = {**data, "params": coarse_asv_fields(data.get("params", {}))}
            text = json.dumps(new, separators=(", ", ": "))  # asv's compact form
        if new != data:
            write_text(path, text)
            changed += 1
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="results/<machine> folders")
    args = parser.parse_args(argv)
    folders = args.folders or [p.parent for p in sorted((ROOT / "results").glob("*/machine.json"))]
    for folder in folders:
        if not (folder / "machine.json").is_file():
            print(f"machine_fields: {folder}: no machine.json", file=sys.stderr)
            return 2
        print(f"{folder}: {rewrite(folder)} file(s) rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
