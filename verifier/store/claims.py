"""SQL of delivery: claiming a check, finishing it, and finding what nobody will run.

The protocol these statements implement is explained in ``docs/delivery.md``. The statements
every check runs (claim, finish, count, finish the job, renew) are built once, on the tables,
with bound parameters: building an ORM statement anew for each call cost a worker about 0.6 ms
per statement, more than the database took to run it. The claim returns what running the
check needs (:class:`ClaimedCheck`), so the check's row is not read again after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Executable,
    Select,
    Update,
    bindparam,
    case,
    exists,
    false,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from verifier.core.judge.verdict import VERDICT_ORDER, Verdict, rank
from verifier.core.options import STORED_OPTIONS
from verifier.store.documents import ReportValues
from verifier.store.models import (
    Base,
    Check,
    CheckFunction,
    CheckStatus,
    Job,
    JobStatus,
    StoredReport,
)
from verifier.store.repository import insert_blocks, insert_report, insert_report_values

_CHECKS = Base.metadata.tables[Check.__tablename__]
_JOBS = Base.metadata.tables[Job.__tablename__]
_REPORTS = Base.metadata.tables[StoredReport.__tablename__]
_FUNCTIONS = Base.metadata.tables[CheckFunction.__tablename__]


@dataclass(frozen=True)
class ClaimedCheck:
    """What running a claimed check needs, as its claim returned it: its ids, the attempt
    this is, its expression and points, and its stored options (:data:`STORED_OPTIONS`,
    also readable as attributes, as on a :class:`Check`)."""

    id: uuid.UUID
    job_id: uuid.UUID
    attempt: int
    expression: str
    variables: list[Any]
    points: list[Any] | None
    options: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        if name in STORED_OPTIONS:
            return self.options[name]
        raise AttributeError(name)


_CLAIMED = (
    _CHECKS.c.attempts,
    _CHECKS.c.job_id,
    _CHECKS.c.expression,
    _CHECKS.c.variables,
    _CHECKS.c.points,
    *(_CHECKS.c[name] for name in STORED_OPTIONS),
)


def _claim(takes_over: bool) -> Update:
    checks = _CHECKS.c
    free = [
        checks.status == CheckStatus.QUEUED,
        checks.lease_expires_at.is_(None),
        checks.lease_expires_at < bindparam("now"),
    ]
    if takes_over:
        free.append(checks.claim_token == bindparam("takes_over"))
    return (
        update(_CHECKS)
        .where(
            checks.id == bindparam("check"),
            # Neither done nor cancelled: a cancelled job's queued checks are never run.
            checks.status.in_([CheckStatus.QUEUED, CheckStatus.RUNNING]),
            or_(*free),
        )
        .values(
            status=CheckStatus.RUNNING,
            attempts=checks.attempts + 1,
            claim_token=bindparam("token"),
            started_at=bindparam("now"),
            lease_expires_at=bindparam("until"),
        )
        .returning(*_CLAIMED)
    )


_CLAIM = _claim(takes_over=False)
_TAKE_OVER = _claim(takes_over=True)
_JOB_RUNNING = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job"), _JOBS.c.status == JobStatus.QUEUED)
    .values(status=JobStatus.RUNNING, started_at=bindparam("now"))
)


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _claim_running(takes_over: bool) -> Select[Any]:
    """The claim and the marking of its job running in one statement (PostgreSQL: a
    data-modifying WITH), as :func:`claim` runs them one after the other elsewhere."""
    claimed = _claim(takes_over).cte("claimed")
    running = (
        update(_JOBS)
        .where(_JOBS.c.id.in_(select(claimed.c.job_id)), _JOBS.c.status == JobStatus.QUEUED)
        .values(status=JobStatus.RUNNING, started_at=bindparam("now"))
        .cte("running")
    )
    return select(claimed).add_cte(running)


_CLAIM_RUNNING = _claim_running(takes_over=False)
_TAKE_OVER_RUNNING = _claim_running(takes_over=True)


def claim(
    session: Session,
    check_id: uuid.UUID,
    claim_token: str,
    now: datetime,
    lease_until: datetime,
    takes_over: str | None = None,
    running_jobs: set[uuid.UUID] | None = None,
) -> ClaimedCheck | None:
    """Claim the check for ``claim_token`` if it is queued, its last claim expired, or it was held
    by ``takes_over``, and mark its job running (unless the job is in ``running_jobs``, the
    jobs this execution marked already; it is added there).

    One conditional UPDATE, so two deliveries cannot both win; it counts the attempt and
    returns what running the check needs. ``claim_token`` is the token of this execution.
    ``takes_over`` is the token of an execution known to have ended (a retry after a database
    error names the execution that failed), whose claim is taken back at once instead of after
    its lease. None when the check is done, cancelled, held under another's live lease, or
    missing. Nothing is read into the session: statements on the tables only.
    """
    values = {"check": check_id, "token": claim_token, "now": now, "until": lease_until}
    if takes_over is not None:
        values["takes_over"] = takes_over
    one_statement = _on_postgresql(session)
    statement: Executable
    if one_statement:  # the job is marked running by the same statement
        statement = _CLAIM_RUNNING if takes_over is None else _TAKE_OVER_RUNNING
    else:
        statement = _CLAIM if takes_over is None else _TAKE_OVER
    claimed = session.execute(statement, values).one_or_none()
    if claimed is None:
        return None
    if not one_statement and (running_jobs is None or claimed.job_id not in running_jobs):
        session.execute(_JOB_RUNNING, {"job": claimed.job_id, "now": now})
        if running_jobs is not None:
            running_jobs.add(claimed.job_id)
    return ClaimedCheck(
        id=check_id,
        job_id=claimed.job_id,
        attempt=int(claimed.attempts),
        expression=claimed.expression,
        variables=list(claimed.variables or []),
        points=claimed.points,
        options={name: getattr(claimed, name) for name in STORED_OPTIONS},
    )


def claim_check(
    session: Session,
    check_id: uuid.UUID,
    claim_token: str,
    now: datetime,
    lease_until: datetime,
    takes_over: str | None = None,
) -> int | None:
    """:func:`claim`, for a session that may hold the check or its job as objects (they are
    expired); returns the attempt number, or None."""
    claimed = claim(session, check_id, claim_token, now, lease_until, takes_over)
    if claimed is None:
        return None
    _expire(session, Check, check_id)
    _expire(session, Job, claimed.job_id)
    return claimed.attempt


_REPORTED = (
    select(_CHECKS.c.job_id, _REPORTS.c.verdict)
    .select_from(_CHECKS.outerjoin(_REPORTS, _REPORTS.c.check_id == _CHECKS.c.id))
    .where(_CHECKS.c.id == bindparam("check"))
)


def unclaimed(session: Session, check_id: uuid.UUID) -> tuple[uuid.UUID, str | None] | None:
    """A check that could not be claimed: its job and its report's verdict (None while it
    has none: another execution holds it); None if the check does not exist."""
    found = session.execute(_REPORTED, {"check": check_id}).one_or_none()
    return None if found is None else (found.job_id, found.verdict)


_FUNCTION_NAMES = (
    select(_FUNCTIONS.c.function)
    .where(_FUNCTIONS.c.check_id == bindparam("check"))
    .order_by(_FUNCTIONS.c.function)
)


def function_names(session: Session, check_id: uuid.UUID) -> list[str]:
    """The functions the check's expression calls, sorted."""
    return list(session.scalars(_FUNCTION_NAMES, {"check": check_id}))


