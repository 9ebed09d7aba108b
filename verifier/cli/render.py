"""Rich output of the service commands: progress while a job runs, and summary tables."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from verifier.cli.client import ApiClient, CliError
from verifier.cli.style import blamed_table, counts_text, styled
from verifier.core.judge.verdict import VERDICT_ORDER, ordered_counts
from verifier.ids import SHORT_ID_CHARS

FINISHED_STATUSES = frozenset({"done", "error", "cancelled"})
EXPRESSION_COLUMN_CHARS = 48
REASON_CHARS = 120


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.3g}"


def _short(text: str, limit: int = EXPRESSION_COLUMN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def wait_for_job(
    client: ApiClient,
    job_id: str,
    console: Console,
    *,
    poll_interval_s: float,
    timeout_s: float,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Poll the job until it is finished, with a progress bar; returns the final job."""
    deadline = time.monotonic() + timeout_s
    job = client.job(job_id)
    with Progress(
        TextColumn("[bold]job {task.fields[short]}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
        transient=False,
    ) as progress:
        task = progress.add_task(
            "job",
            total=job["progress"]["total"],
            short=job_id[:SHORT_ID_CHARS],
            status=job["status"],
        )
        warned = False
        while True:
            progress.update(task, completed=job["progress"]["done"], status=job["status"])
            if job["status"] in FINISHED_STATUSES:
                return job
            if job.get("waiting") and not warned:
                # The job will not move until a worker serves its queue: say so at once
                # instead of polling in silence until the timeout.
                progress.console.print(
                    f"[yellow]warning:[/] job {job_id[:SHORT_ID_CHARS]} is {job['waiting']}; "
                    "start one with `derivcheck worker` (its --queues)",
                    highlight=False,
                )
                warned = True
            if time.monotonic() > deadline:
                raise CliError(
                    f"job {job_id} is not finished after {timeout_s:g} s "
                    f"({job['progress']['done']} of {job['progress']['total']} checks); "
                    f"follow it with `derivcheck status {job_id}`"
                )
            time.sleep(poll_interval_s)
            job = client.job(job_id)


def _passed(value: Any) -> str:
    if value is None:
        return "-"
    return "[green]yes[/]" if value else "[bold red]no[/]"


def summary_table(report: dict[str, Any]) -> Table:
    """One row per check of a job report: verdict, whether it passed its fail-on, entries per
    verdict and the worst error/allowed; reasons as a caption."""
    checks = report["checks"]
    table = Table(title=f"job {report['job']['id']}", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True, min_width=2)
    table.add_column("expression", no_wrap=True, overflow="ellipsis", max_width=30)
    table.add_column("dtype", no_wrap=True, min_width=8)
    table.add_column("verdict", no_wrap=True, min_width=9)
    table.add_column("passed", no_wrap=True)
    table.add_column("entries")
    table.add_column("worst err/allowed", justify="right", no_wrap=True)
    reasons: list[str] = []
    for check in checks:
        worst = check.get("worst") or {}
        table.add_row(
            str(check.get("index")),
            check.get("expression", ""),
            check.get("dtype", "-"),
            styled(check.get("verdict")),
            _passed(check.get("passed")),
            counts_text(check.get("counts") or {}),
            _number(worst.get("ratio")),
        )
        if check.get("reason"):
            reasons.append(f"#{check.get('index')}: {_short(check['reason'], REASON_CHARS)}")
    if reasons:
        table.caption = "\n".join(reasons)
        table.caption_justify = "left"
    return table


def entry_counts(checks: list[dict[str, Any]]) -> dict[str, int]:
    """Entries per verdict over every check, in table order."""
    total: Counter[str] = Counter()
    for check in checks:
        total.update(check.get("counts") or {})
    return ordered_counts(total)


def job_blamed_table(checks: list[dict[str, Any]]) -> Table | None:
    """The blamed nodes of every check of a job report, or None when nothing is blamed."""
    rows = [
        {**row, "check": check.get("index")}
        for check in checks
        for row in check.get("blamed") or []
    ]
    return blamed_table(rows, title="blamed operations", check_column="#") if rows else None


def verdict_line(job: Mapping[str, Any], checks: list[dict[str, Any]]) -> str:
    """The job's verdict, whether it passed, and its entries per verdict."""
    failed = sum(1 for check in checks if check.get("passed") is False)
    if job.get("passed") is None:
        result = "not finished"
    elif job["passed"]:
        result = "[green]passed[/]"
    else:
        result = f"[bold red]failed[/] ({failed} of {len(checks)} checks)"
    return (
        f"job verdict: {styled(job.get('verdict'))}, {result}; "
        f"entries: {counts_text(entry_counts(checks))}"
    )


def print_job_summary(console: Console, job: Mapping[str, Any], report: dict[str, Any]) -> None:
    """The summary of a job's report: a row per check, the blamed nodes, the verdict line."""
    console.print(summary_table(report))
    blamed = job_blamed_table(report["checks"])
    if blamed is not None:
        console.print(blamed)
    console.print(verdict_line(job, report["checks"]))


def job_table(job: dict[str, Any]) -> Table:
    """A job's state as a two-column table."""
    table = Table(show_header=False, title=f"job {job['id']}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    progress = job["progress"]
    table.add_row("status", job["status"])
    table.add_row("verdict", styled(job.get("verdict")))
    table.add_row("passed", _passed(job.get("passed")))
    table.add_row("progress", f"{progress['done']} of {progress['total']} checks")
    table.add_row("label", Text(job.get("label") or "-"))  # a label is text, never markup
    table.add_row("created", job["created_at"])
    table.add_row("finished", job.get("finished_at") or "-")
    return table


def jobs_table(page: dict[str, Any]) -> Table:
    """One row per job of a listing page, its id whole (for copying)."""
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("verdict", no_wrap=True, min_width=9)
    table.add_column("passed", no_wrap=True)
    table.add_column("checks", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("label", overflow="ellipsis", max_width=30)
    for job in page["items"]:
        progress = job["progress"]
        table.add_row(
            str(job["id"]),
            job["status"],
            styled(job.get("verdict")),
            _passed(job.get("passed")),
            f"{progress['done']}/{progress['total']}",
            str(job["created_at"])[:19],
            Text(job.get("label") or "-"),
        )
    return table


def reports_table(page: dict[str, Any]) -> Table:
    """One row per report of a listing page."""
    table = Table()
    table.add_column("job", no_wrap=True, min_width=8)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("expression", no_wrap=True, overflow="ellipsis", min_width=20, max_width=30)
    table.add_column("functions", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("dtype", no_wrap=True, min_width=8)
    table.add_column("device", no_wrap=True)
    table.add_column("verdict", no_wrap=True, min_width=9)
    table.add_column("passed", no_wrap=True)
    table.add_column("entries")
    table.add_column("worst err/allowed", justify="right", no_wrap=True)
    for item in page["items"]:
        table.add_row(
            item["job"][:SHORT_ID_CHARS],
            str(item["index"]),
            item["expression"],
            ",".join(item["functions"]),
            item["dtype"],
            item["device"],
            styled(item["verdict"]),
            _passed(item.get("passed")),
            counts_text(item.get("counts") or {}),
            _number((item.get("worst") or {}).get("ratio")),
        )
    return table


def reports_blamed_table(page: dict[str, Any]) -> Table | None:
    """The blamed nodes of a listing page's reports, or None when nothing is blamed."""
    rows = [
        {**row, "check": f"{item['job'][:SHORT_ID_CHARS]} #{item['index']}"}
        for item in page["items"]
        for row in item.get("blamed") or []
    ]
    return blamed_table(rows, title="blamed operations", check_column="check") if rows else None


def stats_table(stats: dict[str, Any]) -> Table:
    """Reports per verdict (the verdicts that occur, in table order), one row per group (or
    one row in all)."""
    rows = stats["groups"] if stats.get("group_by") else [{"key": "all", **stats}]
    found = {verdict for row in rows for verdict, count in row["counts"].items() if count}
    verdicts = [str(v) for v in VERDICT_ORDER if v in found]
    verdicts += sorted(found - set(verdicts))
    table = Table()
    table.add_column(stats.get("group_by") or "all")
    for verdict in verdicts:
        table.add_column(styled(verdict), justify="right")
    table.add_column("total", justify="right")
    for row in rows:
        counts = row["counts"]
        table.add_row(
            str(row["key"] if row["key"] is not None else "(none)"),
            *(str(counts.get(verdict, 0)) for verdict in verdicts),
            str(row["total"]),
        )
    return table
