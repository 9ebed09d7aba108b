"""Rich output of the service commands: progress while a job runs, and summary tables."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from verifier.cli.client import ApiClient, CliError
from verifier.verdicts import VERDICT_ORDER

FINISHED_STATUSES = frozenset({"done", "error"})
EXPRESSION_COLUMN_CHARS = 48
REASON_CHARS = 120
VERDICT_STYLES = {
    "pass": "green",
    "undefined": "yellow",
    "domain": "yellow",
    "nonfinite": "red",
    "fail": "bold red",
    "error": "magenta",
}


def styled(verdict: str | None) -> str:
    """``verdict`` in its colour."""
    if verdict is None:
        return "-"
    return f"[{VERDICT_STYLES.get(verdict, 'white')}]{verdict}[/]"


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
            "job", total=job["progress"]["total"], short=job_id[:8], status=job["status"]
        )
        while True:
            progress.update(task, completed=job["progress"]["done"], status=job["status"])
            if job["status"] in FINISHED_STATUSES:
                return job
            if time.monotonic() > deadline:
                raise CliError(
                    f"job {job_id} is not finished after {timeout_s:g} s "
                    f"({job['progress']['done']} of {job['progress']['total']} checks); "
                    f"follow it with `derivcheck status {job_id}`"
                )
            time.sleep(poll_interval_s)
            job = client.job(job_id)


def summary_table(report: dict[str, Any]) -> Table:
    """One row per check of a job report: verdict and worst errors; reasons as a caption."""
    checks = report["checks"]
    table = Table(title=f"job {report['job']['id']}", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True, min_width=2)
    table.add_column("expression", no_wrap=True, overflow="ellipsis", max_width=30)
    table.add_column("dtype", no_wrap=True, min_width=8)
    table.add_column("verdict", no_wrap=True, min_width=9)
    table.add_column("worst ulp", justify="right", no_wrap=True, min_width=9)
    reasons: list[str] = []
    for check in checks:
        worst = check.get("worst") or {}
        table.add_row(
            str(check.get("index")),
            check.get("expression", ""),
            check.get("dtype", "-"),
            styled(check.get("verdict")),
            _number(worst.get("ulp_error")),
        )
        if check.get("reason"):
            reasons.append(f"#{check.get('index')}: {_short(check['reason'], REASON_CHARS)}")
    if reasons:
        table.caption = "\n".join(reasons)
        table.caption_justify = "left"
    return table


def verdict_line(checks: list[dict[str, Any]]) -> str:
    """Counts by verdict, e.g. ``3 pass, 1 fail``."""
    counts = Counter(check.get("verdict") for check in checks)
    parts = [f"{counts[v]} {styled(v)}" for v in VERDICT_ORDER if counts[v]]
    return ", ".join(parts) if parts else "no reports"


def job_table(job: dict[str, Any]) -> Table:
    """A job's state as a two-column table."""
    table = Table(show_header=False, title=f"job {job['id']}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    progress = job["progress"]
    table.add_row("status", job["status"])
    table.add_row("verdict", styled(job.get("verdict")))
    table.add_row("progress", f"{progress['done']} of {progress['total']} checks")
    table.add_row("label", job.get("label") or "-")
    table.add_row("created", job["created_at"])
    table.add_row("finished", job.get("finished_at") or "-")
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
    table.add_column("worst ulp", justify="right", no_wrap=True, min_width=9)
    for item in page["items"]:
        table.add_row(
            item["job"][:8],
            str(item["index"]),
            item["expression"],
            ",".join(item["functions"]),
            item["dtype"],
            item["device"],
            styled(item["verdict"]),
            _number(item["worst"]["ulp_error"]),
        )
    return table


def stats_table(stats: dict[str, Any]) -> Table:
    """Counts by verdict, one row per group (or one row in all)."""
    table = Table()
    table.add_column(stats.get("group_by") or "all")
    for verdict in VERDICT_ORDER:
        table.add_column(verdict, justify="right")
    table.add_column("total", justify="right")
    rows = stats["groups"] if stats.get("group_by") else [{"key": "all", **stats}]
    for row in rows:
        counts = row["counts"]
        table.add_row(
            str(row["key"] if row["key"] is not None else "(none)"),
            *(str(counts.get(verdict, 0)) for verdict in VERDICT_ORDER),
            str(row["total"]),
        )
    return table
