"""``derivcheck check``: one expression checked inline, no server needed.

Exit status: 0 when the check passed its fail-on policy, 1 when an entry has a verdict of it
(``--fail-on``, ``--strict``; the defaults are in verifier/core/judge/verdict.py), 2 for bad input
or a check that could not run (verdict ``error``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from verifier.cli.style import blamed_table, counts_text, parse_fail_on, styled
from verifier.cli.toolkit import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    FAIL_ON_HELP,
    STRICT_HELP,
    console,
    errors,
    fail,
    print_json,
)
from verifier.core.judge.verdict import VERDICT_ORDER, Verdict
from verifier.errors import VerifierError

if TYPE_CHECKING:  # the report loads numpy: imported when a check runs, not for --help
    from verifier.core.judge.report import Entry, Report

FULL_TABLE_MAX_POINTS = 5
WORST_ENTRIES_SHOWN = 10
WIDE_TABLE_MIN_CHARS = 140  # room for the blame and detail columns


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
        float | None,
        typer.Option(help="Relative tolerance, below 1 (default: a number of ulps per dtype)."),
    ] = None,
    rtol_ulps: Annotated[
        float | None,
        typer.Option("--rtol-ulps", help="The relative tolerance in ulps of the dtype, e.g. 64."),
    ] = None,
    atol: Annotated[
        float | None, typer.Option(help="Absolute tolerance (default: per dtype).")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help=STRICT_HELP)] = False,
    fail_on: Annotated[str | None, typer.Option("--fail-on", help=FAIL_ON_HELP)] = None,
    compare_devices: Annotated[
        str | None,
        typer.Option(
            "--compare-devices",
            help="Also run autograd on a second device and judge both against the same "
            "references: two devices, the report's first, e.g. cuda,cpu.",
        ),
    ] = None,
    modes: Annotated[
        str | None,
        typer.Option(
            "--modes",
            help="Derivative paths to judge besides reverse and reverse-over-reverse: all, or "
            "names such as autograd:forward,func:forward-over-reverse.",
        ),
    ] = None,
    compare_batch: Annotated[
        bool,
        typer.Option(
            "--compare-batch",
            help="Also compute the default paths one point at a time, judged the same way.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check autograd's gradient, Hessian and node gradients of EXPR at points."""
    from verifier.core.floats.points import parse_assignments, parse_domain
    from verifier.core.options import CheckOptions

    try:
        options = CheckOptions.of(
            dtype=dtype,
            device=device,
            nodes=nodes,
            hessian=hessian,
            samples=samples,
            domain=parse_domain(domain) if domain is not None else None,
            seed=seed,
            rtol=rtol,
            rtol_ulps=rtol_ulps,
            atol=atol,
            strict=strict,
            fail_on=parse_fail_on(fail_on),
            compare_devices=_device_pair(compare_devices),
            modes=modes,
            compare_batch=compare_batch,
        )
        points = [parse_assignments(text) for text in at or []]
    except VerifierError as error:
        fail(str(error))
    from verifier.core.exact.sandbox import thread_sandbox

    thread_sandbox().start()  # SymPy loads in the child while torch loads here
    from verifier.core.check import check as core_check

    try:
        with errors.status("checking ...", spinner="dots") if errors.is_terminal else _nothing():
            report = core_check(expression, points or None, options=options)
    except VerifierError as error:
        fail(str(error))
    if as_json:
        print_json(report.to_dict())
    else:
        render(report, console)
    if report.verdict == Verdict.ERROR:
        errors.print(f"[red]error:[/red] the check could not run: {escape(str(report.reason))}")
    raise typer.Exit(exit_code(report))


def _device_pair(text: str | None) -> list[str] | None:
    """``--compare-devices cuda,cpu`` as the list of names ``check()`` takes."""
    if text is None:
        return None
    return [name.strip() for name in text.split(",")]


def exit_code(report: Report) -> int:
    """0 when the report passed its fail-on policy, 1 when it did not, 2 when it could not run."""
    if report.verdict == Verdict.ERROR:
        return EXIT_BAD_INPUT
    return EXIT_OK if report.passed else EXIT_FAILED


