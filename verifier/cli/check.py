"""``derivcheck check``: one expression checked inline, no server needed."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from verifier.core.report import ERROR, Report
from verifier.errors import InputError, VerifierError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
FULL_TABLE_MAX_POINTS = 5
PIPED_WIDTH = 160  # columns of tables written to a pipe or file
WORST_ENTRIES_SHOWN = 10

_VERDICT_STYLES = {
    "pass": "green",
    "undefined": "yellow",
    "domain": "yellow",
    "nonfinite": "red",
    "fail": "red",
    "error": "red bold",
}


def register(app: typer.Typer) -> None:
    """Add the ``check`` command to ``app``."""
    app.command("check")(check)


def check(
    expression: Annotated[
        str, typer.Argument(help='Expression in SymPy syntax, e.g. "sin(x)*exp(y)".')
    ],
    at: Annotated[
        list[str] | None,
        typer.Option("--at", help="A point, e.g. x=2,y=1 (repeat for more points)."),
    ] = None,
    dtype: Annotated[str, typer.Option(help="float64, float32, float16 or bfloat16.")] = "float64",
    device: Annotated[str, typer.Option(help="auto (CUDA when available), cpu or cuda.")] = "auto",
    nodes: Annotated[
        bool, typer.Option("--nodes", help="Also check every non-leaf node's gradient.")
    ] = False,
    hessian: Annotated[bool, typer.Option(help="Check all second derivatives.")] = True,
    samples: Annotated[
        int | None, typer.Option(help="Also check N points drawn from --domain.")
    ] = None,
    domain: Annotated[
        str | None, typer.Option(help="Sampling ranges, e.g. x=-1:1,y=0:2 (default -1:1).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    rtol: Annotated[
        float | None, typer.Option(help="Relative tolerance (default: per dtype).")
    ] = None,
    atol: Annotated[
        float | None, typer.Option(help="Absolute tolerance (default: per dtype).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Count undefined derivatives as failures.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check autograd's gradient, Hessian and node gradients of EXPR at points."""
    from verifier.core.sandbox import thread_sandbox

    thread_sandbox().start()  # SymPy loads in the child while torch loads here
    from verifier.core.check import check as run_check
    from verifier.core.points import parse_assignments, parse_domain

    console = Console(stderr=True)
    try:
        points = [parse_assignments(text) for text in at or []]
        ranges = parse_domain(domain) if domain is not None else None
        with console.status("checking ...", spinner="dots") if console.is_terminal else _nothing():
            report = run_check(
                expression,
                points or None,
                dtype=dtype,
                device=device,
                nodes=nodes,
                hessian=hessian,
                samples=samples,
                domain=ranges,
                seed=seed,
                rtol=rtol,
                atol=atol,
                strict=strict,
            )
    except InputError as error:
        _fail(f"error: {error}")
    except VerifierError as error:
        _fail(f"error: {error}")
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        render(report, Console(width=None if sys.stdout.isatty() else PIPED_WIDTH))
    if report.verdict == "error":
        Console(stderr=True).print(f"[red]error:[/red] the check could not run: {report.reason}")
    raise typer.Exit(exit_code(report))


def exit_code(report: Report) -> int:
    """0 for pass/undefined/domain, 1 for fail/nonfinite (undefined too if strict), 2 for error."""
    if report.verdict == ERROR:
        return EXIT_BAD_INPUT
    return EXIT_OK if report.passed else EXIT_FAILED


def _fail(message: str) -> None:
    sys.stderr.write(message.splitlines()[0] + "\n")
    raise typer.Exit(EXIT_BAD_INPUT)


class _nothing:  # noqa: N801  (a context manager that does nothing)
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def render(report: Report, console: Console) -> None:
    """Print a report as tables: every entry for a few points, a summary for many."""
    style = _VERDICT_STYLES.get(report.verdict, "")
    console.print(
        f"[bold]{report.expression}[/bold]  dtype={report.dtype}  device={report.device}  "
        f"points={len(report.points)}  verdict=[{style}]{report.verdict}[/{style}]"
    )
    if report.verdict == "error":
        return
    if len(report.points) <= FULL_TABLE_MAX_POINTS:
        _entries_table(report, console, report.entries, title=None)
    else:
        _summary_table(report, console)
        bad = [e for e in report.entries if e.verdict != "pass"]
        bad.sort(key=lambda e: -(e.ulp_error or 0.0))
        if bad:
            _entries_table(
                report,
                console,
                bad[:WORST_ENTRIES_SHOWN],
                title="entries not passing (worst first)",
            )
    tolerance = report.tolerance
    console.print(
        f"tolerance: rtol={tolerance['rtol']:.3g} ({tolerance['ulps']:g} ulps), "
        f"atol={tolerance['atol']:.3g}; reference: {report.reference_method}"
    )
    for note in report.notes:
        console.print(f"[dim]note: {note}[/dim]")


def _label(entry: Any) -> str:
    if entry.kind == "node":
        return escape(f"d/d[{entry.node}]")
    if entry.kind == "gradient":
        return f"d/d{entry.wrt[0]}"
    return f"d2/d{entry.wrt[0]}d{entry.wrt[1]}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.10g}"


def _entries_table(report: Report, console: Console, entries: list[Any], title: str | None) -> None:
    table = Table(title=title)
    for column in (
        "point",
        "entry",
        "autograd",
        "reference",
        "abs err",
        "rel err",
        "ulps",
        "verdict",
    ):
        table.add_column(column, justify="right" if column not in ("entry", "verdict") else "left")
    for entry in entries:
        point = ", ".join(f"{k}={v:.8g}" for k, v in report.points[entry.point].items())
        verdict = entry.verdict
        style = _VERDICT_STYLES.get(verdict, "")
        table.add_row(
            point,
            _label(entry),
            _number(entry.autograd),
            _number(entry.reference),
            _number(entry.abs_error),
            _number(entry.rel_error),
            "-" if entry.ulp_error is None else f"{entry.ulp_error:.3g}",
            f"[{style}]{verdict}[/{style}]" + (f" {escape(entry.detail)}" if entry.detail else ""),
        )
    console.print(table)


def _summary_table(report: Report, console: Console) -> None:
    table = Table(title="summary over all points")
    for column in ("entry", "pass", "fail", "nonfinite", "undefined", "domain", "worst ulps"):
        table.add_column(column, justify="left" if column == "entry" else "right")
    groups: dict[str, list[Any]] = {}
    for entry in report.entries:
        groups.setdefault(_label(entry), []).append(entry)
    for label, entries in groups.items():
        counts = {
            v: sum(1 for e in entries if e.verdict == v)
            for v in ("pass", "fail", "nonfinite", "undefined", "domain")
        }
        worst_ulps = max((e.ulp_error for e in entries if e.ulp_error is not None), default=None)
        table.add_row(
            label,
            *(str(counts[v]) for v in counts),
            "-" if worst_ulps is None else f"{worst_ulps:.3g}",
        )
    console.print(table)
