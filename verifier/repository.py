"""All SQL of the service: reads and writes of jobs, checks and reports."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, inspect, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from verifier.models import (
    ApiKey,
    Check,
    CheckFunction,
    CheckStatus,
    Job,
    JobStatus,
    Report,
    utc_now,
)
from verifier.verdicts import worst_verdict


@dataclass(frozen=True)
class ReportFilters:
    """Filters of a report listing or of stats; None means no filter."""

    verdict: str | None = None
    expression: str | None = None
    function: str | None = None
    dtype: str | None = None
    device: str | None = None
    job: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    owner: uuid.UUID | None = None
    """Only reports of jobs submitted with this API key (None: every job)."""


def add_job(session: Session, job: Job) -> None:
    """Stage a new job with its checks and their function rows."""
    session.add(job)
    session.flush()


def get_job(session: Session, job_id: uuid.UUID, owner: uuid.UUID | None = None) -> Job | None:
    """The job with ``job_id``, or None; with ``owner``, None also if another key made it."""
    job = session.get(Job, job_id)
    if job is None or (owner is not None and job.api_key_id != owner):
        return None
    return job


def count_reports_of_job(session: Session, job_id: uuid.UUID) -> int:
    """How many of the job's checks have a report."""
    query = select(func.count()).select_from(Report).where(Report.job_id == job_id)
    return session.scalar(query) or 0


def get_check(session: Session, check_id: uuid.UUID) -> Check | None:
    """The check with ``check_id`` (with its report, if any), or None."""
    return session.get(
        Check, check_id, options=[selectinload(Check.report), selectinload(Check.functions)]
    )


def checks_of_job(session: Session, job_id: uuid.UUID) -> Sequence[Check]:
    """The job's checks in submission order, with their reports."""
    query = (
        select(Check)
        .where(Check.job_id == job_id)
        .order_by(Check.position)
        .options(selectinload(Check.report))
    )
    return session.scalars(query).all()


def claim_check(
    session: Session, check_id: uuid.UUID, owner: str, now: datetime, lease_until: datetime
) -> int | None:
    """Claim the check for ``owner`` if it is queued, its last claim expired, or it is ours.

    One conditional UPDATE, so two deliveries cannot both win; it counts the attempt. ``owner``
    is the delivery's task id, so a retry of the same task (after a database error) or a
    redelivery of its message (after its worker died) takes the check back at once. Returns
    the attempt number, or None when the check is done, held under another's live lease, or
    missing.
    """
    claimed = session.execute(
        update(Check)
        .where(
            Check.id == check_id,
            Check.status != CheckStatus.DONE,
            or_(
                Check.status == CheckStatus.QUEUED,
                Check.lease_expires_at.is_(None),
                Check.lease_expires_at < now,
                Check.owner == owner,
            ),
        )
        .values(
            status=CheckStatus.RUNNING,
            attempts=Check.attempts + 1,
            owner=owner,
            started_at=now,
            lease_expires_at=lease_until,
        )
        .returning(Check.attempts)
    ).scalar_one_or_none()
    if claimed is not None:
        session.execute(
            update(Job)
            .where(Job.id == select(Check.job_id).where(Check.id == check_id).scalar_subquery())
            .where(Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.RUNNING, started_at=now)
        )
    return claimed


def finish_check(session: Session, report: Report, owner: str, now: datetime) -> bool:
    """Mark the check done and add its report, if ``owner`` still holds it; True if it did.

    The report insert ignores a duplicate (one report per check), and both happen in the
    caller's transaction, so a writer that lost its claim changes nothing.
    """
    owned = session.execute(
        update(Check)
        .where(
            Check.id == report.check_id,
            Check.owner == owner,
            Check.status == CheckStatus.RUNNING,
        )
        .values(status=CheckStatus.DONE, finished_at=now, owner=None, lease_expires_at=None)
    )
    if owned.rowcount != 1:  # type: ignore[attr-defined]
        return False
    insert_report(session, report)
    return True


def insert_report(session: Session, report: Report) -> bool:
    """Insert ``report`` unless its check already has one; True when this call added it."""
    values = {
        attribute.key: getattr(report, attribute.key)
        for attribute in inspect(Report).column_attrs
        if getattr(report, attribute.key) is not None
    }
    values.setdefault("created_at", report.created_at or utc_now())
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = session.execute(
        insert(Report).values(**values).on_conflict_do_nothing(index_elements=["check_id"])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_expired_claims(session: Session, now: datetime, limit: int) -> int:
    """Put running checks whose lease expired back to queued (their owner is presumed dead)."""
    expired = select(Check.id).where(
        Check.status == CheckStatus.RUNNING, Check.lease_expires_at < now
    )
    ids = session.scalars(expired.limit(limit)).all()
    if not ids:
        return 0
    result = session.execute(
        update(Check)
        .where(
            Check.id.in_(ids),
            Check.status == CheckStatus.RUNNING,
            Check.lease_expires_at < now,
        )
        .values(status=CheckStatus.QUEUED, owner=None, lease_expires_at=None, enqueued_at=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def finish_job_if_complete(session: Session, job_id: uuid.UUID, now: datetime) -> bool:
    """Set the job's verdict and final status when every check has a report; True if finished.

    Runs in its own transaction after the report's commit, so whichever worker commits the
    last report sees all of them; finishing twice writes the same values.
    """
    job = session.get(Job, job_id)
    if job is None:
        return False
    verdicts = session.scalars(select(Report.verdict).where(Report.job_id == job_id)).all()
    if len(verdicts) < job.check_count:
        return False
    verdict = worst_verdict(verdicts)
    status = JobStatus.ERROR if "error" in verdicts else JobStatus.DONE
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status=status,
            verdict=verdict,
            started_at=func.coalesce(Job.started_at, now),
            finished_at=func.coalesce(Job.finished_at, now),
        )
    )
    return True


def jobs_with_every_report(session: Session, limit: int) -> Sequence[uuid.UUID]:
    """Jobs not yet finished although each of their checks has a report."""
    reported = (
        select(func.count()).select_from(Report).where(Report.job_id == Job.id).scalar_subquery()
    )
    query = select(Job.id).where(
        Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]), reported >= Job.check_count
    )
    return session.scalars(query.limit(limit)).all()