class _nothing:  # noqa: N801  (a context manager that does nothing)
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def render(report: Report, console: Console) -> None:
    """Print a report as tables: every entry for a few points, a summary for many; then the
    entries per verdict, the blamed nodes and whether the check passed."""
    console.print(
        f"[bold]{escape(report.expression)}[/bold]  dtype={report.dtype}  "
        f"device={report.device}  points={len(report.points)}  verdict={styled(report.verdict)}"
    )
    if report.verdict == Verdict.ERROR:
        return
    if len(report.points) <= FULL_TABLE_MAX_POINTS:
        _entries_table(report, console, report.entries, title=None)
    else:
        _summary_table(report, console)
        bad = sorted((e for e in report.entries if e.verdict != Verdict.PASS), key=_badness)
        if bad:
            _entries_table(
                report,
                console,
                bad[:WORST_ENTRIES_SHOWN],
                title=f"entries not passing, worst first ({len(bad)} in all)",
            )
    console.print(f"entries: {counts_text(report.counts)}")
    if report.compared is not None:
        _compared(report, console)
    if report.paths:
        console.print(_paths_table(report.paths))
    if report.blamed:
        console.print(blamed_table(report.blamed, title="blamed operations"))
    console.print(_tolerance_line(report))
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")
    console.print(_result_line(report))


def _paths_table(paths: list[dict[str, Any]]) -> Table:
    """The further derivative paths: verdict, counts, how many values differ from the default
    path of their order, and the worst entry (or torch's refusal)."""
    table = Table(title="derivative paths", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("mode", "verdict", "entries", "differ", "largest |difference|", "worst"):
        table.add_column(name)
    for path in paths:
        name = path["mode"] if path.get("batched", True) else f"{path['mode']}, point by point"
        if path["error"] is not None:
            worst = path["error"]
        elif path["entries"]:
            entry = max(path["entries"], key=lambda e: _sort_ratio(e["ratio"]))
            worst = f"{_wrt_label(entry)}: {entry['detail'] or ''}"
        else:
            worst = ""
        table.add_row(
            escape(name),
            styled(path["verdict"]),
            counts_text(path["counts"]),
            "" if path["differing"] is None else str(path["differing"]),
            _number(path["max_abs_difference"], ".3g"),
            escape(worst),
        )
    return table


def _sort_ratio(value: Any) -> float:
    """A ratio of the report format as a number to sort by ("inf" and "nan" last)."""
    if isinstance(value, int | float):
        return float(value)
    return math.inf


def _wrt_label(entry: dict[str, Any]) -> str:
    """``hessian[x,y]``, ``gradient[x]``: which derivative an entry of a path is."""
    return f"{entry['kind']}[{','.join(entry['wrt'] or [])}] at point {entry['point']}"


def _compared(report: Report, console: Console) -> None:
    """The compared device's verdict and counts, and the entries where the devices differ."""
    compared = report.compared or {}
    other = compared["device"]
    console.print(
        f"on {escape(other)}: verdict={styled(compared['verdict'])}  entries: "
        f"{counts_text(compared['counts'])}; {compared['differing']} of {len(report.entries)} "
        f"values differ from {escape(report.device)} (largest |difference| "
        f"{_number(compared['max_abs_difference'], '.3g')}), verdicts differ on "
        f"{compared['verdicts_differ']}"
    )
    differing = [
        e for e in report.entries if e.device_difference != 0 or e.compared_verdict != e.verdict
    ]
    if not differing:
        return
    differing.sort(key=_difference, reverse=True)
    table = Table(
        title=f"entries where {escape(report.device)} and {escape(other)} differ, largest first",
        box=box.SIMPLE_HEAD,
    )
    for name in ("entry", "point", report.device, "verdict", other, "verdict ", "difference"):
        table.add_column(escape(name))
    for entry in differing[:WORST_ENTRIES_SHOWN]:
        table.add_row(
            _label(entry),
            str(entry.point),
            _whole(entry.autograd),
            styled(entry.verdict),
            _whole(entry.compared_autograd),
            styled(entry.compared_verdict),
            _number(entry.device_difference, ".3g"),
        )
    console.print(table)


def _difference(entry: Entry) -> float:
    """Sort key: the size of the devices' difference, NaN (one device's value NaN) largest."""
    found = abs(entry.device_difference or 0.0)
    return math.inf if math.isnan(found) else found


def _result_line(report: Report) -> str:
    policy = ", ".join(report.fail_on) or "nothing"
    if report.passed:
        return f"[green]passed[/] (fails on: {policy})"
    failing = {v: n for v, n in report.counts.items() if v in report.fail_on}
    return f"[bold red]failed[/]: {counts_text(failing)} (fails on: {policy})"


def _tolerance_line(report: Report) -> str:
    parts = [f"{name}={_number(value, '.3g')}" for name, value in report.tolerance.items()]
    return f"tolerance: {', '.join(parts) or '-'}; reference: {report.reference_method or '-'}"


def _badness(entry: Entry) -> tuple[int, float]:
    """Sort key, worst first: a worse verdict, then a larger error/allowed."""
    ratio = entry.ratio if entry.ratio is not None and not math.isnan(entry.ratio) else math.inf
    return (-VERDICT_ORDER.index(Verdict(entry.verdict)), -ratio)


def _label(entry: Entry) -> str:
    if entry.kind == "node":
        return escape(f"d/d[{entry.node}]")
    wrt = entry.wrt or ()
    if entry.kind == "gradient":
        return f"d/d{wrt[0]}"
    return f"d2/d{wrt[0]}d{wrt[1]}"


def _number(value: Any, spec: str = ".10g") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)


