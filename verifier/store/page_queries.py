"""SQL of the report pages (``/ui/``) and of ``/metrics``: job listings, a job's checks, one
check's options and its report's stored blocks, and the fleet-wide counts that metrics export.

A check's page reads the list of its report's blocks (sizes and failing counts, never their
bytes: :func:`report_blocks`), then the bytes of the few blocks it samples
(:func:`block_data`); nothing here reads every entry of a report. Every read of a job or check
is scoped to an ``api_key_id`` (None: every job, as while keys are off).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from verifier.store.documents import ReportView
from verifier.store.models import (
    Check,
    CheckFunction,
    CheckStatus,
    Job,
    ReportBlock,
    StoredReport,
)
from verifier.store.repository import device_matches


@dataclass(frozen=True)
class JobFilters:
    """Filters of a job listing; None means no filter.

    ``verdict`` and the dates apply to the job (its worst verdict, when it was submitted); the
    others select jobs with at least one check that matches all of them.
    """

    api_key_id: uuid.UUID | None = None
    verdict: str | None = None
    expression: str | None = None
    function: str | None = None
    dtype: str | None = None
    device: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class ListedJob:
    """A job as a listing shows it."""

    id: uuid.UUID
    label: str | None
    status: str
    verdict: str | None
    passed: bool | None
    check_count: int
    created_at: datetime
    finished_at: datetime | None


def _job_conditions(filters: JobFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.api_key_id is not None:
        conditions.append(Job.api_key_id == filters.api_key_id)
    if filters.verdict is not None:
        conditions.append(Job.verdict == filters.verdict)
    if filters.since is not None:
        conditions.append(Job.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(Job.created_at < filters.until)
    checks: list[ColumnElement[bool]] = []
    if filters.expression is not None:
        checks.append(Check.expression.contains(filters.expression, autoescape=True))
    if filters.dtype is not None:
        checks.append(Check.dtype == filters.dtype)
    if filters.device is not None:
        # The device asked for (auto, cpu, cuda) or the one the report says it ran on.
        ran_on = (
            select(StoredReport.device)
            .where(StoredReport.check_id == Check.id)
            .scalar_subquery()
            .correlate(Check)
        )
        checks.append(
            or_(
                device_matches(Check.device, filters.device),
                device_matches(ran_on, filters.device),
            )
        )
    if filters.function is not None:
        listed = aliased(CheckFunction)
        checks.append(
            exists().where(listed.check_id == Check.id, listed.function == filters.function)
        )
    if checks:
        conditions.append(exists().where(Check.job_id == Job.id, *checks))
    return conditions


LISTED_JOB_COLUMNS = (
    Job.id,
    Job.label,
    Job.status,
    Job.verdict,
    Job.passed,
    Job.check_count,
    Job.created_at,
    Job.finished_at,
)


def list_jobs(session: Session, filters: JobFilters, *, offset: int, limit: int) -> list[ListedJob]:
    """Up to ``limit`` jobs matching ``filters``, newest first, after skipping ``offset``."""
    query = select(*LISTED_JOB_COLUMNS)
    conditions = _job_conditions(filters)
    if conditions:
        query = query.where(and_(*conditions))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).offset(offset).limit(limit)
    return [
        ListedJob(
            id=row.id,
            label=row.label,
            status=str(row.status),
            verdict=row.verdict,
            passed=row.passed,
            check_count=row.check_count,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )
        for row in session.execute(query)
    ]


def check_verdicts_of_jobs(
    session: Session, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Each job's reported checks per check verdict (a job with no report yet is absent)."""
    counts: dict[uuid.UUID, dict[str, int]] = {}
    if not job_ids:
        return counts
    query = (
        select(StoredReport.job_id, StoredReport.verdict, func.count())
        .where(StoredReport.job_id.in_(job_ids))
        .group_by(StoredReport.job_id, StoredReport.verdict)
    )
    for job_id, verdict, count in session.execute(query):
        counts.setdefault(job_id, {})[str(verdict)] = int(count)
    return counts


