"""``derivcheck survey``: every covered torch operation over sampled points, in every dtype.

Runs inline in worker processes (no server) and writes the findings table as Markdown and
JSON (verifier/core/survey.py says what a row holds). Exit status 0 when it ran, 2 for bad
options.
"""

from __future__ import annotations

import difflib
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from verifier.cli.toolkit import JsonOption, console, errors, fail, print_json
from verifier.core.judge.verdict import Verdict
from verifier.core.ops import OPERATIONS
from verifier.errors import VerifierError

if TYPE_CHECKING:  # the survey loads numpy: imported when it runs, not for --help
    from verifier.core.survey import Finding

CPU_CAPABILITIES = ("default", "avx2", "avx512")
"""The values of ATEN_CPU_CAPABILITY a survey may run on (torch's x86 kernel paths)."""
SURVEY_POINTS = 1000
"""verifier.core.survey.DEFAULT_SURVEY_POINTS, written here so that --help imports no numpy
(tests/cli/test_help.py holds the two equal)."""
REGION_POINTS = 100
"""verifier.core.survey_points.DEFAULT_REGION_POINTS, for the same reason."""
SUGGESTIONS = 3


def survey(
    output: Annotated[
        Path, typer.Option(help="Markdown table to write; the JSON goes beside it (.json).")
    ] = Path("survey.md"),
    points: Annotated[
        int, typer.Option(help="Sampled points per operation and dtype.")
    ] = SURVEY_POINTS,
    region_points: Annotated[
        int,
        typer.Option(
            help="Points per special region (pole, kink, tail ...) of each operation and dtype."
        ),
    ] = REGION_POINTS,
    dtype: Annotated[
        list[str] | None, typer.Option("--dtype", help="A dtype (repeat); default all four.")
    ] = None,
    operation: Annotated[
        list[str] | None,
        typer.Option(
            "--op", help="An operation's row name, e.g. polygamma_n1 (repeat); default all."
        ),
    ] = None,
    list_ops: Annotated[
        bool,
        typer.Option("--list-ops", help="List the operations' row names for --op, then exit."),
    ] = False,
    device: Annotated[
        list[str] | None,
        typer.Option("--device", help="cpu, cuda or cuda:N (repeat for several); default cpu."),
    ] = None,
    modes: Annotated[
        str | None,
        typer.Option(
            "--modes",
            help="Further derivative paths, a row each: all, or names such as "
            "autograd:forward,func:forward-over-reverse.",
        ),
    ] = None,
    capability: Annotated[
        list[str] | None,
        typer.Option(
            "--cpu-capability",
            help="Run the survey again on this CPU kernel path of torch (repeat): default, "
            "avx2 or avx512; each row names the path it ran on.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Survey torch's derivative accuracy, operation by operation and dtype by dtype."""
    if list_ops:
        _list_operations(as_json)
        return
    from verifier.core.floats.dtypes import is_device
    from verifier.core.survey import SURVEY_DTYPES, machine, markdown, run_survey, to_json

    progress_console = errors
    dtypes = list(dtype or SURVEY_DTYPES)
    unknown = sorted(set(dtypes) - set(SURVEY_DTYPES))
    if unknown:
        fail(f"unknown dtype {', '.join(unknown)}; choose from {', '.join(SURVEY_DTYPES)}")
    names = {op.name for op in OPERATIONS}
    missing = sorted(set(operation or []) - names)
    if missing:
        unknown_ops = _with_suggestions(missing, names)
        fail(f"unknown operation {unknown_ops}; see derivcheck survey --list-ops")
    devices = list(dict.fromkeys(device or ["cpu"]))
    strange = [name for name in devices if not is_device(name)]
    if strange:
        fail(f"unknown device {', '.join(strange)}; choose cpu, cuda or cuda:N")
    if any(name != "cpu" for name in devices) and not _cuda_here():
        fail("--device cuda: CUDA is not available here")
    if points < 1 or workers < 1 or region_points < 0:
        fail("--points and --workers must be at least 1, --region-points at least 0")
    capabilities = list(dict.fromkeys(capability or []))
    strange_paths = sorted(set(capabilities) - set(CPU_CAPABILITIES))
    if strange_paths:
        fail(
            f"unknown CPU kernel path {', '.join(strange_paths)}; choose from "
            f"{', '.join(CPU_CAPABILITIES)}"
        )
    if modes is not None:
        from verifier.core.program.modes import parse_modes

        try:
            parse_modes(modes)
        except VerifierError as error:
            fail(str(error))
    chosen = [op for op in OPERATIONS if not operation or op.name in operation]
    started = time.perf_counter()
    findings: list[Finding] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=progress_console,
    ) as progress:
        runs = max(1, len(capabilities))
        task = progress.add_task("survey", total=len(chosen) * len(dtypes) * len(devices) * runs)

        def advance(finding: Finding) -> None:
            shown = f"{finding.operation} {finding.dtype} {finding.device}"
            progress.update(task, advance=1, description=shown)

        findings = run_survey(
            chosen,
            dtypes,
            points=points,
            seed=seed,
            workers=workers,
            progress=advance,
            devices=devices,
            region_points=region_points,
            modes=modes,
            capabilities=capabilities,
        )
    seconds = time.perf_counter() - started
    where = " and ".join("CPU" if name == "cpu" else name.upper() for name in devices)
    bits = machine()
    meta = {
        "title": f"torch {bits['torch']} on {platform.machine()} {where}",
        "command": "derivcheck survey " + shlex.join(sys.argv[2:]),
        **bits,
        "device": ", ".join(devices),
        "points": points,
        "region_points": region_points,
        "modes": modes or "default",
        "cpu_capabilities": ", ".join(capabilities) or bits["cpu_capability"],
        "seconds": round(seconds, 1),
        "workers": workers,
    }
    output.write_text(markdown(findings, meta), encoding="utf-8")
    document = to_json(findings, meta)
    output.with_suffix(".json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    if as_json:
        print_json(document)
    failing = sum(1 for f in findings if f.counts.get(Verdict.FAIL))
    progress_console.print(
        f"{len(findings)} rows, {failing} with failures, in {seconds:.0f} s: {output} and "
        f"{output.with_suffix('.json')}"
    )


def _with_suggestions(missing: list[str], names: set[str]) -> str:
    """The unknown names, each with the closest row names (difflib), e.g. ``polygamma1 (did
    you mean polygamma_n1?)``."""
    shown = []
    for name in missing:
        close = difflib.get_close_matches(name, sorted(names), n=SUGGESTIONS)
        shown.append(f"{name} (did you mean {' or '.join(close)}?)" if close else name)
    return ", ".join(shown)


def _list_operations(as_json: bool) -> None:
    """Every row name --op takes, with what it checks and the OpInfo names it covers."""
    rows = [
        {"op": op.name, "expression": op.expression, "opinfo": list(op.opinfo)} for op in OPERATIONS
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="survey operations (--op)", title_justify="left")
    table.add_column("op", no_wrap=True)
    table.add_column("checks")
    table.add_column("OpInfo names")
    for op in OPERATIONS:
        table.add_row(op.name, escape(op.expression), ", ".join(op.opinfo))
    console.print(table)


def _cuda_here() -> bool:
    """Whether CUDA is available, asked in a child process: this one starts the survey's
    workers and must not initialise CUDA itself."""
    from verifier.cli.processes import ask_torch

    return ask_torch("torch.cuda.is_available()") == "True"