def unfinished_checks(session: Session, enqueued_before: datetime, limit: int) -> Sequence[Check]:
    """Queued checks without a report never sent, or sent before ``enqueued_before``.

    On PostgreSQL the rows stay locked until the caller commits, and rows another reconciler
    holds are skipped, so several reconcilers do not publish the same check at once.
    """
    query = (
        select(Check)
        .where(
            Check.status == CheckStatus.QUEUED,
            or_(Check.enqueued_at.is_(None), Check.enqueued_at < enqueued_before),
            ~exists().where(Report.check_id == Check.id),
        )
        .order_by(Check.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Check)
    )
    return session.scalars(query).all()


def mark_enqueued(session: Session, checks: Sequence[Check], now: datetime) -> None:
    """Record that the checks were handed to the broker at ``now``."""
    for check in checks:
        check.enqueued_at = now
    session.flush()


def _conditions(filters: ReportFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.verdict is not None:
        conditions.append(Report.verdict == filters.verdict)
    if filters.expression is not None:
        conditions.append(Check.expression.contains(filters.expression, autoescape=True))
    if filters.function is not None:
        conditions.append(
            exists().where(
                CheckFunction.check_id == Report.check_id,
                CheckFunction.function == filters.function,
            )
        )
    if filters.dtype is not None:
        conditions.append(Report.dtype == filters.dtype)
    if filters.device is not None:
        # "cuda" also matches the indexed devices a worker reports ("cuda:0").
        pattern = filters.device.replace("%", r"\%").replace("_", r"\_") + ":%"
        conditions.append(
            or_(Report.device == filters.device, Report.device.like(pattern, escape="\\"))
        )
    if filters.job is not None:
        conditions.append(Report.job_id == filters.job)
    if filters.since is not None:
        conditions.append(Report.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(Report.created_at < filters.until)
    if filters.owner is not None:
        conditions.append(Report.job_id.in_(select(Job.id).where(Job.api_key_id == filters.owner)))
    return conditions


def _filtered(query: Select[Report, Check], filters: ReportFilters) -> Select[Report, Check]:
    conditions = _conditions(filters)
    return query.where(and_(*conditions)) if conditions else query


def list_reports(
    session: Session, filters: ReportFilters, *, before_id: int | None, limit: int
) -> Sequence[tuple[Report, Check]]:
    """Reports matching ``filters``, newest first, with ids below ``before_id``."""
    query = select(Report, Check).join(Check, Check.id == Report.check_id)
    query = _filtered(query, filters)
    if before_id is not None:
        query = query.where(Report.id < before_id)
    rows = session.execute(query.order_by(Report.id.desc()).limit(limit)).all()
    return [(report, check) for report, check in rows]


def functions_of_checks(
    session: Session, check_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """The function names of each check, sorted."""
    names: dict[uuid.UUID, list[str]] = {check_id: [] for check_id in check_ids}
    if not check_ids:
        return names
    query = (
        select(CheckFunction.check_id, CheckFunction.function)
        .where(CheckFunction.check_id.in_(check_ids))
        .order_by(CheckFunction.function)
    )
    for check_id, function in session.execute(query):
        names[check_id].append(function)
    return names


def count_verdicts(
    session: Session, filters: ReportFilters, group_by: str | None
) -> list[tuple[str | None, str, int]]:
    """Rows of (group key, verdict, count) for reports matching ``filters``."""
    keys: dict[str, Any] = {
        "function": CheckFunction.function,
        "dtype": Report.dtype,
        "device": Report.device,
        "verdict": Report.verdict,
    }
    key = keys.get(group_by) if group_by is not None else None
    columns = [Report.verdict, func.count()] if key is None else [key, Report.verdict, func.count()]
    query = select(*columns).select_from(Report).join(Check, Check.id == Report.check_id)
    if group_by == "function":
        query = query.outerjoin(CheckFunction, CheckFunction.check_id == Report.check_id)
    conditions = _conditions(filters)
    if conditions:
        query = query.where(and_(*conditions))
    grouping = [Report.verdict] if key is None else [key, Report.verdict]
    rows = session.execute(query.group_by(*grouping).order_by(*grouping)).all()
    if key is None:
        return [(None, verdict, count) for verdict, count in rows]
    return [(group, verdict, count) for group, verdict, count in rows]


def add_api_key(session: Session, key: ApiKey) -> None:
    """Stage a new API key."""
    session.add(key)
    session.flush()


def api_key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    """The key with this hash, revoked or not, or None."""
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).one_or_none()


def list_api_keys(session: Session) -> Sequence[ApiKey]:
    """Every API key, oldest first."""
    return session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.name)).all()


def revoke_api_keys(session: Session, name_or_prefix: str, now: datetime) -> int:
    """Revoke the live keys with this name or key prefix; how many were revoked."""
    result = session.execute(
        update(ApiKey)
        .where(
            or_(ApiKey.name == name_or_prefix, ApiKey.prefix == name_or_prefix),
            ApiKey.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
