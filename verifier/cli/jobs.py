"""Commands that talk to a running service over its HTTP API: ``submit``, ``status``,
``jobs``, ``cancel``, ``reports`` and ``stats``.

A job is named by its whole id or by a prefix of at least 8 hex digits (as the commands print
it: ``job beb21642``), resolved among the caller's jobs as git resolves a short commit id.

``submit --wait`` exits as ``check`` does, over every check of the job: 0 when the job passed,
1 when a check has an entry with a verdict of its fail-on policy, 2 when a check could not run
or the job was cancelled.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from verifier.cli.client import CliError
from verifier.cli.toolkit import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    FAIL_ON_HELP,
    STRICT_HELP,
    VERDICT_HELP,
    JsonOption,
    UrlOption,
    api_client,
    console,
    errors,
    friendly,
    print_json,
)
from verifier.core.judge.verdict import Verdict
from verifier.ids import SHORT_ID_CHARS

DEFAULT_WAIT_TIMEOUT_S = 3600.0
"""Hex digits of a job id the commands print where the whole id is not needed."""
JOB_STATUSES = "queued, running, done, error or cancelled"


@friendly
def submit(
    file: Annotated[Path, typer.Argument(help="JSON lines of checks, or an AI Feynman CSV")],
    url: UrlOption = None,
    file_format: Annotated[str, typer.Option("--format", help="auto, jsonl or csv")] = "auto",
    samples: Annotated[int, typer.Option(min=1, help="points drawn per CSV equation")] = 10,
    dtype: Annotated[str | None, typer.Option(help="dtype for every check")] = None,
    seed: Annotated[int, typer.Option(help="sampling seed for CSV equations")] = 0,
    label: Annotated[str | None, typer.Option(help="a label for the job")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait, with a progress bar")] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits")] = DEFAULT_WAIT_TIMEOUT_S,
    strict: Annotated[
        bool, typer.Option("--strict", help=f"For every check: {STRICT_HELP}")
    ] = False,
    fail_on: Annotated[
        str | None, typer.Option("--fail-on", help=f"For every check: {FAIL_ON_HELP}")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a file of checks as one job; with --wait, show progress then a summary."""
    from verifier.cli.inputs import read_checks
    from verifier.cli.render import print_job_summary, wait_for_job
    from verifier.cli.style import parse_fail_on

    failing = parse_fail_on(fail_on)
    lines: list[int] = []
    checks = read_checks(
        file, file_format=file_format, samples=samples, dtype=dtype, seed=seed, lines=lines
    )
    if strict:
        checks = [{**check, "strict": True} for check in checks]
    if failing is not None:
        checks = [{**check, "fail_on": failing} for check in checks]
    with api_client(url) as client:
        try:
            accepted = client.submit({"checks": checks, "label": label or file.name})
        except CliError as error:
            raise _at_lines(error, file, lines) from None
        job_id = str(accepted["id"])
        if not wait:
            if as_json:
                print_json(accepted)
            else:
                console.print(f"job {job_id} queued ({len(checks)} checks)")
                console.print(f"follow it with: derivcheck status {job_id[:SHORT_ID_CHARS]}")
            return
        target = errors if as_json else console
        job = wait_for_job(client, job_id, target, poll_interval_s=0.5, timeout_s=timeout)
        report = client.report(job_id, entries="all" if as_json else "none")
    if as_json:
        print_json(report)
    else:
        print_job_summary(console, job, report)
    _exit_for(job)


def _at_lines(error: CliError, file: Path, lines: list[int]) -> CliError:
    """The API's refusal of a submission, each problem of a check led by the check's place in
    the file, ``FILE:LINE`` (1-based, as editors count); the API counts checks from 0, as
    their place in the request's ``checks`` list (``loc``: body, checks, index, field)."""
    placed = []
    for problem in error.problems:
        loc = problem.get("loc") or []
        index = loc[2] if len(loc) > 2 and loc[:2] == ["body", "checks"] else None
        if isinstance(index, int) and 0 <= index < len(lines):
            placed.append(f"{file}:{lines[index]}: {problem.get('msg')}")
    if not placed:
        return error
    return CliError("; ".join(placed), error.problems)