def _expire(session: Session, model: type[Check] | type[Job], key: uuid.UUID) -> None:
    """Expire the row ``key`` of ``model`` if this session holds it: the statements on the
    tables change rows behind the session's back, and what it holds must be read again."""
    held = session.identity_map.get(identity_key(model, key))
    if held is not None:
        session.expire(held)


def renew_claim(
    session: Session, check_id: uuid.UUID, claim_token: str, lease_until: datetime
) -> bool:
    """Extend ``claim_token``'s lease on a running check to ``lease_until``; False if it lost it."""
    renewed = session.execute(
        _RENEW, {"check": check_id, "token": claim_token, "until": lease_until}
    )
    return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]


_RENEW = (
    update(_CHECKS)
    .where(
        _CHECKS.c.id == bindparam("check"),
        _CHECKS.c.claim_token == bindparam("token"),
        _CHECKS.c.status == CheckStatus.RUNNING,
    )
    .values(lease_expires_at=bindparam("until"))
)


def finish_check(
    session: Session, report: StoredReport, claim_token: str, now: datetime, *, passed: bool
) -> bool:
    """Mark the check done, add its report and count it in its job, if ``claim_token`` still
    holds the check; True if it did. ``passed``: whether the report passes its check's policy.

    The report insert ignores a duplicate (one report per check), and all of it happens in the
    caller's transaction, so a writer that lost its claim changes nothing, and the job's count
    cannot miss a report: the report that completes the job finishes it (``count_report``).
    """
    owned = session.execute(_FINISH, {"check": report.check_id, "token": claim_token, "now": now})
    if owned.rowcount != 1:  # type: ignore[attr-defined]
        return False
    _expire(session, Check, report.check_id)
    record_report(session, report, now, passed=passed)
    return True