def _whole(value: Any) -> str:
    """A value's shortest decimal that reads back as the same float (``repr``): two values
    that differ in their last bit print differently, and a point pastes back into ``--at``."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    text = repr(float(value))
    return text.removesuffix(".0")  # 2, not 2.0: whole numbers as people write them


def _ulps(entry: Entry) -> str:
    # Ulps count against a non-zero scale only: next to a zero reference they say nothing.
    if entry.ulp_error is None or entry.reference == 0:
        return "-"
    return _number(entry.ulp_error, ".3g")


def _blame(entry: Entry) -> str:
    if entry.blame is None:
        return "-"
    return escape(entry.blame) + (f" ({entry.phase})" if entry.phase else "")


def _entries_table(
    report: Report, console: Console, entries: list[Entry], title: str | None
) -> None:
    # Blame and detail are columns where there is room (a pipe gets PIPED_WIDTH), else a line
    # per entry below the table, so that no number is ever cut.
    wide = console.width >= WIDE_TABLE_MIN_CHARS
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column("point", justify="right", overflow="fold")
    table.add_column("entry", overflow="fold")
    for number in ("autograd", "reference", "err/allowed", "cond", "bits", "ulps"):
        table.add_column(number, justify="right", overflow="fold")
    table.add_column("verdict", overflow="fold")
    if wide:
        table.add_column("blame", overflow="fold")
        table.add_column("detail", overflow="fold", ratio=1)
    below: list[str] = []
    for entry in entries:
        point = ",".join(f"{k}={_whole(v)}" for k, v in report.points[entry.point].items())
        cells = [
            point,
            _label(entry),
            _whole(entry.autograd),
            _whole(entry.reference),
            _number(entry.ratio, ".3g"),
            _number(entry.condition, ".3g"),
            _number(entry.correct_bits, ".1f"),
            _ulps(entry),
            styled(entry.verdict),
        ]
        detail = escape(entry.detail) if entry.detail else ""
        if wide:
            cells += [_blame(entry), detail or "-"]
        elif entry.blame is not None or detail:
            why = "; ".join(part for part in (_blame(entry), detail) if part and part != "-")
            below.append(f"  {_label(entry)} at {point}: {why}")
        table.add_row(*cells)
    console.print(table)
    for line in below:
        console.print(line)


def _summary_table(report: Report, console: Console) -> None:
    verdicts = list(report.counts)  # the verdicts that occur, in table order
    table = Table(title="summary over all points", title_justify="left")
    table.add_column("entry")
    for verdict in verdicts:
        table.add_column(styled(verdict), justify="right")
    table.add_column("worst err/allowed", justify="right")
    groups: dict[str, list[Entry]] = {}
    for entry in report.entries:
        groups.setdefault(_label(entry), []).append(entry)
    for label, entries in groups.items():
        ratios = [e.ratio for e in entries if e.ratio is not None]
        table.add_row(
            label,
            *(str(sum(1 for e in entries if e.verdict == v)) for v in verdicts),
            _number(max(ratios) if ratios else None, ".3g"),
        )
    console.print(table)
