"""Derivative paths on W1: what every path costs against the default two.

    .venv/bin/python benchmarks/paths.py [--points 10000] [--repeat 3] [--dtype float32]
        [--device cpu] [--per-point 200]

W1 is the project's standard workload (benchmarks/performance.py): ``sin(x)*exp(y) + x*y*z**2 +
log(1 + z**2)`` at N points uniform in [-1, 1] (seed 11), translated to its torch program as a
check translates it, with torch's intra-op threads a check's (``--threads``, 1: several
stall on a busy machine). Each path of ``verifier/core/program/modes.py`` runs on it through
``run_path`` (batched: every point at once), best of ``--repeat``; the rows are each path's
time, then the default paths' total, every path's total and their ratio. ``--per-point`` also
times the point-by-point flavour of the default paths on that many points, scaled to N (it is
a loop). A refused path is listed with its message and counts as nothing.

``--check N`` also times whole checks of W1 at N points (references, audit and judging
included; ``verifier.check``): default modes against ``modes="all"``, best of ``--repeat``,
and prints their ratio (the target is at most 3x).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from verifier.core.check import CHECK_INTRA_OP_THREADS
from verifier.core.expression.parse import parse_expression
from verifier.core.floats.dtypes import DTYPES
from verifier.core.program.modes import DEFAULT_MODES, MODES
from verifier.core.program.paths import PathResult, expression_function, run_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from core import best  # noqa: E402  (the core benchmark, a sibling script)
from performance import DEFAULT_POINTS, W1, draw_points  # noqa: E402

VARIABLES = ["x", "y", "z"]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=DEFAULT_POINTS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--per-point", type=int, default=0, help="points for the loop flavour")
    parser.add_argument("--threads", type=int, default=CHECK_INTRA_OP_THREADS)
    parser.add_argument("--check", type=int, default=0, help="points for whole checks")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    dtype, device = DTYPES[args.dtype], torch.device(args.device)
    fn = expression_function(parse_expression(W1).expr, VARIABLES, dtype, device)
    points = draw_points(VARIABLES, args.points)
    inputs = {
        name: torch.tensor([p[name] for p in points], dtype=dtype.torch, device=device)
        for name in VARIABLES
    }
    results: dict[str, PathResult] = {}

    def run(name: str) -> None:
        results[name] = run_path(fn, inputs, name)

    seconds = {}
    for name in MODES:
        run(name)  # warm: torch's lazy imports and first-call caches
        seconds[name] = best(lambda name=name: run(name), args.repeat)

    title = f"W1, {args.points:,} points, {args.dtype}, {device}, {args.threads} thread(s)"
    table = Table(title=title + ", batched")
    table.add_column("mode")
    table.add_column("order", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("refused")
    for name, mode in MODES.items():
        error = results[name].error
        table.add_row(name, str(mode.order), f"{seconds[name]:.4f}", error or "")
    ran = [name for name in MODES if results[name].error is None]
    default_s = sum(seconds[name] for name in DEFAULT_MODES)
    all_s = sum(seconds[name] for name in ran)
    figures = {"default_s": default_s, "all_s": all_s, "ratio": all_s / default_s}
    table.add_section()
    table.add_row("default (" + ", ".join(DEFAULT_MODES) + ")", "", f"{default_s:.4f}", "")
    table.add_row(f"all ({len(ran)} that ran)", "", f"{all_s:.4f}", "")
    table.add_row("all / default", "", f"{figures['ratio']:.2f}x", "")
    if args.per_point:
        few = {name: column[: args.per_point] for name, column in inputs.items()}
        scale = args.points / args.per_point
        loop_s = scale * sum(
            best(lambda name=name: run_path(fn, few, name, batched=False), 1)
            for name in DEFAULT_MODES
        )
        figures["default_per_point_s"] = loop_s
        table.add_row("default, point by point (scaled)", "", f"{loop_s:.4f}", "")
    Console(width=160).print(table)
    if args.check:
        figures.update(_whole_checks(points[: args.check], args))
    return figures


def _whole_checks(points: list[dict[str, float]], args: argparse.Namespace) -> dict[str, float]:
    """Whole checks of W1 with the default modes and with every mode, and their ratio."""
    from verifier.core.check import check

    def run(modes: str | None) -> None:
        report = check(W1, points, dtype=args.dtype, device=args.device, modes=modes)
        assert report.verdict != "error", report.reason

    run(None)  # warm: SymPy's derivatives, torch's first calls
    default_s = best(lambda: run(None), args.repeat)
    all_s = best(lambda: run("all"), args.repeat)
    table = Table(title=f"whole checks of W1, {len(points):,} points, {args.dtype}")
    table.add_column("modes")
    table.add_column("seconds", justify="right")
    table.add_row("default", f"{default_s:.3f}")
    table.add_row("all", f"{all_s:.3f}")
    table.add_row("all / default", f"{all_s / default_s:.2f}x")
    Console(width=160).print(table)
    return {"check_default_s": default_s, "check_all_s": all_s, "check_ratio": all_s / default_s}


if __name__ == "__main__":
    main()