def finish(session: Session, report: ReportValues, claim_token: str, now: datetime) -> bool:
    """:func:`finish_check` for a report as values (the worker's way: no objects are made or
    held); True if ``claim_token`` still held the check and the report was written.

    On PostgreSQL the check's update, the report's insert and the job's count are one
    statement (:data:`_FINISH_ONE`), then the report's blocks are inserted; elsewhere they are
    run one after the other in the same transaction, with the same effect.
    """
    verdict, passed = report.verdict, bool(report.passed)
    if _on_postgresql(session):
        done = session.execute(
            _FINISH_ONE,
            {
                **{f"r_{name}": report.columns.get(name) for name in _REPORT_VALUES},
                "r_created_at": report.columns.get("created_at") or now,
                "check": report.check_id,
                "token": claim_token,
                "now": now,
                "job": report.job_id,
                "rank": rank(verdict),
                "counted": verdict,
                "counted_passed": passed,
            },
        ).one()
        if not done.owned:
            return False
        if done.report_id is not None:
            insert_blocks(session, done.report_id, report.blocks)
            if done.reported is not None and done.reported >= done.check_count:
                finish_job_if_complete(session, report.job_id, now)
        return True
    owned = session.execute(_FINISH, {"check": report.check_id, "token": claim_token, "now": now})
    if owned.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if insert_report_values(session, report):
        count_report(session, report.job_id, verdict, passed, now)
    return True


_FINISH = (
    update(_CHECKS)
    .where(
        _CHECKS.c.id == bindparam("check"),
        _CHECKS.c.claim_token == bindparam("token"),
        _CHECKS.c.status == CheckStatus.RUNNING,
    )
    .values(
        status=CheckStatus.DONE,
        finished_at=bindparam("now"),
        claim_token=None,
        lease_expires_at=None,
    )
)


def record_report(session: Session, report: StoredReport, now: datetime, *, passed: bool) -> bool:
    """Insert ``report`` and count it in its job (finishing the job if it was the last); a
    second report of the same check changes nothing. True if this call added it."""
    if not insert_report(session, report):
        return False
    count_report(session, report.job_id, report.verdict, passed, now)
    return True


def count_report(
    session: Session, job_id: uuid.UUID, verdict: str, passed: bool, now: datetime
) -> bool:
    """Count one more report of the job (its verdict and whether it passed) and finish the job
    when it was the last; True if it finished the job. Reads the job's row, never its reports."""
    counted = session.execute(
        _COUNT,
        {"job": job_id, "rank": rank(verdict), "counted": verdict, "counted_passed": passed},
    ).one_or_none()
    _expire(session, Job, job_id)
    if counted is None or counted.reported < counted.check_count:
        return False
    return finish_job_if_complete(session, job_id, now)


_VERDICT_RANKS = {str(verdict): place for place, verdict in enumerate(VERDICT_ORDER)}
_HELD_RANK = case(_VERDICT_RANKS, value=_JOBS.c.worst_verdict, else_=-1)
_COUNT = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job"))
    .values(
        reported=_JOBS.c.reported + 1,
        worst_verdict=case(
            (_HELD_RANK < bindparam("rank"), bindparam("counted")), else_=_JOBS.c.worst_verdict
        ),
        all_passed=case(
            (bindparam("counted_passed"), func.coalesce(_JOBS.c.all_passed, true())),
            else_=false(),
        ),
    )
    .returning(_JOBS.c.reported, _JOBS.c.check_count)
)


_REPORT_VALUES = tuple(
    column.key for column in _REPORTS.columns if column.key not in ("id", "created_at")
)


def _finish_one() -> Select[Any]:
    """:func:`finish`'s three writes in one PostgreSQL statement: the check moves to done if
    the token still holds it (``owned``), the report is inserted from that row only (a
    duplicate does nothing: ``report_id`` is then null), and the job counts it only if it was
    inserted (``reported`` and ``check_count``, null otherwise)."""
    owned = _FINISH.returning(_CHECKS.c.id).cte("owned")
    names = (*_REPORT_VALUES, "created_at")
    added = (
        postgresql.insert(_REPORTS)
        .from_select(
            names,
            # Named apart from every column: a parameter named as a column of a table an
            # UPDATE of the statement writes would join that UPDATE's SET clause.
            select(
                *(bindparam(f"r_{name}", type_=_REPORTS.c[name].type) for name in names)
            ).select_from(owned),
        )
        .on_conflict_do_nothing(index_elements=["check_id"])
        .returning(_REPORTS.c.id)
        .cte("added")
    )
    counted = _COUNT.where(exists(select(added.c.id))).cte("counted")
    return select(
        select(func.count()).select_from(owned).scalar_subquery().label("owned"),
        select(added.c.id).scalar_subquery().label("report_id"),
        select(counted.c.reported).scalar_subquery().label("reported"),
        select(counted.c.check_count).scalar_subquery().label("check_count"),
    ).add_cte(owned, added, counted)


