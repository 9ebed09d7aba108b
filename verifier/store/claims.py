"""SQL of delivery: claiming a check, finishing it, and finding what nobody will run.

The protocol these statements implement is explained in ``docs/delivery.md``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session

from verifier.store.models import Check, CheckStatus, Job, JobStatus, StoredReport
from verifier.store.repository import insert_report


def claim_check(
    session: Session,
    check_id: uuid.UUID,
    claim_token: str,
    now: datetime,
    lease_until: datetime,
    takes_over: str | None = None,
) -> int | None:
    """Claim the check for ``claim_token`` if it is queued, its last claim expired, or it was held
    by ``takes_over``.

    One conditional UPDATE, so two deliveries cannot both win; it counts the attempt.
    ``claim_token`` is the token of this execution. ``takes_over`` is the token of an
    execution known to have ended (a retry after a database error names the execution that
    failed), whose claim is taken back at once instead of after its lease. Returns the attempt
    number, or None when the check is done, held under another's live lease, or missing.
    """
    free = [
        Check.status == CheckStatus.QUEUED,
        Check.lease_expires_at.is_(None),
        Check.lease_expires_at < now,
    ]
    if takes_over is not None:
        free.append(Check.claim_token == takes_over)
    claimed = session.execute(
        update(Check)
        .where(Check.id == check_id, Check.status != CheckStatus.DONE, or_(*free))
        .values(
            status=CheckStatus.RUNNING,
            attempts=Check.attempts + 1,
            claim_token=claim_token,
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


def renew_claim(
    session: Session, check_id: uuid.UUID, claim_token: str, lease_until: datetime
) -> bool:
    """Extend ``claim_token``'s lease on a running check to ``lease_until``; False if it lost it."""
    renewed = session.execute(
        update(Check)
        .where(
            Check.id == check_id,
            Check.claim_token == claim_token,
            Check.status == CheckStatus.RUNNING,
        )
        .values(lease_expires_at=lease_until)
    )
    return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]


def finish_check(session: Session, report: StoredReport, claim_token: str, now: datetime) -> bool:
    """Mark the check done and add its report, if ``claim_token`` still holds it; True if it did.

    The report insert ignores a duplicate (one report per check), and both happen in the
    caller's transaction, so a writer that lost its claim changes nothing.
    """
    owned = session.execute(
        update(Check)
        .where(
            Check.id == report.check_id,
            Check.claim_token == claim_token,
            Check.status == CheckStatus.RUNNING,
        )
        .values(status=CheckStatus.DONE, finished_at=now, claim_token=None, lease_expires_at=None)
    )
    if owned.rowcount != 1:  # type: ignore[attr-defined]
        return False
    insert_report(session, report)
    return True


def release_expired_claims(session: Session, now: datetime, limit: int) -> int:
    """Put running checks whose lease expired back to queued (their worker is presumed dead)."""
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
        .values(
            status=CheckStatus.QUEUED, claim_token=None, lease_expires_at=None, enqueued_at=None
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def jobs_with_every_report(session: Session, limit: int) -> Sequence[uuid.UUID]:
    """Jobs not yet finished although each of their checks has a report."""
    reported = (
        select(func.count())
        .select_from(StoredReport)
        .where(StoredReport.job_id == Job.id)
        .scalar_subquery()
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
            ~exists().where(StoredReport.check_id == Check.id),
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
