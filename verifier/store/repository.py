"""SQL of the service: reads and writes of jobs, checks, reports and API keys.

The SQL of delivery (claims, leases, what the reconciler looks for) is in ``claims.py``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnDefault,
    ColumnElement,
    Row,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased, make_transient_to_detached, selectinload
from sqlalchemy.sql.dml import ReturningInsert

from verifier.core.judge.verdict import Verdict
from verifier.store import blocks as entry_codec
from verifier.store.documents import ReportValues, ReportView
from verifier.store.models import (
    ApiKey,
    Base,
    Check,
    CheckFunction,
    CheckStatus,
    Job,
    JobStatus,
    ReportBlock,
    StoredReport,
    utc_now,
)

SelectT = TypeVar("SelectT", bound=Select[Any])

UNFINISHED_CHECK_STATUSES = (CheckStatus.QUEUED, CheckStatus.RUNNING)
"""A check a worker will still run or is running (neither done nor cancelled)."""
UNFINISHED_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
"""A job that may still change: cancelling one of these stops its queued checks."""
UUID_HEX_DIGITS = 32

MAX_SQL_INTEGER = 2**31 - 1
BLOCKS_PER_FETCH = 4
"""Entry blocks fetched from the database at a time while reading a report's entries."""
"""The largest value an Integer column or parameter holds (32 bits on PostgreSQL): the
bound of report ids, check positions and entry indexes that a query may be given."""


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
    api_key_id: uuid.UUID | None = None
    """Only reports of jobs submitted with this API key (None: every job)."""


def add_job(session: Session, job: Job) -> None:
    """Insert a new job with its checks and their function rows, through statements built
    once on the tables (one per table; building the ORM's unit of work for a job cost more
    than its inserts). The objects get their ids and defaults, and join ``session`` as
    loaded rows, as a flush would leave them."""
    now = utc_now()
    job.id = job.id or uuid.uuid4()
    job.status = job.status or JobStatus.QUEUED
    job.reported = job.reported or 0
    job.created_at = job.created_at or now
    checks: list[dict[str, Any]] = []
    functions: list[dict[str, Any]] = []
    for check in job.checks:
        check.id = check.id or uuid.uuid4()
        check.job_id = job.id
        check.status = check.status or CheckStatus.QUEUED
        check.attempts = check.attempts or 0
        check.created_at = check.created_at or now
        for name, default in _CHECK_DEFAULTS.items():
            if getattr(check, name) is None:
                setattr(check, name, default)
        checks.append(_loaded(check, _CHECK_COLUMNS))
        for function in check.functions:
            function.check_id = check.id
            functions.append({"check_id": check.id, "function": function.function})
    session.execute(_JOB_INSERT, _loaded(job, _JOB_COLUMNS))
    if checks:
        session.execute(_CHECK_INSERT, checks)
    if functions:
        session.execute(_FUNCTION_INSERT, functions)
    for row in (job, *job.checks, *(f for check in job.checks for f in check.functions)):
        make_transient_to_detached(row)
    session.add(job)  # and, by cascade, its checks and their functions


def _loaded(row: Job | Check, columns: Sequence[str]) -> dict[str, Any]:
    """The values of ``row``'s columns, each set on it (None where unset), so that the row
    reads as loaded once it joins a session: nothing is read back later (on SQLite a read
    would open a transaction, which takes the write lock)."""
    values = {column: getattr(row, column) for column in columns}
    for column, value in values.items():
        setattr(row, column, value)
    return values


_JOB_TABLE = Base.metadata.tables[Job.__tablename__]
_CHECK_TABLE = Base.metadata.tables[Check.__tablename__]
_JOB_COLUMNS = tuple(column.key for column in _JOB_TABLE.columns)
_CHECK_COLUMNS = tuple(column.key for column in _CHECK_TABLE.columns)
_JOB_INSERT = insert(_JOB_TABLE)
_CHECK_INSERT = insert(_CHECK_TABLE)
_FUNCTION_INSERT = insert(Base.metadata.tables[CheckFunction.__tablename__])
_CHECK_DEFAULTS = {
    column.key: column.default.arg
    for column in _CHECK_TABLE.columns
    if isinstance(column.default, ColumnDefault)
    and column.default.is_scalar
    and column.key not in ("status", "attempts")
}
"""The scalar defaults of a check's columns (nodes, hessian, seed, strict), which a flush
would have filled in."""


