"""Core benchmarks: each row is timed against a baseline in the same run, printed as a ratio.

    .venv/bin/python benchmarks/core.py [--points N] [--repeat R]

Workloads are fixed: AI Feynman equations read from ../shared/corpora/feynman with a fixed
seed. Rows:

- batched: one check of N points, against N checks of one point each (the same entries);
- reference: arb ball arithmetic (certified) per derivative value, against mpmath at 50
  digits through ``sympy.lambdify`` (uncertified);
- gradcheck: derivcheck's full check (gradient + Hessian, exact reference), against
  ``torch.autograd.gradcheck`` + ``gradgradcheck`` (finite differences) on the same points.

A second table shows verdicts where finite differences and exact references disagree.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import mpmath
import sympy
import torch
from rich.console import Console
from rich.table import Table

from verifier import check
from verifier.core.exact.reference import reference_values
from verifier.core.expression.parse import parse_expression
from verifier.core.expression.symbolic import derive
from verifier.core.expression.syntax import ParsedExpression
from verifier.core.floats.dtypes import DTYPES
from verifier.core.floats.points import sample_points
from verifier.core.program.translate import Translation

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "feynman"
EQUATIONS = ("I.6.2", "I.12.11", "I.29.16", "I.37.4", "II.6.15a", "III.4.33")
SEED = 7


def load(names: tuple[str, ...]) -> list[tuple[str, str, dict[str, tuple[float, float]]]]:
    rows = []
    with open(CORPUS / "FeynmanEquations.csv", encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Filename"] in names:
                ranges = {
                    row[f"v{i}_name"]: (float(row[f"v{i}_low"]), float(row[f"v{i}_high"]))
                    for i in range(1, 11)
                    if row.get(f"v{i}_name")
                }
                rows.append((row["Filename"], row["Formula"], ranges))
    return rows


def torch_function(parsed: ParsedExpression, dtype: str) -> Callable[..., torch.Tensor]:
    """The expression as a function of one tensor per variable, as derivcheck builds it."""

    def f(*tensors: torch.Tensor) -> torch.Tensor:
        mapping = dict(zip(parsed.variables, tensors, strict=True))
        return Translation(parsed.expr, mapping, DTYPES[dtype], torch.device("cpu")).output

    return f


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_batched(formula: str, points: list[dict[str, float]], repeat: int) -> tuple[float, float]:
    batched = best(lambda: check(formula, at=points), repeat)
    one_by_one = best(lambda: [check(formula, at=p) for p in points], 1)
    return batched, one_by_one


def bench_reference(
    formula: str, points: list[dict[str, float]], repeat: int
) -> tuple[float, float]:
    parsed = parse_expression(formula)
    targets = derive(parsed, DTYPES["float64"], hessian=True, nodes=False)
    arb_time = best(
        lambda: reference_values(parsed.expr, targets, parsed.variables, points, DTYPES["float64"]),
        repeat,
    )
    functions = [sympy.lambdify(parsed.symbols, t.expr, modules="mpmath") for t in targets]

    def with_mpmath() -> None:
        with mpmath.workdps(50):
            for point in points:
                args = [mpmath.mpf(point[name]) for name in parsed.variables]
                for function in functions:
                    function(*args)

    return arb_time, best(with_mpmath, repeat)


def bench_gradcheck(
    formula: str, points: list[dict[str, float]], repeat: int
) -> tuple[float, float]:
    parsed = parse_expression(formula)
    ours = best(lambda: check(formula, at=points), repeat)

    def finite_differences() -> None:
        inputs = tuple(
            torch.tensor([p[name] for p in points], dtype=torch.float64, requires_grad=True)
            for name in parsed.variables
        )

        f = torch_function(parsed, "float64")
        torch.autograd.gradcheck(f, inputs, raise_exception=False)
        torch.autograd.gradgradcheck(f, inputs, raise_exception=False)

    return ours, best(finite_differences, repeat)


CHECKERS = (torch.autograd.gradcheck, torch.autograd.gradgradcheck)


def _finite_difference_verdict(
    checker: Callable[..., bool], f: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]
) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gradcheck warns that float32 inputs will likely fail
        try:
            return "pass" if checker(f, inputs, raise_exception=False) else "FAIL"
        except Exception as error:  # noqa: BLE001  (a benchmark row, not a test)
            return f"raises {type(error).__name__}"


def verdict_table(console: Console) -> None:
    cases = [
        ("Abs(x)", {"x": 0.0}, "float64"),
        ("Max(x, y)", {"x": 1.0, "y": 1.0}, "float64"),
        ("sin(x)*exp(x)", {"x": 0.7}, "float32"),
        ("sinc(x)", {"x": 0.0}, "float64"),
    ]
    table = Table(title="finite differences vs exact references")
    for column in ("expression", "point", "dtype", "gradcheck", "gradgradcheck", "derivcheck"):
        table.add_column(column)
    for text, point, dtype in cases:
        parsed = parse_expression(text)
        torch_dtype = getattr(torch, dtype)
        inputs = tuple(
            torch.tensor([point[n]], dtype=torch_dtype, requires_grad=True)
            for n in parsed.variables
        )

        f = torch_function(parsed, dtype)
        finite = [_finite_difference_verdict(checker, f, inputs) for checker in CHECKERS]
        ours = check(text, at=point, dtype=dtype).verdict
        table.add_row(text, str(point), dtype, *finite, ours)
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    check("x", at={"x": 1})  # start the symbolic process once, outside the timings
    rows = load(EQUATIONS)
    table = Table(
        title=f"core benchmarks, {args.points} points per equation (best of {args.repeat})"
    )
    for column in ("equation", "row", "ours s", "baseline s", "speed-up"):
        table.add_column(column, justify="right" if column.endswith(("s", "up")) else "left")
    ratios: dict[str, list[float]] = {"batched": [], "reference": [], "gradcheck": []}
    for name, formula, ranges in rows:
        points = sample_points(list(ranges), args.points, ranges, SEED)
        for label, bench in (
            ("batched", bench_batched),
            ("reference", bench_reference),
            ("gradcheck", bench_gradcheck),
        ):
            ours, baseline = bench(formula, points, args.repeat)
            ratios[label].append(baseline / ours)
            table.add_row(name, label, f"{ours:.3f}", f"{baseline:.3f}", f"{baseline / ours:.2f}x")
    console.print(table)
    for label, values in ratios.items():
        console.print(f"{label}: geometric mean speed-up {statistics.geometric_mean(values):.2f}x")
    verdict_table(console)


if __name__ == "__main__":
    main()
