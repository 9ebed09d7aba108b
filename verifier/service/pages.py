"""What the report pages (``/ui/``, docs/pages.md) show: a caller's jobs, one job's checks,
one check's entries worst first with the data of its plots, and verdicts by function and dtype.

A check's page reads a bounded sample of its report, whatever the report's size: the list of
its stored blocks (no bytes), then at most ``SAMPLE_BLOCKS`` of them, decoded: the first
block and the blocks with the most non-passing entries (:func:`sample_blocks`). Its plots,
histogram, Hessian matrix and worst entries are of that sample, and the page says how many
entries the report holds and links to the paged JSON report for the rest. Every read is
scoped to the caller's ``api_key_id`` (None while keys are off), and another key's job or
check is "not found".
"""

from __future__ import annotations

import math
import shlex
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from verifier.core.judge.verdict import VERDICT_ORDER
from verifier.errors import NotFoundError
from verifier.service.jobs import job_status
from verifier.service.reports import ENTRY_PLACES, encode_cursor, report_stats
from verifier.service.schemas import JobOut, Stats
from verifier.store import page_queries, repository
from verifier.store.blocks import BLOCK_ENTRIES, decode
from verifier.store.documents import ReportView, report_number
from verifier.store.page_queries import (
    JobCheckRow,
    JobFilters,
    ListedJob,
    StoredBlock,
    StoredCheck,
)
from verifier.store.repository import ReportFilters

FIRST_BLOCKS_READ = 1
"""Blocks from the start of a report that its check page reads: its first entries."""
FAILING_BLOCKS_READ = 3
"""Further blocks a check page reads: those with the most non-passing entries."""
SAMPLE_BLOCKS = FIRST_BLOCKS_READ + FAILING_BLOCKS_READ
"""Stored blocks one check page decodes at most, whatever the size of the report."""
MAX_PAGE_ENTRIES = SAMPLE_BLOCKS * BLOCK_ENTRIES
"""Entries of one check that its page reads at most (16,384): its plots, histogram, Hessian
matrix and worst entries are of these; the page says how many the report holds."""
WORST_ENTRIES_SHOWN = 100
"""Rows of a check's entries table (the worst ones)."""
MIN_PLOTTED_ULPS = 1e-3
"""Errors below this many ulps (0 included: autograd exact) are drawn at this floor of the
log scale."""
MAX_PLOTTED_VARIABLES = 8
"""Input variables a check page plots errors against (the first ones); the page names how
many more there are."""
MAX_HESSIAN_VARIABLES = 12
"""Rows and columns of the Hessian matrix a check page draws (the first variables')."""

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
class BlamedOperation:
    """A node blamed by checks of a job: its entries of one verdict in one phase, summed over
    those checks, and their positions in the job."""

    node: str
    phase: str
    verdict: str
    entries: int
    checks: list[int]


def blamed_operations(checks: list[JobCheckRow]) -> list[BlamedOperation]:
    """The nodes the ``checks`` blame, one row per (node, phase, verdict) with its entries
    summed over the checks; the most entries first (then by node, phase and verdict)."""
    entries: Counter[tuple[str, str, str]] = Counter()
    positions: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for check in checks:
        for row in check.blamed:
            key = (
                str(row.get("node") or "-"),
                str(row.get("phase") or "-"),
                str(row.get("verdict")),
            )
            count = row.get("entries")
            entries[key] += count if isinstance(count, int) else 0
            if check.position not in positions[key]:
                positions[key].append(check.position)
    return [
        BlamedOperation(*key, entries=entries[key], checks=positions[key])
        for key in sorted(positions, key=lambda key: (-entries[key], key))
    ]


@dataclass(frozen=True)
class JobPage:
    """One job, a page of its checks, its checks counted by verdict (``pending``: no report
    yet), and the operations that page's checks blame."""

    job: JobOut
    checks: list[JobCheckRow]
    counts: dict[str, int]
    page: int
    has_next: bool
    blamed: list[BlamedOperation] = field(default_factory=list)


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
    shown = rows[:page_size]
    return JobPage(
        job=job,
        checks=shown,
        counts=counts,
        page=page,
        has_next=len(rows) > page_size,
        blamed=blamed_operations(shown),
    )


@dataclass(frozen=True)
class PlotPoint:
    """One entry on a plot against a variable: the variable's value at the entry's point, the
    error in ulps (None: not drawn), the entry's verdict and its kind (gradient, hessian...)."""

    x: float
    ulps: float | None
    verdict: str
    kind: str = "gradient"
    entry: str = ""
    """What the entry is of: ``gradient x``, ``hessian x,y``, ``node <name>``."""
    autograd: float | None = None
    exact: float | None = None
    ratio: float | None = None
    """The error over the allowed error (err/allowed)."""


@dataclass(frozen=True)
class HistogramBin:
    """Entries whose error in ulps is in [10**low, 10**high), by verdict."""

    low: float
    high: float
    counts: dict[str, int]


@dataclass
class CheckPage:
    """One check: its options, its report (without entries), a bounded sample of its entries
    (their number, the worst of them, the data of their plots) and links to the rest."""

    options: StoredCheck
    report: ReportView
    entries_read: int = 0
    entries_total: int = 0
    failing_total: int = 0
    blocks_read: int = 0
    blocks_total: int = 0
    worst: list[dict[str, Any]] = field(default_factory=list)
    plotted: list[str] = field(default_factory=list)
    variables_total: int = 0
    series: dict[str, list[PlotPoint]] = field(default_factory=dict)
    unplotted: int = 0
    histogram: list[HistogramBin] = field(default_factory=list)
    hessian_variables: list[str] = field(default_factory=list)
    hessian: dict[tuple[str, str], tuple[float | None, str]] = field(default_factory=dict)
    every_entry_url: str = ""
    failing_entries_url: str = ""

    @property
    def sampled(self) -> bool:
        """Whether the page shows fewer entries than the report holds."""
        return self.entries_read < self.entries_total