def get_job(session: Session, job_id: uuid.UUID, api_key_id: uuid.UUID | None = None) -> Job | None:
    """The job with ``job_id``, or None; with ``api_key_id``, None also if another key made it."""
    job = session.get(Job, job_id)
    if job is None or (api_key_id is not None and job.api_key_id != api_key_id):
        return None
    return job


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


def insert_report(session: Session, report: StoredReport) -> bool:
    """Insert ``report`` and its entry blocks unless its check already has a report; True when
    this call added it."""
    columns = {column: getattr(report, column) for column in _REPORT_COLUMNS}
    blocks = [
        {
            "number": block.number,
            "first_entry": block.first_entry,
            "entries": block.entries,
            "failing": block.failing,
            "data": block.data,
        }
        for block in report.blocks
    ]
    return insert_report_values(session, ReportValues(columns, blocks, ReportView.read(None)))


def insert_report_values(session: Session, report: ReportValues) -> bool:
    """Insert a report made by :func:`~verifier.store.documents.report_values` and its entry
    blocks unless its check already has a report; True when this call added it."""
    values = {column: value for column, value in report.columns.items() if value is not None}
    values.setdefault("created_at", utc_now())
    insert_new = _report_insert(session.get_bind().dialect.name)
    report_id = session.execute(insert_new, values).scalar_one_or_none()
    if report_id is None:
        return False
    insert_blocks(session, int(report_id), report.blocks)
    return True


def insert_blocks(session: Session, report_id: int, blocks: Sequence[dict[str, Any]]) -> None:
    """Insert the entry blocks (rows without their report's id) of report ``report_id``."""
    if blocks:
        session.execute(_BLOCK_INSERT, [{**block, "report_id": report_id} for block in blocks])


_REPORTS = Base.metadata.tables[StoredReport.__tablename__]
_REPORT_COLUMNS = tuple(column.key for column in _REPORTS.columns)
_BLOCK_INSERT = insert(Base.metadata.tables[ReportBlock.__tablename__])


@cache
def _report_insert(dialect: str) -> ReturningInsert[Any]:
    """The insert of a report that does nothing when its check has one, built once per
    dialect on the table (an ORM statement built for each report cost more than running it)."""
    make = sqlite.insert if dialect == "sqlite" else postgresql.insert
    statement = make(_REPORTS).on_conflict_do_nothing(index_elements=["check_id"])
    return statement.returning(_REPORTS.c.id)


