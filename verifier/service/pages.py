"""What the report pages (``/ui/``, docs/pages.md) show: a caller's jobs, one job's checks,
one check's entries worst first with the data of its plots, and verdicts by function and dtype.

Pages read entries only through ``repository.report_entries`` (never the stored column), at
most ``MAX_PAGE_ENTRIES`` of one check; the rest of a check's report through
``repository.report_documents``. Every read is scoped to the caller's ``api_key_id`` (None
while keys are off), and another key's job or check is "not found".
"""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from verifier.core.judge.verdict import VERDICT_ORDER
from verifier.errors import NotFoundError
from verifier.service.jobs import job_status
from verifier.service.reports import report_stats
from verifier.service.schemas import JobOut, Stats
from verifier.store import page_queries, repository
from verifier.store.documents import ReportView, report_number
from verifier.store.page_queries import JobCheckRow, JobFilters, ListedJob, StoredCheck
from verifier.store.repository import ReportFilters

MAX_PAGE_ENTRIES = 100_000
"""Entries of one check that its page reads for its plots and table; past it the page says
how many it left out."""
ENTRY_READ_BATCH = 10_000
"""Entries read from the database in one query."""
WORST_ENTRIES_SHOWN = 100
"""Rows of a check's entries table (the worst ones)."""
MIN_PLOTTED_ULPS = 1e-3
"""Errors below this many ulps (0 included: autograd exact) are drawn at this floor of the
log scale."""

_RANK = {str(verdict): place for place, verdict in enumerate(VERDICT_ORDER)}


def ordered(counts: Counter[str] | dict[str, int]) -> dict[str, int]:
    """``counts`` in the verdict table's order, best first, zeros left out."""
    known = {name: counts[name] for name in _RANK if counts.get(name)}
    others = {name: count for name, count in counts.items() if name not in _RANK and count}
    return {**known, **others}


@dataclass(frozen=True)
class JobSummary:
    """A job of the listing with its checks counted by verdict."""

    job: ListedJob
    counts: dict[str, int]

    @property
    def done(self) -> int:
        """Checks of the job that have a report."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class JobList:
    """One page of a caller's jobs, newest first."""

    jobs: list[JobSummary]
    page: int
    has_next: bool


def job_list(session: Session, filters: JobFilters, *, page: int, page_size: int) -> JobList:
    """Page ``page`` (from 0) of the jobs matching ``filters``, ``page_size`` per page."""
    rows = page_queries.list_jobs(session, filters, offset=page * page_size, limit=page_size + 1)
    shown = rows[:page_size]
    counts = page_queries.check_verdicts_of_jobs(session, [row.id for row in shown])
    return JobList(
        jobs=[JobSummary(job=row, counts=ordered(counts.get(row.id, {}))) for row in shown],
        page=page,
        has_next=len(rows) > page_size,
    )


@dataclass(frozen=True)
class JobPage:
    """One job, a page of its checks, and its checks counted by verdict (``pending``: no
    report yet)."""

    job: JobOut
    checks: list[JobCheckRow]
    counts: dict[str, int]
    page: int
    has_next: bool


def job_page(
    session: Session, job_id: uuid.UUID, api_key_id: uuid.UUID | None, *, page: int, page_size: int
) -> JobPage:
    """The job's page; NotFoundError for no job or another key's."""
    job = job_status(session, job_id, api_key_id)
    rows = page_queries.job_checks(session, job_id, offset=page * page_size, limit=page_size + 1)
    counts = ordered(page_queries.check_verdicts_of_jobs(session, [job_id]).get(job_id, {}))
    pending = job.progress.total - job.progress.done
    if pending > 0:
        counts["pending"] = pending
    return JobPage(
        job=job, checks=rows[:page_size], counts=counts, page=page, has_next=len(rows) > page_size
    )


@dataclass(frozen=True)
class PlotPoint:
    """One entry on a plot against a variable: the variable's value at the entry's point, the
    error in ulps (None: not drawn) and the entry's verdict."""

    x: float
    ulps: float | None
    verdict: str


@dataclass(frozen=True)
class HistogramBin:
    """Entries whose error in ulps is in [10**low, 10**high), by verdict."""

    low: float
    high: float
    counts: dict[str, int]


@dataclass
class CheckPage:
    """One check: its options, its report (without entries), its worst entries, and the data
    of its plots."""

    options: StoredCheck
    report: ReportView
    entries_read: int = 0
    entries_total: int = 0
    worst: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, list[PlotPoint]] = field(default_factory=dict)
    unplotted: int = 0
    histogram: list[HistogramBin] = field(default_factory=list)
    hessian: dict[tuple[str, str], tuple[float | None, str]] = field(default_factory=dict)


def check_page(session: Session, check_id: uuid.UUID, api_key_id: uuid.UUID | None) -> CheckPage:
    """The check's page; NotFoundError for no check or another key's."""
    options = page_queries.stored_check(session, check_id, api_key_id)
    if options is None:
        raise NotFoundError(f"no check {check_id}")
    if options.report_id is None:
        return CheckPage(options=options, report=ReportView.read(None, options.verdict))
    document = repository.report_documents(session, [options.report_id]).get(options.report_id)
    report = ReportView.read(document, options.verdict)
    entries = _read_entries(session, options)
    total = sum(report.counts.values()) if report.counts is not None else len(entries)
    page = CheckPage(
        options=options,
        report=report,
        entries_read=len(entries),
        entries_total=max(total, len(entries)),
    )
    page.worst = sorted(entries, key=_badness)[:WORST_ENTRIES_SHOWN]
    _plot_data(page, entries, report.points, report.variables or list(options.variables))
    return page