def check_page(
    session: Session,
    check_id: uuid.UUID,
    api_key_id: uuid.UUID | None,
    *,
    json_page_entries: int,
) -> CheckPage:
    """The check's page, from at most ``SAMPLE_BLOCKS`` stored blocks of its report; its
    links to the JSON report ask for ``json_page_entries`` a page. NotFoundError for no
    check or another key's."""
    options = page_queries.stored_check(session, check_id, api_key_id)
    if options is None:
        raise NotFoundError(f"no check {check_id}")
    if options.report_id is None:
        return CheckPage(options=options, report=ReportView.read(None, options.verdict))
    document = repository.report_documents(session, [options.report_id]).get(options.report_id)
    report = ReportView.read(document, options.verdict)
    stored = page_queries.report_blocks(session, options.report_id)
    chosen = sample_blocks(stored)
    data = page_queries.block_data(session, options.report_id, [b.number for b in chosen])
    entries = [entry for block in chosen for entry in decode(data[block.number])]
    variables = report.variables or list(options.variables)
    page = CheckPage(
        options=options,
        report=report,
        entries_read=len(entries),
        entries_total=sum(block.entries for block in stored),
        failing_total=sum(block.failing for block in stored),
        blocks_read=len(chosen),
        blocks_total=len(stored),
        plotted=variables[:MAX_PLOTTED_VARIABLES],
        variables_total=len(variables),
        hessian_variables=variables[:MAX_HESSIAN_VARIABLES],
    )
    page.every_entry_url = _json_url(options, "all", json_page_entries)
    page.failing_entries_url = _json_url(options, "failing", json_page_entries)
    page.worst = sorted(entries, key=_badness)[:WORST_ENTRIES_SHOWN]
    _plot_data(page, entries, report.points)
    return page


def sample_blocks(stored: list[StoredBlock]) -> list[StoredBlock]:
    """The blocks a check page reads, in order: the first ``FIRST_BLOCKS_READ`` and the
    ``FAILING_BLOCKS_READ`` others with the most non-passing entries (the earliest first
    among equals); never more than ``SAMPLE_BLOCKS``."""
    first = stored[:FIRST_BLOCKS_READ]
    failing = sorted(
        (block for block in stored[FIRST_BLOCKS_READ:] if block.failing > 0),
        key=lambda block: (-block.failing, block.number),
    )[:FAILING_BLOCKS_READ]
    return sorted([*first, *failing], key=lambda block: block.number)


def _json_url(options: StoredCheck, selection: str, limit: int) -> str:
    """The paged JSON report of the check's job from this check's first entry on."""
    cursor = encode_cursor(options.position * ENTRY_PLACES, "e")
    query = urlencode({"entries": selection, "limit": limit, "cursor": cursor})
    return f"/jobs/{options.job_id}/report?{query}"


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


def _plot_data(page: CheckPage, entries: list[dict[str, Any]], points: list[Any]) -> None:
    series: dict[str, list[PlotPoint]] = {name: [] for name in page.plotted}
    bins: dict[int, Counter[str]] = defaultdict(Counter)
    worst_cell: dict[tuple[str, str], tuple[float | None, str]] = {}
    drawn_cells = set(page.hessian_variables)
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
        for name in page.plotted:
            x = report_number(point.get(name))
            if x is not None and math.isfinite(x):
                series[name].append(
                    PlotPoint(
                        x=x,
                        ulps=ulps,
                        verdict=verdict,
                        kind=str(entry.get("kind")),
                        entry=entry_label(entry),
                        autograd=report_number(entry.get("autograd")),
                        exact=report_number(entry.get("reference")),
                        ratio=report_number(entry.get("ratio")),
                    )
                )
        wrt = entry.get("wrt")
        if entry.get("kind") == "hessian" and isinstance(wrt, list) and len(wrt) == 2:
            cell = (str(wrt[0]), str(wrt[1]))
            if not drawn_cells.issuperset(cell):
                continue
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


def entry_label(entry: dict[str, Any]) -> str:
    """What an entry is of, in words: its kind and the variables (or the node) it is of."""
    kind = str(entry.get("kind"))
    if entry.get("node"):
        return f"{kind} {entry['node']}"
    wrt = entry.get("wrt")
    return f"{kind} {','.join(str(name) for name in wrt)}" if isinstance(wrt, list) else kind


CHECK_COMMAND = "derivcheck check"
"""The command line that checks one expression at given points (verifier/cli/check.py)."""


def reproduce_command(expression: str, point: dict[str, Any], dtype: str) -> str:
    """The ``derivcheck check`` command line that checks ``expression`` at ``point`` in
    ``dtype``: each value printed with ``repr`` (it reads back as the same float), every
    argument quoted for a POSIX shell."""
    words = [CHECK_COMMAND, shlex.quote(expression)]
    if point:
        assignments = ",".join(f"{name}={_exact(value)}" for name, value in point.items())
        words += ["--at", shlex.quote(assignments)]
    words += ["--dtype", shlex.quote(dtype)]
    return " ".join(words)


def _exact(value: Any) -> str:
    """A point's value as text that reads back as the same number (a report's non-finite
    values are text already: ``inf``, ``nan``)."""
    if isinstance(value, float) and not isinstance(value, bool):
        return repr(value)
    return str(value)


_INF_DECADE = 10**6
"""The histogram's bin of non-finite errors, after every finite one."""


def point_of(points: list[Any], index: Any) -> dict[str, Any]:
    """The point an entry's ``point`` index names in the report's ``points``; {} for none."""
    return _point(points, index)


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
