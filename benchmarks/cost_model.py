"""The cost model against measurement: each class of check, its estimate and its real time.

    .venv/bin/python benchmarks/cost_model.py [--scale S] [--repeat R] [--only NAME,...] [--json]

Admission prices a check before it runs (``verifier/core/expression/cost.py``) and the worker
gives its certified references ``REFERENCE_BUDGET_FACTOR`` times that price
(``verifier/core/check.py``). This runs one check of every cost class inline through
``verifier.check`` (warm, default options, the budget included) and prints, per class, the
estimate in units and seconds, the measured seconds (the fastest of ``--repeat`` runs), their
ratio, the verdict and the reason:

- smooth, variables, special functions, node gradients, big tree: values certified in arb or
  in bounded float64, the classes the per-value weight was measured on;
- jumps: every point on a jump (each evaluated again from both sides);
- removable singularities: every point where a derivative is 0/0, at one singular value
  (``sinc`` summed over 16 variables, all at 0: the evasion the limit reserve prices) and
  at many (``sinc(x - y)`` at points with x = y, each a new symbolic limit);
- non-removable singularities: limits tried and refused (``sqrt`` at 0);
- precision: points where the reference needs several doublings of precision;
- symbolic: the Hessian of a product of many factors, whose derivatives SymPy takes far longer
  than the tree's size says; that stage is bounded by its own budget (``symbolic_timeout_s``),
  not by the estimate, so its ratio is shown and not held to the factor.

Tensor shapes are not a class yet: expressions are scalar.

A class whose ratio is above 1 is underpriced on this machine (marked); one whose references
took longer than their budget (``max(MIN_REFERENCE_BUDGET_S, REFERENCE_BUDGET_FACTOR x
estimate)``, plus ``KILL_SLACK_S`` to stop the symbolic process) means the budget did not hold,
and the exit status is then 1. ``--scale`` multiplies the points of every class (0.1 for a
quick run).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.table import Table

from verifier.core.check import MIN_REFERENCE_BUDGET_S, REFERENCE_BUDGET_FACTOR, check
from verifier.core.expression.cost import estimate
from verifier.core.expression.parse import parse_expression

Point = dict[str, float]
KILL_SLACK_S = 1.0
"""Past its budget, the symbolic process is killed and the check ends: this long at most."""


@dataclass(frozen=True)
class CostClass:
    """One class of check: its name, expression, points and options."""

    name: str
    expression: str
    points: list[Point]
    dtype: str = "float64"
    nodes: bool = False
    symbolic_bound: bool = False
    """True where the symbolic stage, bounded by its own budget, is what the class measures."""


@dataclass(frozen=True)
class Row:
    """A class measured: its estimate, its time, and how the check ended."""

    name: str
    points: int
    units: int
    estimate_s: float
    measured_s: float
    ratio: float
    reference_s: float
    budget_s: float
    verdict: str
    reason: str | None
    bounded_by: str


def _grid(count: int, build: Callable[[int], Point]) -> list[Point]:
    return [build(k) for k in range(count)]


def cost_classes(scale: float) -> list[CostClass]:
    """The classes, with their points multiplied by ``scale`` (at least 2 each)."""

    def n(points: int) -> int:
        return max(2, round(points * scale))

    def spread(k: int, low: float, high: float, count: int) -> float:
        return low + (high - low) * (k + 0.5) / count

    w1 = "sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)"
    smooth = n(2000)
    chain = " + ".join(f"sin(x{i})*x{i + 1}" for i in range(7))
    big = " + ".join(f"sin({i + 1}*x)*cos(y/{i + 2}) + exp(-z*{i + 1})*x" for i in range(15))
    sinc_sum = " + ".join(f"sinc(x{i})" for i in range(16))
    return [
        CostClass(
            "smooth (W1, float32)",
            w1,
            _grid(smooth, lambda k: {"x": spread(k, -2, 2, smooth), "y": 0.3, "z": -0.7}),
            dtype="float32",
        ),
        CostClass(
            "variables (8)",
            chain,
            _grid(n(500), lambda k: {f"x{i}": 0.1 * (i + 1) + 0.001 * k for i in range(8)}),
        ),
        CostClass(
            "special functions",
            "lgamma(x) + erf(y) + i0(x*y) + erfinv(y/2)",
            _grid(n(1000), lambda k: {"x": 0.5 + 0.01 * k, "y": spread(k, -1, 1, n(1000))}),
        ),
        CostClass(
            "node gradients (W1)",
            w1,
            _grid(n(1000), lambda k: {"x": 0.001 * k, "y": 0.5, "z": 0.25}),
            nodes=True,
        ),
        CostClass(
            "big tree (90 terms)",
            big,
            _grid(n(100), lambda k: {"x": 0.01 * k, "y": 0.3, "z": 0.2}),
        ),
        CostClass(
            "jumps, every point on one",
            "Abs(x - y) + Max(x, y)*sign(x)",
            _grid(n(500), lambda k: {"x": 0.0 if k % 2 else 0.01 * k, "y": 0.01 * k}),
        ),
        CostClass(
            "removable singularities, one value",
            sinc_sum,
            [{f"x{i}": 0.0 for i in range(16)} for _ in range(20)],
        ),
        CostClass(
            "removable singularities, many values",
            "sinc(x - y)",
            _grid(n(40), lambda k: {"x": 0.125 * (k + 1), "y": 0.125 * (k + 1)}),
        ),
        CostClass(
            "non-removable singularities",
            "sqrt(x) + y*x**(1/3)",
            _grid(n(40), lambda k: {"x": 0.0, "y": 0.25 * k}),
        ),
        CostClass(
            "precision (cancellation)",
            "exp(x) - 1 - x",
            _grid(n(500), lambda k: {"x": 2.0 ** -(20 + k % 30)}),
        ),
        CostClass(
            "symbolic (product of 14 factors)",
            "*".join(f"(x{i} + {i + 1})" for i in range(14)),
            [{f"x{i}": 0.5 for i in range(14)}],
            symbolic_bound=True,
        ),
    ]


def measure(cost_class: CostClass, repeat: int) -> Row:
    """Run ``cost_class``'s check ``repeat`` times; its fastest time against its estimate."""
    parsed = parse_expression(cost_class.expression)
    cost = estimate(parsed, len(cost_class.points), hessian=True, nodes=cost_class.nodes)
    best = math.inf
    report = None
    for _ in range(repeat):
        started = time.perf_counter()
        report = check(
            cost_class.expression,
            cost_class.points,
            dtype=cost_class.dtype,
            nodes=cost_class.nodes,
        )
        best = min(best, time.perf_counter() - started)
    assert report is not None
    return Row(
        name=cost_class.name,
        points=len(cost_class.points),
        units=cost.units,
        estimate_s=cost.seconds,
        measured_s=best,
        ratio=best / cost.seconds,
        reference_s=report.timings.get("reference", 0.0),
        budget_s=max(MIN_REFERENCE_BUDGET_S, REFERENCE_BUDGET_FACTOR * cost.seconds),
        verdict=str(report.verdict),
        reason=report.reason,
        bounded_by="symbolic_timeout_s" if cost_class.symbolic_bound else "estimate",
    )