def _read_entries(session: Session, options: StoredCheck) -> list[dict[str, Any]]:
    assert options.report_id is not None
    entries: list[dict[str, Any]] = []
    index = 0
    while len(entries) < MAX_PAGE_ENTRIES:
        batch = repository.report_entries(
            session,
            [options.report_id],
            after=(options.position, index),
            limit=min(ENTRY_READ_BATCH, MAX_PAGE_ENTRIES - len(entries)),
            failing=False,
        )
        entries.extend(entry for _position, _index, entry in batch)
        if len(batch) < ENTRY_READ_BATCH:
            break
        index = batch[-1][1] + 1
    return entries


def _badness(entry: dict[str, Any]) -> tuple[int, float]:
    """Sort key, worst first: the verdict's rank, then the error over the tolerance."""
    rank = _RANK.get(str(entry.get("verdict")), len(_RANK))
    ratio = report_number(entry.get("ratio"))
    return (-rank, -(ratio if ratio is not None else -math.inf))


def entry_ulps(entry: dict[str, Any]) -> float | None:
    """An entry's error in ulps as drawn on a log scale: at least ``MIN_PLOTTED_ULPS``, inf for
    a non-finite one, None where it has none (the exact value is 0 or unknown)."""
    ulps = report_number(entry.get("ulp_error"))
    if ulps is None:
        return None
    return max(ulps, MIN_PLOTTED_ULPS)


def _plot_data(
    page: CheckPage, entries: list[dict[str, Any]], points: list[Any], variables: list[str]
) -> None:
    series: dict[str, list[PlotPoint]] = {name: [] for name in variables}
    bins: dict[int, Counter[str]] = defaultdict(Counter)
    worst_cell: dict[tuple[str, str], tuple[float | None, str]] = {}
    unplotted = 0
    for entry in entries:
        verdict = str(entry.get("verdict"))
        ulps = entry_ulps(entry)
        if ulps is None:
            unplotted += 1
        else:
            decade = math.floor(math.log10(ulps)) if math.isfinite(ulps) else _INF_DECADE
            bins[decade][verdict] += 1
        point = _point(points, entry.get("point"))
        for name in variables:
            x = report_number(point.get(name))
            if x is not None and math.isfinite(x):
                series[name].append(PlotPoint(x=x, ulps=ulps, verdict=verdict))
        wrt = entry.get("wrt")
        if entry.get("kind") == "hessian" and isinstance(wrt, list) and len(wrt) == 2:
            cell = (str(wrt[0]), str(wrt[1]))
            held = worst_cell.get(cell)
            if held is None or _worse(ulps, verdict, held):
                worst_cell[cell] = (ulps, verdict)
    page.series = series
    page.unplotted = unplotted
    page.hessian = worst_cell
    page.histogram = [
        HistogramBin(
            low=float(decade) if decade != _INF_DECADE else math.inf,
            high=float(decade + 1) if decade != _INF_DECADE else math.inf,
            counts=ordered(bins[decade]),
        )
        for decade in sorted(bins)
    ]


_INF_DECADE = 10**6
"""The histogram's bin of non-finite errors, after every finite one."""


def _point(points: list[Any], index: Any) -> dict[str, Any]:
    if isinstance(index, int) and 0 <= index < len(points) and isinstance(points[index], dict):
        found: dict[str, Any] = points[index]
        return found
    return {}


def _worse(ulps: float | None, verdict: str, held: tuple[float | None, str]) -> bool:
    held_ulps, held_verdict = held
    rank, held_rank = _RANK.get(verdict, 0), _RANK.get(held_verdict, 0)
    if rank != held_rank:
        return rank > held_rank
    return (ulps if ulps is not None else -1.0) > (held_ulps if held_ulps is not None else -1.0)


@dataclass(frozen=True)
class StatsPage:
    """A caller's reports counted by verdict, per function and per dtype."""

    by_function: Stats
    by_dtype: Stats


def stats_page(session: Session, api_key_id: uuid.UUID | None) -> StatsPage:
    """Verdict counts of the caller's reports by function and by dtype."""
    filters = ReportFilters(api_key_id=api_key_id)
    return StatsPage(
        by_function=report_stats(session, filters, "function"),
        by_dtype=report_stats(session, filters, "dtype"),
    )


@dataclass(frozen=True)
class FleetCounts:
    """What ``/metrics`` reads from the database at each scrape (fleet-wide, every key's)."""

    jobs: int
    checks_by_dtype: dict[str, int]
    finished_by_verdict: dict[str, int]
    unfinished: dict[tuple[str, str], int]
    durations: list[page_queries.DurationCounts]


def fleet_counts(session: Session, duration_bounds_s: list[float]) -> FleetCounts:
    """Jobs and checks submitted, checks finished by verdict, unfinished checks per queue and
    status, and check durations per dtype and device, as the database holds them now."""
    return FleetCounts(
        jobs=page_queries.count_jobs(session),
        checks_by_dtype=page_queries.count_checks_by_dtype(session),
        finished_by_verdict=page_queries.count_reports_by_verdict(session),
        unfinished=page_queries.unfinished_checks_by_queue(session),
        durations=page_queries.check_durations(session, duration_bounds_s),
    )