@dataclass(frozen=True)
class JobCheckRow:
    """One check of a job as the job's page lists it (its report's columns, if any): its
    worst error over its tolerance (``worst_ratio``, err/allowed) and its blamed nodes are read
    through :class:`ReportView` from those two sections of its document alone."""

    id: uuid.UUID
    position: int
    expression: str
    dtype: str
    device: str
    status: str
    verdict: str | None
    reason: str | None
    ran_on: str | None
    worst_ulp_error: float | None
    counts: dict[str, int] | None
    total_seconds: float | None
    worst_ratio: float | None = None
    blamed: list[dict[str, Any]] = field(default_factory=list)


def job_checks(
    session: Session, job_id: uuid.UUID, *, offset: int, limit: int
) -> list[JobCheckRow]:
    """Up to ``limit`` checks of the job from position ``offset`` on, in submission order."""
    query = (
        select(
            Check.id,
            Check.position,
            Check.expression,
            Check.dtype,
            Check.device,
            Check.status,
            StoredReport.verdict,
            StoredReport.reason,
            StoredReport.device,
            StoredReport.worst_ulp_error,
            StoredReport.document["counts"],
            StoredReport.total_seconds,
            StoredReport.document["worst"],
            StoredReport.document["blamed"],
        )
        .outerjoin(StoredReport, StoredReport.check_id == Check.id)
        .where(Check.job_id == job_id, Check.position >= offset)
        .order_by(Check.position)
        .limit(limit)
    )
    found: list[JobCheckRow] = []
    for row in session.execute(query):
        # The two sections read, never the document's points or notes.
        view = ReportView.read({"worst": row[12], "blamed": row[13]}, row[6])
        found.append(
            JobCheckRow(
                id=row[0],
                position=row[1],
                expression=row[2],
                dtype=row[3],
                device=row[4],
                status=str(row[5]),
                verdict=row[6],
                reason=row[7],
                ran_on=row[8],
                worst_ulp_error=row[9],
                counts=row[10] if isinstance(row[10], dict) else None,
                total_seconds=row[11],
                worst_ratio=view.worst["ratio"],
                blamed=view.blamed,
            )
        )
    return found


@dataclass(frozen=True)
class StoredCheck:
    """A check's stored options and, once it has one, its report's id and columns."""

    id: uuid.UUID
    job_id: uuid.UUID
    job_label: str | None
    position: int
    expression: str
    variables: list[str]
    dtype: str
    device: str
    hessian: bool
    nodes: bool
    samples: int | None
    domain: dict[str, Any] | None
    seed: int
    rtol: float | None
    atol: float | None
    strict: bool
    fail_on: list[str] | None
    status: str
    attempts: int
    report_id: int | None
    verdict: str | None
    reason: str | None
    ran_on: str | None
    total_seconds: float | None
    reported_at: datetime | None


def stored_check(
    session: Session, check_id: uuid.UUID, api_key_id: uuid.UUID | None
) -> StoredCheck | None:
    """The check ``check_id`` of ``api_key_id``'s jobs (None: any job's), or None."""
    query = (
        select(
            Check.id,
            Check.job_id,
            Job.label,
            Check.position,
            Check.expression,
            Check.variables,
            Check.dtype,
            Check.device,
            Check.hessian,
            Check.nodes,
            Check.samples,
            Check.domain,
            Check.seed,
            Check.rtol,
            Check.atol,
            Check.strict,
            Check.fail_on,
            Check.status,
            Check.attempts,
            StoredReport.id,
            StoredReport.verdict,
            StoredReport.reason,
            StoredReport.device,
            StoredReport.total_seconds,
            StoredReport.created_at,
        )
        .join(Job, Job.id == Check.job_id)
        .outerjoin(StoredReport, StoredReport.check_id == Check.id)
        .where(Check.id == check_id)
    )
    if api_key_id is not None:
        query = query.where(Job.api_key_id == api_key_id)
    row = session.execute(query).first()
    if row is None:
        return None
    values = list(row)
    values[5] = [str(name) for name in values[5] or []]
    values[17] = str(values[17])
    return StoredCheck(*values)


