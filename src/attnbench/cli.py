"""The ``attnbench`` command: ``list``, ``run`` (measure through :func:`attnbench.sweep.sweep`),
``check`` (a correctness matrix against the float64 reference), ``plot`` (figures of a run's
JSON) and ``leaderboard`` (an HTML page from asv's results). Text goes through
:mod:`attnbench.textout` (rich tables that fit the width).

Exit codes: 0 success, 1 ``check`` found a failing pair, 2 bad arguments (one line on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import TextIO

from . import catalogue, system
from .atomic import atomic_open
from .devices import default_device, resolve_device
from .errors import AttnbenchError
from .impls import get_impl, impl_names, select_impls
from .measure.correctness import MAGNITUDES, check_pair
from .sweep import Record, cautions, sweep
from .textout import by_reason, console, grouped_reasons, show, split_table, table, wrapped
from .workload import SCENARIOS, Workload

PROG = "attnbench"
_SHAPE_FLAGS = ("batch", "heads", "kv_heads", "seq_len", "kv_len", "head_dim", "causal")
_SHAPE_FLAGS += ("dtype", "scenario")


class _UsageError(AttnbenchError):
    """argparse's complaint, turned into attnbench's one-line error (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block, and no SystemExit mid-test
        raise _UsageError(message)


# -- formatting ---------------------------------------------------------------------------
def _seconds(s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.3g} {unit}"
        value /= 1024
    return str(n)


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "-" if x is None else format(x, fmt)


# -- arguments ----------------------------------------------------------------------------
def _size(text: str) -> int:
    """argparse type of a size flag: a positive integer (0 is no size, not "the default")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _add_selection(p: argparse.ArgumentParser, *, default_set: str | None) -> None:
    p.add_argument(
        "-i",
        "--impl",
        action="append",
        metavar="NAME",
        help="implementation name or glob, repeatable (default: every benchmarked one)",
    )
    p.add_argument(
        "-w",
        "--workload",
        action="append",
        metavar="NAME",
        help="workload set, name or glob, repeatable"
        + (f" (default: set {default_set})" if default_set else ""),
    )
    p.add_argument("--quick", action="store_true", help="the quick set (same as -w quick)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if visible, else cpu)")
    g = p.add_argument_group(
        "one workload from flags (any of these builds it; the others take defaults)"
    )
    g.add_argument("--batch", type=_size, help="batch size (default 1)")
    g.add_argument("--heads", type=_size, help="query heads (default 8)")
    g.add_argument("--kv-heads", type=_size, help="KV heads, dividing --heads (default: --heads)")
    g.add_argument(
        "--seq-len", type=_size, help="query length (default 512; decode: 1 query, this many keys)"
    )
    g.add_argument("--kv-len", type=_size, help="key/value length (default: --seq-len)")
    g.add_argument("--head-dim", type=_size, help="head dimension (default 64)")
    g.add_argument(
        "--causal", action=argparse.BooleanOptionalAction, default=None, help="(default causal)"
    )
    g.add_argument("--dtype", help="fp32, fp16, bf16 or fp8 (default: fp32 on CPU, bf16 on CUDA)")
    g.add_argument("--scenario", choices=SCENARIOS, help="(default prefill)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Benchmark and check attention implementations.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="implementations and workload sets")
    p.add_argument("--workloads", metavar="SET", help="list the workload names of a set")

    p = sub.add_parser("run", help="measure implementations on workloads")
    _add_selection(p, default_set=None)
    p.add_argument("--baseline", default="eager", help="speedup reference ('none': no speedup)")
    p.add_argument("--json", metavar="PATH", help="write all records and the system to PATH")
    p.add_argument("--csv", metavar="PATH", help="write all records, flattened, to PATH")
    p.add_argument(
        "--ceilings",
        action="store_true",
        help="also time a matmul and a copy per dtype (roofline of an unknown card, in --json)",
    )

    p = sub.add_parser("check", help="correctness matrix against the float64 reference")
    _add_selection(p, default_set="quick")

    p = sub.add_parser("plot", help="figures of a run's JSON (attnbench run --json)")
    p.add_argument("run_json", metavar="RUN.json", help="the file attnbench run --json wrote")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the figures")
    p.add_argument("--format", default="png,svg", help="comma-separated: png, svg (default both)")

    p = sub.add_parser("leaderboard", help="HTML leaderboard from asv's results")
    p.add_argument("--results", default="results", metavar="DIR", help="asv results directory")
    p.add_argument("--html", default="html", metavar="DIR", help="asv's published site")
    return parser


def _flag_workload(args: argparse.Namespace, device) -> Workload | None:
    if all(getattr(args, f) is None for f in _SHAPE_FLAGS):
        return None
    scenario = args.scenario or "prefill"
    heads = 8 if args.heads is None else args.heads
    if scenario == "decode":
        q_len = 1
        kv_len = next((n for n in (args.kv_len, args.seq_len) if n is not None), 2048)
    else:
        q_len = 512 if args.seq_len is None else args.seq_len
        kv_len = q_len if args.kv_len is None else args.kv_len
    return Workload(
        batch=1 if args.batch is None else args.batch,
        q_heads=heads,
        kv_heads=heads if args.kv_heads is None else args.kv_heads,
        q_len=q_len,
        kv_len=kv_len,
        head_dim=64 if args.head_dim is None else args.head_dim,
        causal=True if args.causal is None else args.causal,
        dtype=args.dtype or ("bf16" if device.type == "cuda" else "fp32"),
        scenario=scenario,
    )


def _selection(args: argparse.Namespace, default_set: str | None):
    device = resolve_device(args.device) if args.device else default_device()
    impls = (
        select_impls(args.impl)
        if args.impl
        else [get_impl(n) for n in impl_names(benchmarked_only=True)]
    )
    patterns = list(args.workload or []) + (["quick"] if args.quick else [])
    built = _flag_workload(args, device)
    if not patterns and built is None:
        patterns = [default_set or catalogue.default_set(device.type)]
    workloads = catalogue.select_workloads(patterns) if patterns else []
    if built is not None and built.name not in {w.name for w in workloads}:
        workloads.append(built)
    return impls, workloads, device


# -- list ---------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    if args.workloads:
        for w in catalogue.workload_set(args.workloads):
            print(w.name, file=out)
        return 0
    con = console(out)
    device = default_device()
    con.out(f"Implementations (default device: {device.type})")
    rows = []
    for name in impl_names():
        impl = get_impl(name)
        why = impl.availability()
        if why is None and device.type not in impl.dtypes:
            why = f"not on {device.type}"
        devices = "\n".join(f"{d}: {','.join(sorted(ds))}" for d, ds in impl.dtypes.items())
        note = "" if impl.benchmarked else " (not benchmarked)"
        rows.append((name, impl.family, (why or "available") + note, devices))
    show(con, table(("name", "family", "availability", "devices: dtypes"), rows))
    con.out("\nWorkload sets (attnbench list --workloads SET names them)")
    rows = [
        (s, str(len(catalogue.workload_set(s))), " ".join(catalogue.describe_set(s).split()))
        for s in catalogue.set_names()
    ]
    show(con, table(("set", "size", "description"), rows, right=[1]))
    return 0


# -- run ----------------------------------------------------------------------------------
def _record_row(rec: Record) -> list[str]:
    t = rec.time
    peak = rec.gpu_peak_allocated if rec.gpu_peak_allocated is not None else rec.host_peak_rss
    return [
        rec.impl,
        f"{_seconds(t.median)} ± {_seconds(t.iqr)}" + (" *" if cautions(rec) else ""),
        _num(rec.tflops),
        _num(rec.tokens_per_s),
        _num(rec.gbps),
        _bytes(peak),
        "-" if rec.speedup is None else f"{rec.speedup:.2f}x",
        _num(rec.max_abs_error, ".2e"),
    ]


def _flatten(d: dict, prefix: str = "") -> dict:
    """One CSV row: nested keys joined by dots; lists (the kept timing samples) left to --json."""
    flat: dict = {}
    for key, value in d.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif not isinstance(value, (list, tuple)):
            flat[f"{prefix}{key}"] = value
    return flat


@contextlib.contextmanager
def _progress(total: int):
    """A progress bar on stderr while a sweep runs (only on a terminal; rich, lazily)."""
    if not sys.stderr.isatty():
        yield lambda rec: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("measuring", total=total)

        def advance(rec) -> None:
            bar.update(task, advance=1, description=f"{rec.impl} on {rec.workload}")

        yield advance


def _skipped_everywhere(records: Sequence[Record]) -> dict[str, str]:
    """{impl: reason} for implementations skipped on every table of a run of more than one,
    always for the same reason (not installed, no CUDA): said once, not under each table."""
    tables = {(r.workload, r.mode) for r in records}
    if len(tables) < 2:
        return {}
    reasons: dict[str, set[str | None]] = {}
    for r in records:
        reasons.setdefault(r.impl, set()).add(r.reason)
    return {
        impl: next(iter(rs))
        for impl, rs in reasons.items()
        if len(rs) == 1 and None not in rs and sum(r.impl == impl for r in records) == len(tables)
    }


def _print_grouped(con, title: str, reasons: dict[str, str]) -> None:
    """``title``, then one line per reason naming the implementations it stops."""
    con.out(f"\n{title}")
    for why, names in by_reason(reasons.items()).items():
        wrapped(con, f"  {', '.join(names)}: {why}")


def _print_records(
    con, workloads: Sequence[Workload], records: Sequence[Record], baseline, device: str
) -> dict[tuple[str, str], dict[str, int]]:
    """One table per workload and mode, its skips on one line under it; returns the tally of
    winners {(scenario, mode): {impl: workloads won}}."""
    headers = ("impl", "median ± IQR", "TFLOP/s", "tokens/s", "GB/s", "peak mem")
    headers += (f"vs {baseline or '-'}", "max abs err")
    everywhere = _skipped_everywhere(records)
    wins: dict[tuple[str, str], dict[str, int]] = {}
    for w in workloads:
        for mode in ("forward", "forward_backward"):
            recs = [r for r in records if r.workload == w.name and r.mode == mode]
            if not recs:
                continue
            con.out(f"\n{w.name}  [{mode}, {device}]")
            ok = [r for r in recs if r.ok]
            if ok:
                show(con, table(headers, [_record_row(r) for r in ok], right=range(1, 8)))
            skipped = [(r.impl, r.reason) for r in recs if not r.ok and r.impl not in everywhere]
            if skipped:
                wrapped(con, f"skipped: {grouped_reasons(skipped)}")
            for r in ok:
                for caution in cautions(r):
                    wrapped(con, f"* {r.impl}: {caution}")
            if ok:
                best = min(ok, key=lambda r: r.time.median)
                tally = wins.setdefault((w.scenario, mode), {})
                tally[best.impl] = tally.get(best.impl, 0) + 1
    if everywhere:
        _print_grouped(con, "skipped on every workload:", everywhere)
    return wins


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    impls, workloads, device = _selection(args, None)
    baseline = None if args.baseline.lower() in ("", "none") else get_impl(args.baseline).name
    train = [w for w in workloads if w.has_backward]
    with _progress(len(impls) * (len(workloads) + len(train))) as advance:
        records = sweep(impls, workloads, "forward", device, baseline=baseline, on_record=advance)
        if train:
            records += sweep(
                impls, train, "forward_backward", device, baseline=baseline, on_record=advance
            )
    con = console(out)
    wins = _print_records(con, workloads, records, baseline, device.type)
    con.out("\nWinner per scenario (lowest median, counted per workload)")
    rows = []
    for (scenario, mode), tally in wins.items():
        winner = max(tally, key=tally.get)
        total = sum(tally.values())
        rows.append((f"{scenario} [{mode}]", winner, f"fastest on {tally[winner]} of {total}"))
    show(con, table(("scenario", "winner", "workloads"), rows))
    if args.json:
        info = system.machine_info()
        if args.ceilings:
            info["ceilings"] = _ceilings(device, {w.dtype for w in workloads}, out)
        doc = {
            "system": info,
            "device": str(device),
            "baseline": baseline,
            "workloads": {w.name: asdict(w) for w in workloads},
            "records": [r.as_dict() for r in records],
        }
        with atomic_open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"\nwrote {len(records)} records to {args.json}", file=out)
    if args.csv:
        flat = [_flatten(r.as_dict()) for r in records]
        fields = list(dict.fromkeys(k for row in flat for k in row))
        # a skipped record has time None where the others have time.median ...: keep the latter
        fields = [k for k in fields if not any(f.startswith(k + ".") for f in fields)]
        with atomic_open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(flat)
        print(f"wrote {len(records)} records to {args.csv}", file=out)
    return 0


def _ceilings(device, dtypes: set[str], out: TextIO) -> dict:
    from .measure.ceilings import measure_ceilings

    found: dict = {}
    for dtype in sorted(dtypes):
        try:
            found[dtype] = measure_ceilings(device, dtype).as_dict()
        except Exception as exc:  # a dtype the device cannot multiply: say so, keep the run
            found[dtype] = {"error": f"{type(exc).__name__}: {exc}"}
        c = found[dtype]
        shown = c.get("error") or f"{c['matmul_tflops']:.3g} TFLOP/s, {c['copy_gbps']:.3g} GB/s"
        print(f"ceilings {dtype}: {shown}", file=out)
    return found


# -- plot, leaderboard --------------------------------------------------------------------
def cmd_plot(args: argparse.Namespace, out: TextIO) -> int:
    from .plot import load_run, plot_run

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    for path in plot_run(load_run(args.run_json), args.out, formats):
        print(path, file=out)
    return 0


def cmd_leaderboard(args: argparse.Namespace, out: TextIO) -> int:
    from .leaderboard import write_leaderboard

    for path in write_leaderboard(args.results, args.html):
        print(path, file=out)
    return 0


# -- check --------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    impls, workloads, device = _selection(args, "quick")
    results = {(i.name, w.name): check_pair(i, w, device) for w in workloads for i in impls}
    con = console(out)
    wrapped(
        con,
        f"Correctness on {device.type} against the float64 reference: input magnitudes "
        f"{', '.join(f'{m:g}' for m in MAGNITUDES)}; gradients for train workloads",
    )
    # an implementation n/a on every workload is a column of n/a: named once, below instead
    never = {
        i.name: "; ".join(dict.fromkeys(results[i.name, w.name][1][0] for w in workloads))
        for i in impls
        if workloads and all(results[i.name, w.name][0] == "n/a" for w in workloads)
    }
    shown = [i.name for i in impls if i.name not in never]
    columns = [(n, [results[n, w.name][0] for w in workloads]) for n in shown]
    for part in split_table(con, "workload", [w.name for w in workloads], columns):
        show(con, part)
    if never:
        _print_grouped(con, "n/a on every workload:", never)
    notes = [(k, v) for k, v in results.items() if v[1] and v[0] != "n/a"]
    if notes:
        con.out("")
    for (iname, wname), (status, lines) in notes:
        wrapped(con, f"{status}  {iname} on {wname}: {'; '.join(lines)}")
    count = Counter(status for status, _ in results.values())
    checked, failed = count["ok"] + count["lossy"] + count["FAIL"], count["FAIL"]
    lossy = f", {count['lossy']} lossy (declared rounds_scores)" if count["lossy"] else ""
    con.out(f"\n{count['ok']} of {checked} supported pairs pass{lossy}, {failed} fail")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    out = sys.stdout
    try:
        args = build_parser().parse_args(argv)
        command = {
            "list": cmd_list,
            "run": cmd_run,
            "check": cmd_check,
            "plot": cmd_plot,
            "leaderboard": cmd_leaderboard,
        }[args.command]
        return command(args, out)
    except AttnbenchError as exc:
        message = " ".join(str(exc).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