_FINISH_ONE = _finish_one()


def finish_job_if_complete(session: Session, job_id: uuid.UUID, now: datetime) -> bool:
    """Give an unfinished job whose every check is counted its verdict, whether it passed and
    its final status; True if this call finished it. Reads one row; finishing twice does
    nothing."""
    finished = session.execute(_FINISH_JOB, {"job": job_id, "now": now})
    _expire(session, Job, job_id)
    return bool(finished.rowcount)  # type: ignore[attr-defined]


_FINISH_JOB = (
    update(_JOBS)
    .where(
        _JOBS.c.id == bindparam("job"),
        _JOBS.c.reported >= _JOBS.c.check_count,
        _JOBS.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
    )
    .values(
        status=case(
            (_JOBS.c.worst_verdict == str(Verdict.ERROR), JobStatus.ERROR), else_=JobStatus.DONE
        ),
        verdict=_JOBS.c.worst_verdict,
        passed=_JOBS.c.all_passed,
        started_at=func.coalesce(
            _JOBS.c.started_at, bindparam("now", type_=_JOBS.c.started_at.type)
        ),
        finished_at=bindparam("now"),
    )
)


def release_expired_claims(session: Session, now: datetime, limit: int) -> int:
    """Put running checks whose lease expired back to queued (their worker is presumed dead);
    those of a job cancelled meanwhile end ``cancelled`` instead, so they never run again."""
    expired = select(Check.id).where(
        Check.status == CheckStatus.RUNNING, Check.lease_expires_at < now
    )
    ids = session.scalars(expired.limit(limit)).all()
    if not ids:
        return 0
    still_expired = (
        Check.id.in_(ids),
        Check.status == CheckStatus.RUNNING,
        Check.lease_expires_at < now,
    )
    of_cancelled_job = Check.job_id.in_(select(Job.id).where(Job.status == JobStatus.CANCELLED))
    unclaimed = {"claim_token": None, "lease_expires_at": None, "enqueued_at": None}
    ended = session.execute(
        update(Check)
        .where(*still_expired, of_cancelled_job)
        .values(status=CheckStatus.CANCELLED, finished_at=now, **unclaimed)
    )
    queued = session.execute(
        update(Check)
        .where(*still_expired, ~of_cancelled_job)
        .values(status=CheckStatus.QUEUED, **unclaimed)
    )
    return int(ended.rowcount) + int(queued.rowcount)  # type: ignore[attr-defined]


def release_for_resend(session: Session, check_id: uuid.UUID, claim_token: str) -> bool:
    """Make a check the next reconciler pass re-sends at once: queued, unclaimed, unsent.

    For an execution whose retry could not be published: it names its own ``claim_token``,
    whose claim (if it took one) it gives up; a check held by another execution, or done, is
    left alone. True if the check was changed.
    """
    released = session.execute(
        update(Check)
        .where(
            Check.id == check_id,
            or_(
                Check.status == CheckStatus.QUEUED,
                (Check.status == CheckStatus.RUNNING) & (Check.claim_token == claim_token),
            ),
        )
        .values(
            status=CheckStatus.QUEUED, claim_token=None, lease_expires_at=None, enqueued_at=None
        )
    )
    _expire(session, Check, check_id)
    return bool(released.rowcount)  # type: ignore[attr-defined]


def jobs_with_every_report(session: Session, limit: int) -> Sequence[uuid.UUID]:
    """Jobs not yet finished although each of their checks is counted (none is left so by a
    writer; a job counted before its last migration may be)."""
    query = select(Job.id).where(
        Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]), Job.reported >= Job.check_count
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


def queues_of_queued_checks(session: Session, job_id: uuid.UUID) -> list[str]:
    """The queues of the job's checks that wait for a worker (queued), each once, sorted."""
    query = (
        select(Check.queue)
        .where(Check.job_id == job_id, Check.status == CheckStatus.QUEUED)
        .distinct()
        .order_by(Check.queue)
    )
    return list(session.scalars(query))


_UNSENT = (
    update(_CHECKS)
    .where(_CHECKS.c.id.in_(bindparam("checks", expanding=True)))
    .where(_CHECKS.c.status == CheckStatus.QUEUED)
    .values(enqueued_at=None)
)


def mark_unsent(session: Session, check_ids: Sequence[uuid.UUID]) -> None:
    """Record that the broker did not take these checks: the reconciler's next pass sends them."""
    session.execute(_UNSENT, {"checks": list(check_ids)})
    for check_id in check_ids:
        _expire(session, Check, check_id)


def mark_enqueued(session: Session, checks: Sequence[Check], now: datetime) -> None:
    """Record that the checks were handed to the broker at ``now``."""
    for check in checks:
        check.enqueued_at = now
    session.flush()