@dataclass(frozen=True)
class StoredBlock:
    """One stored block of a report, without its bytes: its number, first entry index, size
    and how many of its entries do not pass."""

    number: int
    first: int
    entries: int
    failing: int


def report_blocks(session: Session, report_id: int) -> list[StoredBlock]:
    """Every block of the report, in order, without its bytes (one small row per 4,096
    entries)."""
    query = (
        select(
            ReportBlock.number, ReportBlock.first_entry, ReportBlock.entries, ReportBlock.failing
        )
        .where(ReportBlock.report_id == report_id)
        .order_by(ReportBlock.number)
    )
    return [
        StoredBlock(number=row[0], first=row[1], entries=row[2], failing=row[3])
        for row in session.execute(query)
    ]


def block_data(session: Session, report_id: int, numbers: Sequence[int]) -> dict[int, bytes]:
    """The stored bytes of the report's blocks ``numbers`` (and of no other), by number."""
    if not numbers:
        return {}
    query = select(ReportBlock.number, ReportBlock.data).where(
        ReportBlock.report_id == report_id, ReportBlock.number.in_(list(numbers))
    )
    return {int(number): bytes(data) for number, data in session.execute(query)}


def count_jobs(session: Session) -> int:
    """Jobs ever submitted (and not deleted)."""
    return session.scalar(select(func.count()).select_from(Job)) or 0


def count_checks_by_dtype(session: Session) -> dict[str, int]:
    """Checks ever submitted, per dtype."""
    query = select(Check.dtype, func.count()).group_by(Check.dtype)
    return {str(dtype): int(count) for dtype, count in session.execute(query)}


def count_reports_by_verdict(session: Session) -> dict[str, int]:
    """Finished checks (those with a report), per verdict."""
    query = select(StoredReport.verdict, func.count()).group_by(StoredReport.verdict)
    return {str(verdict): int(count) for verdict, count in session.execute(query)}


def unfinished_checks_by_queue(session: Session) -> dict[tuple[str, str], int]:
    """Checks not finished yet, per (queue, status): ``queued`` ones are the queue's depth."""
    query = (
        select(Check.queue, Check.status, func.count())
        .where(Check.status.in_([CheckStatus.QUEUED, CheckStatus.RUNNING]))
        .group_by(Check.queue, Check.status)
    )
    return {
        (str(queue), str(status)): int(count) for queue, status, count in session.execute(query)
    }


@dataclass(frozen=True)
class DurationCounts:
    """Reports of one (dtype, device) whose total time was at most each bound, their number
    and their summed time: the content of a Prometheus histogram."""

    dtype: str
    device: str
    at_most: list[int]
    count: int
    total_s: float


def check_durations(session: Session, bounds_s: Sequence[float]) -> list[DurationCounts]:
    """For each (dtype, device) of the reports, how many took at most each of ``bounds_s``
    (cumulative, one scan of the reports' columns)."""
    seconds = func.coalesce(StoredReport.total_seconds, 0.0)
    within = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in bounds_s]
    query = select(
        StoredReport.dtype, StoredReport.device, *within, func.count(), func.sum(seconds)
    ).group_by(StoredReport.dtype, StoredReport.device)
    found: list[DurationCounts] = []
    for row in session.execute(query):
        dtype, device, *rest = row
        *at_most, count, total = rest
        found.append(
            DurationCounts(
                dtype=str(dtype),
                device=str(device),
                at_most=[int(value or 0) for value in at_most],
                count=int(count),
                total_s=float(total or 0.0),
            )
        )
    return found