def broken(rows: list[Row]) -> list[Row]:
    """The rows whose references ran past their budget."""
    return [row for row in rows if row.reference_s > row.budget_s + KILL_SLACK_S]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every class's points")
    parser.add_argument("--repeat", type=int, default=2, help="runs per class; the fastest counts")
    parser.add_argument("--only", default="", help="comma-separated class names (prefixes)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    if args.scale <= 0 or args.repeat < 1:
        parser.error("--scale must be positive and --repeat at least 1")
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    classes = [
        c for c in cost_classes(args.scale) if not wanted or c.name.startswith(tuple(wanted))
    ]
    if not classes:
        parser.error(f"--only {args.only!r} names no class")
    console = Console(stderr=True)
    check("x", at={"x": 1.0})  # start the symbolic process: its start-up is in no class
    rows = []
    for cost_class in classes:
        console.print(f"measuring {cost_class.name} ({len(cost_class.points)} points)")
        rows.append(measure(cost_class, args.repeat))
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
    else:
        _print_table(rows)
    sys.exit(1 if broken(rows) else 0)


def _print_table(rows: list[Row]) -> None:
    table = Table(title=f"cost model: measured / estimate (budget {REFERENCE_BUDGET_FACTOR:g}x)")
    columns = ("class", "points", "units", "estimate s", "measured s", "ratio", "references s")
    for column in (*columns, "verdict"):
        table.add_column(column, justify="left" if column in ("class", "verdict") else "right")
    for row in rows:
        ended = row.verdict + (f": {row.reason}" if row.reason else "")
        ratio = f"{row.ratio:.2f}" + (" underpriced" if row.ratio > 1 else "")
        if row.bounded_by != "estimate":
            ratio += " (symbolic budget)"
        held = "" if row.reference_s <= row.budget_s + KILL_SLACK_S else " PAST BUDGET"
        references = f"{row.reference_s:.3f} of {row.budget_s:.3g}{held}"
        table.add_row(
            row.name,
            str(row.points),
            f"{row.units:,}",
            f"{row.estimate_s:.3f}",
            f"{row.measured_s:.3f}",
            ratio,
            references,
            ended,
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