def _conditions(filters: ReportFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.verdict is not None:
        conditions.append(StoredReport.verdict == filters.verdict)
    if filters.expression is not None:
        conditions.append(Check.expression.contains(filters.expression, autoescape=True))
    if filters.function is not None:
        # An alias of its own: a query grouped by function joins CheckFunction already, and
        # the subquery must not correlate to that join.
        listed = aliased(CheckFunction)
        conditions.append(
            exists().where(
                listed.check_id == StoredReport.check_id, listed.function == filters.function
            )
        )
    if filters.dtype is not None:
        conditions.append(StoredReport.dtype == filters.dtype)
    if filters.device is not None:  # the report's device, or the one it was compared with
        conditions.append(
            or_(
                device_matches(StoredReport.device, filters.device),
                device_matches(StoredReport.compared_device, filters.device),
            )
        )
    if filters.job is not None:
        conditions.append(StoredReport.job_id == filters.job)
    if filters.since is not None:
        conditions.append(StoredReport.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(StoredReport.created_at < filters.until)
    if filters.api_key_id is not None:
        conditions.append(
            StoredReport.job_id.in_(select(Job.id).where(Job.api_key_id == filters.api_key_id))
        )
    return conditions


def device_matches(column: Any, device: str) -> ColumnElement[bool]:
    """``column`` names ``device``; "cuda" also matches the indexed devices a worker reports
    ("cuda:0")."""
    pattern = device.replace("%", r"\%").replace("_", r"\_") + ":%"
    return or_(column == device, column.like(pattern, escape="\\"))


def _filtered(query: SelectT, filters: ReportFilters) -> SelectT:
    conditions = _conditions(filters)
    return query.where(and_(*conditions)) if conditions else query


def list_reports(
    session: Session, filters: ReportFilters, *, before_id: int | None, limit: int
) -> Sequence[tuple[StoredReport, Check]]:
    """Reports matching ``filters``, newest first, with ids below ``before_id``, as a listing
    reads them: neither their entries nor the rest of their documents are loaded.

    Each row is a pair of detached objects (never added to the session) holding only what a
    listing shows: the report's columns without ``entries``, a ``document`` of just its
    ``counts``, ``blamed`` and ``worst.ratio``, and the check's id, position, expression and
    policy. A report stored before ``counts`` existed gets its entries counted by the database.
    """
    query = select(*LISTED_REPORT_COLUMNS, *LISTED_CHECK_COLUMNS).join(
        Check, Check.id == StoredReport.check_id
    )
    query = _filtered(query, filters)
    if before_id is not None:
        query = query.where(StoredReport.id < before_id)
    rows = session.execute(query.order_by(StoredReport.id.desc()).limit(limit)).all()
    uncounted = [row.id for row in rows if row.counts is None]
    counted = count_entries_by_verdict(session, uncounted)
    return [_listed(row, counted.get(row.id)) for row in rows]


LISTED_REPORT_COLUMNS = (
    StoredReport.id,
    StoredReport.check_id,
    StoredReport.job_id,
    StoredReport.verdict,
    StoredReport.reason,
    StoredReport.dtype,
    StoredReport.device,
    StoredReport.compared_device,
    StoredReport.compared_verdict,
    StoredReport.worst_abs_error,
    StoredReport.worst_rel_error,
    StoredReport.worst_ulp_error,
    StoredReport.created_at,
    StoredReport.document["counts"].label("counts"),
    StoredReport.document["compared"].label("compared"),
    StoredReport.document["blamed"].label("blamed"),
    StoredReport.document[("worst", "ratio")].label("ratio"),
)
LISTED_CHECK_COLUMNS = (
    Check.position,
    Check.expression,
    Check.fail_on,
    Check.strict,
)


def _listed(row: Row[Any], counts: dict[str, int] | None) -> tuple[StoredReport, Check]:
    document: dict[str, Any] = {"counts": row.counts if counts is None else counts}
    if row.blamed is not None:
        document["blamed"] = row.blamed
    if row.ratio is not None:
        document["worst"] = {"ratio": row.ratio}
    if row.compared is not None:
        document["compared"] = row.compared
    report = StoredReport(
        id=row.id,
        check_id=row.check_id,
        job_id=row.job_id,
        verdict=row.verdict,
        reason=row.reason,
        dtype=row.dtype,
        device=row.device,
        compared_device=row.compared_device,
        compared_verdict=row.compared_verdict,
        worst_abs_error=row.worst_abs_error,
        worst_rel_error=row.worst_rel_error,
        worst_ulp_error=row.worst_ulp_error,
        created_at=row.created_at,
        document=document,
    )
    check = Check(
        id=row.check_id,
        job_id=row.job_id,
        position=row.position,
        expression=row.expression,
        fail_on=row.fail_on,
        strict=row.strict,
    )
    return report, check


def count_entries_by_verdict(
    session: Session, report_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """Each report's entries per verdict, counted block by block (one block in memory at a
    time); a report without entries is absent."""
    counts: dict[int, dict[str, int]] = {}
    if not report_ids:
        return counts
    query = (
        select(ReportBlock.report_id, ReportBlock.data)
        .where(ReportBlock.report_id.in_(report_ids))
        .execution_options(yield_per=BLOCKS_PER_FETCH)
    )
    for report_id, data in session.execute(query):
        found = counts.setdefault(report_id, {})
        for verdict in entry_codec.verdicts(data):
            found[verdict] = found.get(verdict, 0) + 1
    return counts


def report_entries(
    session: Session,
    report_ids: Sequence[int],
    *,
    after: tuple[int, int],
    limit: int,
    failing: bool,
) -> list[tuple[int, int, dict[str, Any]]]:
    """Up to ``limit`` entries of these reports as (check position, entry index, entry), in
    that order, from ``after`` = (position, index) on; ``failing``: only entries whose verdict
    is not ``pass``. Blocks are fetched and decoded a few at a time, from the first that holds
    ``after``, skipping blocks without failing entries when only those are asked for, so
    reports of any size cost this process about the entries returned."""
    found: list[tuple[int, int, dict[str, Any]]] = []
    if not report_ids or limit <= 0:
        return found
    position, index = after
    query = (
        select(Check.position, ReportBlock.first_entry, ReportBlock.data)
        .select_from(ReportBlock)
        .join(StoredReport, StoredReport.id == ReportBlock.report_id)
        .join(Check, Check.id == StoredReport.check_id)
        .where(
            ReportBlock.report_id.in_(report_ids),
            or_(
                Check.position > position,
                ReportBlock.first_entry + ReportBlock.entries > index,
            ),
        )
        .order_by(Check.position, ReportBlock.number)
        .execution_options(yield_per=BLOCKS_PER_FETCH)
    )
    if failing:
        query = query.where(ReportBlock.failing > 0)
    result = session.execute(query)
    try:
        for at, first, data in result:
            for offset, entry in enumerate(entry_codec.decode(data)):
                number = first + offset
                if at == position and number < index:
                    continue
                if failing and entry.get("verdict") == Verdict.PASS:
                    continue
                found.append((int(at), number, entry))
                if len(found) == limit:
                    return found
    finally:
        result.close()
    return found


@dataclass(frozen=True)
class ReportedCheck:
    """A check of a job as a page of its report reads it: the check's own columns, and its
    report's id, verdict and stored document size (None while it has no report)."""

    id: uuid.UUID
    position: int
    expression: str
    status: CheckStatus
    fail_on: list[str] | None
    strict: bool
    report_id: int | None
    verdict: str | None
    document_chars: int | None


def reported_checks(
    session: Session, job_id: uuid.UUID, *, from_position: int, limit: int
) -> list[ReportedCheck]:
    """Up to ``limit`` checks of the job from ``from_position`` on, in submission order, with
    the id and size of their reports; neither points nor documents nor entries are loaded."""
    query = (
        select(
            Check.id,
            Check.position,
            Check.expression,
            Check.status,
            Check.fail_on,
            Check.strict,
            StoredReport.id,
            StoredReport.verdict,
            func.length(cast(StoredReport.document, Text)),
        )
        .outerjoin(StoredReport, StoredReport.check_id == Check.id)
        .where(Check.job_id == job_id, Check.position >= from_position)
        .order_by(Check.position)
        .limit(limit)
    )
    return [ReportedCheck(*row) for row in session.execute(query)]


def report_documents(session: Session, report_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The stored documents (everything but the entries) of these reports, by report id."""
    if not report_ids:
        return {}
    query = select(StoredReport.id, StoredReport.document).where(StoredReport.id.in_(report_ids))
    return {report_id: document for report_id, document in session.execute(query)}


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
    """Rows of (group key, verdict, count) for reports matching ``filters``.

    Grouped by device, a report compared across two devices counts once for each, with that
    device's verdict; every other grouping counts reports once, by the report's own verdict.
    """
    keys: dict[str, Any] = {
        "function": CheckFunction.function,
        "dtype": StoredReport.dtype,
        "device": StoredReport.device,
        "verdict": StoredReport.verdict,
    }
    key = keys.get(group_by) if group_by is not None else None
    rows = _counted(session, filters, group_by, key, StoredReport.verdict)
    if group_by == "device":
        compared = _counted(
            session,
            filters,
            group_by,
            StoredReport.compared_device,
            StoredReport.compared_verdict,
            StoredReport.compared_device.is_not(None),
        )
        totals: Counter[tuple[str | None, str]] = Counter()
        for group, verdict, count in [*rows, *compared]:
            totals[group, verdict] += count
        rows = [(group, verdict, count) for (group, verdict), count in sorted(totals.items())]
    return rows


def _counted(
    session: Session,
    filters: ReportFilters,
    group_by: str | None,
    key: Any,
    verdict: Any,
    *extra: ColumnElement[bool],
) -> list[tuple[str | None, str, int]]:
    """(group key, verdict, count) rows of the reports matching ``filters`` and ``extra``."""
    columns = [verdict, func.count()] if key is None else [key, verdict, func.count()]
    query = (
        select(*columns).select_from(StoredReport).join(Check, Check.id == StoredReport.check_id)
    )
    if group_by == "function":
        query = query.outerjoin(CheckFunction, CheckFunction.check_id == StoredReport.check_id)
    conditions = [*_conditions(filters), *extra]
    if conditions:
        query = query.where(and_(*conditions))
    grouping = [verdict] if key is None else [key, verdict]
    found = session.execute(query.group_by(*grouping).order_by(*grouping)).all()
    if key is None:
        return [(None, str(v), int(count)) for v, count in found]
    return [(group, str(v), int(count)) for group, v, count in found]


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


def job_by_idempotency_key(session: Session, scoped_key: str) -> Job | None:
    """The job stored with this scoped idempotency key (``"<api key id>:<key>"``), or None."""
    return session.scalars(select(Job).where(Job.idempotency_key == scoped_key)).one_or_none()


def queued_cost_units(session: Session, api_key_id: uuid.UUID) -> int:
    """The estimated cost of ``api_key_id``'s checks not yet done (queued or running)."""
    return int(session.execute(_QUEUED_UNITS, {"key": api_key_id}).scalar() or 0)


_QUEUED_UNITS = (
    select(func.coalesce(func.sum(_CHECK_TABLE.c.cost_units), 0))
    .select_from(_CHECK_TABLE.join(_JOB_TABLE, _JOB_TABLE.c.id == _CHECK_TABLE.c.job_id))
    .where(
        _JOB_TABLE.c.api_key_id == bindparam("key"),
        _CHECK_TABLE.c.status.in_(UNFINISHED_CHECK_STATUSES),
    )
)
"""Built once on the tables: an ORM statement compiled its ORM state on every submission."""


def never_sent_checks(session: Session, job_id: uuid.UUID) -> Sequence[Check]:
    """The job's queued checks that were never handed to the broker, in submission order."""
    query = (
        select(Check)
        .where(
            Check.job_id == job_id,
            Check.status == CheckStatus.QUEUED,
            Check.enqueued_at.is_(None),
        )
        .order_by(Check.position)
    )
    return session.scalars(query).all()


def queued_checks(session: Session, job_id: uuid.UUID) -> Sequence[Check]:
    """The job's queued checks (sent or not), in submission order."""
    query = (
        select(Check)
        .where(Check.job_id == job_id, Check.status == CheckStatus.QUEUED)
        .order_by(Check.position)
    )
    return session.scalars(query).all()


@dataclass(frozen=True)
class JobFilters:
    """Filters of a job listing; None means no filter."""

    api_key_id: uuid.UUID | None = None
    """Only jobs submitted with this API key (None: every job)."""
    status: JobStatus | None = None
    prefix: str | None = None
    """Only jobs whose id, in lowercase hex without hyphens, starts with these digits."""


def list_jobs(
    session: Session,
    filters: JobFilters,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Job]:
    """At most ``limit`` jobs, newest first (ties by id), strictly after ``before`` (the
    ``created_at`` and id of the last job of the previous page) in that order."""
    query = select(Job)
    if filters.api_key_id is not None:
        query = query.where(Job.api_key_id == filters.api_key_id)
    if filters.status is not None:
        query = query.where(Job.status == filters.status)
    if filters.prefix is not None:
        # A range of ids instead of a text match: uuids compare as their hex digits do on
        # PostgreSQL (uuid) and on SQLite (32 hex characters), and the primary key serves it.
        low = uuid.UUID(filters.prefix.ljust(UUID_HEX_DIGITS, "0"))
        high = uuid.UUID(filters.prefix.ljust(UUID_HEX_DIGITS, "f"))
        query = query.where(Job.id >= low, Job.id <= high)
    if before is not None:
        created_at, job_id = before
        query = query.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return session.scalars(query).all()


def cancel_job(session: Session, job: Job, now: datetime) -> int:
    """Cancel ``job`` if it is unfinished: its queued checks become cancelled (no worker
    claims them, verifier/store/claims.py) and the job ends ``cancelled`` at ``now``; its
    running checks finish. Returns how many checks were cancelled; a finished job is left as
    it is (0)."""
    ended = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status.in_(UNFINISHED_JOB_STATUSES))
        .values(status=JobStatus.CANCELLED, finished_at=now)
    )
    if not ended.rowcount:  # type: ignore[attr-defined]
        return 0
    cancelled = session.execute(
        update(Check)
        .where(Check.job_id == job.id, Check.status == CheckStatus.QUEUED)
        .values(status=CheckStatus.CANCELLED, finished_at=now, enqueued_at=None)
    )
    session.expire(job)
    return int(cancelled.rowcount)  # type: ignore[attr-defined]