def _exit_for(job: dict[str, Any]) -> None:
    """Exit 2 when a check could not run or the job was cancelled, 1 when the job did not
    pass its checks' fail-on."""
    if job.get("status") == "cancelled":
        errors.print(f"[red]error:[/] job {job['id']} was cancelled", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    if job.get("verdict") == Verdict.ERROR:  # the job's status is then "error" too
        raise typer.Exit(EXIT_BAD_INPUT)
    if job.get("passed") is False:
        raise typer.Exit(EXIT_FAILED)


@friendly
def status(
    job: Annotated[str, typer.Argument(help="job id, or its first 8 or more hex digits")],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job's status, verdict and progress; once checks are done, their summary."""
    from verifier.cli.render import job_table, print_job_summary

    with api_client(url) as client:
        job = client.resolve_job_id(job)
        state = client.job(job)
        report = None if as_json or not state["progress"]["done"] else client.report(job)
    if as_json:
        print_json(state)
        return
    console.print(job_table(state))
    if report is not None:
        print_job_summary(console, state, report)


@friendly
def reports(
    url: UrlOption = None,
    verdict: Annotated[str | None, typer.Option(help=VERDICT_HELP)] = None,
    expression: Annotated[str | None, typer.Option(help="substring of the expression")] = None,
    function: Annotated[str | None, typer.Option(help="a function used, e.g. sinc")] = None,
    dtype: Annotated[str | None, typer.Option(help="float64, float32, ...")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda")] = None,
    job: Annotated[str | None, typer.Option(help="job id or its first 8+ hex digits")] = None,
    since: Annotated[datetime | None, typer.Option(help="written at or after")] = None,
    until: Annotated[datetime | None, typer.Option(help="written before")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="reports per page")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page")] = None,
    as_json: JsonOption = False,
) -> None:
    """List stored reports, newest first, with filters."""
    from verifier.cli.render import reports_blamed_table, reports_table

    params = {
        "verdict": verdict,
        "expression": expression,
        "function": function,
        "dtype": dtype,
        "device": device,
        "job": job,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "limit": limit,
        "cursor": cursor,
    }
    with api_client(url) as client:
        if job is not None:
            params["job"] = client.resolve_job_id(job)
        page = client.reports(params)
    if as_json:
        print_json(page)
        return
    console.print(reports_table(page))
    blamed = reports_blamed_table(page)
    if blamed is not None:
        console.print(blamed)
    if page["next_cursor"]:
        console.print(f"more: derivcheck reports ... --cursor {page['next_cursor']}")


@friendly
def stats(
    url: UrlOption = None,
    by: Annotated[
        str | None, typer.Option("--by", help="function, dtype, device or verdict")
    ] = None,
    verdict: Annotated[str | None, typer.Option(help=f"only this verdict: {VERDICT_HELP}")] = None,
    dtype: Annotated[str | None, typer.Option(help="only this dtype")] = None,
    device: Annotated[str | None, typer.Option(help="only this device")] = None,
    function: Annotated[str | None, typer.Option(help="only checks calling it")] = None,
    job: Annotated[str | None, typer.Option(help="only this job (id or 8+ hex digits)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Count reports by verdict, grouped by function, dtype or device."""
    from verifier.cli.render import stats_table

    params = {
        "group_by": by,
        "verdict": verdict,
        "dtype": dtype,
        "device": device,
        "function": function,
        "job": job,
    }
    with api_client(url) as client:
        if job is not None:
            params["job"] = client.resolve_job_id(job)
        counts = client.stats(params)
    if as_json:
        print_json(counts)
    else:
        console.print(stats_table(counts))


@friendly
def jobs(
    url: UrlOption = None,
    job_status: Annotated[
        str | None, typer.Option("--status", help=f"only jobs that are {JOB_STATUSES}")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="jobs per page")] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page")] = None,
    as_json: JsonOption = False,
) -> None:
    """List your jobs, newest first."""
    from verifier.cli.render import jobs_table

    with api_client(url) as client:
        page = client.jobs({"status": job_status, "limit": limit, "cursor": cursor})
    if as_json:
        print_json(page)
        return
    console.print(jobs_table(page))
    if page["next_cursor"]:
        console.print(f"more: derivcheck jobs --cursor {page['next_cursor']}")


@friendly
def cancel(
    job: Annotated[str, typer.Argument(help="job id, or its first 8 or more hex digits")],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job: its queued checks never run; running ones finish and keep their reports."""
    with api_client(url) as client:
        job_id = client.resolve_job_id(job)
        state = client.cancel(job_id)
    if as_json:
        print_json(state)
        return
    done, total = state["progress"]["done"], state["progress"]["total"]
    if state["status"] == "cancelled":
        console.print(
            f"job {job_id} cancelled: {done} of {total} checks have reports; checks that "
            "were running finish and keep theirs"
        )
    else:
        console.print(f"job {job_id} had already finished ({state['status']}); nothing to cancel")
