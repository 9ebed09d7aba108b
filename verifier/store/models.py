"""The database schema as typed SQLAlchemy 2.0 models: API keys, jobs, checks, and reports.

A job is one submission, owned by the API key that made it (none while keys are off); each
check is one expression with its points and options, the unit a worker runs; a report is the
stored result of one check (at most one per check, which is what makes a task that runs twice
write one report). The queryable parts of a report (verdict, worst errors, dtype, device,
versions, total time) are columns; the entries and the rest of the core's report document are
JSON, so a report can be re-judged and served without rerunning. The functions a check calls
are rows of ``check_functions``, so ``function = 'sinc'`` is an exact, indexed filter. A check
being run has a ``claim_token`` (the token of the execution that claimed it) and a
``lease_expires_at`` (docs/delivery.md). API keys are stored as SHA-256 hashes, never in
the clear. A job submitted with an ``Idempotency-Key`` keeps that key, scoped to its API key,
and the digest of its request, so a retried submission finds it (verifier/service/jobs.py).
Change this file only together with a migration in ``migrations/versions``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MAX_LABEL_CHARS = 200
MAX_KEY_NAME_CHARS = 100
KEY_HASH_CHARS = 64
KEY_PREFIX_CHARS = 12
CLAIM_TOKEN_CHARS = 36
STATUS_CHARS = 16
VERDICT_CHARS = 16
MAX_IDEMPOTENCY_KEY_CHARS = 128
"""The longest ``Idempotency-Key`` a client may send (a UUID is 36)."""
UUID_TEXT_CHARS = 36
"""A UUID written with hyphens."""
IDEMPOTENCY_SCOPE_CHARS = UUID_TEXT_CHARS + 1 + MAX_IDEMPOTENCY_KEY_CHARS
"""A stored key: its owner's id (36 characters, or "-" while keys are off), ":", the key."""
REQUEST_DIGEST_CHARS = 64
"""A SHA-256 digest in hex."""
FUNCTION_NAME_CHARS = 64
"""The longest function name a check may call: the parser's ``MAX_NAME_CHARS``
(verifier/core/expression/syntax.py; tests/store/test_name_columns.py holds them equal)."""


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


LOWEST_PRIORITY = 9
"""The lowest queue priority of a check (0 is the highest)."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp; SQLite, which keeps no zone, reads back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given for a timezone-aware column")
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class JobStatus(StrEnum):
    """Where a job is: waiting, being worked on, or finished (``error``: a check could not run;
    ``cancelled``: its owner cancelled it, and its queued checks never ran)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"


class CheckStatus(StrEnum):
    """Where one check is (``cancelled``: its job was cancelled while it was queued; no worker
    claims it)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


def _status_type(enum: type[StrEnum], name: str) -> Enum:
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=STATUS_CHARS,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    """Declarative base with the constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class ApiKey(Base):
    """A client's API key: its name, the start of the key (to recognise it) and its hash."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(MAX_KEY_NAME_CHARS))
    prefix: Mapped[str] = mapped_column(String(KEY_PREFIX_CHARS))
    key_hash: Mapped[str] = mapped_column(String(KEY_HASH_CHARS), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    revoked_at: Mapped[datetime | None]


class UiSession(Base):
    """A browser's sign-in to the report pages: the SHA-256 of its random token (the cookie
    holds the token, never the API key), the key it acts as, and when it ends
    (verifier/store/keys.py). Deleted at sign-out; useless once its key is revoked."""

    __tablename__ = "ui_sessions"

    token_hash: Mapped[str] = mapped_column(String(KEY_HASH_CHARS), primary_key=True)
    api_key_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Job(Base):
    """One submission: one or many checks.

    ``verdict`` is the worst of its checks' verdicts and ``passed`` whether every check passed
    under its own ``fail_on``; both are None until the job is finished. ``idempotency_key`` is
    the client's ``Idempotency-Key`` prefixed by its owner (``"<api key id>:<key>"``, or
    ``"-:<key>"`` while keys are off), unique, so two submissions with one key make one job
    even when they race; ``request_digest`` is the SHA-256 of the request that made the job.
    Both are None for a job submitted without a key.
    """

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(MAX_LABEL_CHARS))
    status: Mapped[JobStatus] = mapped_column(
        _status_type(JobStatus, "job_status"), default=JobStatus.QUEUED, index=True
    )
    verdict: Mapped[str | None] = mapped_column(String(VERDICT_CHARS))
    passed: Mapped[bool | None] = mapped_column(Boolean)
    check_count: Mapped[int] = mapped_column(Integer)
    # Counted as each report is written, in its transaction: a job finishes without reading
    # its reports again (verifier/store/claims.py, finish_check).
    reported: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worst_verdict: Mapped[str | None] = mapped_column(String(VERDICT_CHARS))
    all_passed: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    idempotency_key: Mapped[str | None] = mapped_column(
        String(IDEMPOTENCY_SCOPE_CHARS), index=True, unique=True
    )
    request_digest: Mapped[str | None] = mapped_column(String(REQUEST_DIGEST_CHARS))

    checks: Mapped[list[Check]] = relationship(
        back_populates="job", order_by="Check.position", passive_deletes=True
    )


class Check(Base):
    """One expression, its points and its options: the unit of work of a worker.

    ``fail_on`` is the check's policy resolved once at submission: the verdict names
    (verifier/core/judge/verdict.py) that make it fail, ``strict`` and the default set included;
    NULL for checks stored before it existed, whose policy is the one ``strict`` names.
    ``compare_devices`` names the two devices a check compares (verifier/core/judge/devices.py),
    NULL for a check on one device. ``modes`` names the derivative paths it judges
    (verifier/core/program/modes.py) and ``compare_batch`` whether it runs the default ones
    point by point too, both NULL for checks stored before they were chosen (the default
    paths, in a batch). ``cost_units`` is its admission estimate (verifier/core/expression/cost.py)
    and ``priority`` the queue priority of its message (0, the highest, to 9: the more work its
    key had queued before it, the lower), both NULL for checks stored before they were kept.
    """

    __tablename__ = "checks"
    __table_args__ = (UniqueConstraint("job_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    expression: Mapped[str] = mapped_column(Text)
    variables: Mapped[list[Any]] = mapped_column(JSON)
    points: Mapped[list[Any] | None] = mapped_column(JSON)
    dtype: Mapped[str] = mapped_column(String(16))
    device: Mapped[str] = mapped_column(String(16))
    nodes: Mapped[bool] = mapped_column(Boolean, default=False)
    hessian: Mapped[bool] = mapped_column(Boolean, default=True)
    samples: Mapped[int | None] = mapped_column(Integer)
    domain: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    rtol: Mapped[float | None] = mapped_column(Float)
    atol: Mapped[float | None] = mapped_column(Float)
    strict: Mapped[bool] = mapped_column(Boolean, default=False)
    fail_on: Mapped[list[Any] | None] = mapped_column(JSON)
    compare_devices: Mapped[list[Any] | None] = mapped_column(JSON)
    modes: Mapped[list[Any] | None] = mapped_column(JSON)
    compare_batch: Mapped[bool | None] = mapped_column(Boolean)
    cost_units: Mapped[int | None] = mapped_column(BigInteger)
    priority: Mapped[int | None] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(64))
    status: Mapped[CheckStatus] = mapped_column(
        _status_type(CheckStatus, "check_status"), default=CheckStatus.QUEUED, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim_token: Mapped[str | None] = mapped_column(String(CLAIM_TOKEN_CHARS))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    job: Mapped[Job] = relationship(back_populates="checks")
    functions: Mapped[list[CheckFunction]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )
    report: Mapped[StoredReport | None] = relationship(back_populates="check")


class CheckFunction(Base):
    """One supported function that a check's expression calls (canonical name)."""

    __tablename__ = "check_functions"

    check_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("checks.id", ondelete="CASCADE"), primary_key=True
    )
    function: Mapped[str] = mapped_column(String(FUNCTION_NAME_CHARS), primary_key=True, index=True)


class StoredReport(Base):
    """The stored result of one check, in the core's report format plus queryable columns.

    ``compared_device`` and ``compared_verdict`` are the second device's name and verdict in a
    check compared across devices (the document's ``compared`` section), NULL otherwise.
    """

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    check_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("checks.id", ondelete="CASCADE"), unique=True
    )
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    verdict: Mapped[str] = mapped_column(String(VERDICT_CHARS), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    dtype: Mapped[str] = mapped_column(String(16), index=True)
    device: Mapped[str] = mapped_column(String(32), index=True)
    compared_device: Mapped[str | None] = mapped_column(String(32), index=True)
    compared_verdict: Mapped[str | None] = mapped_column(String(VERDICT_CHARS))
    worst_abs_error: Mapped[float | None] = mapped_column(Float)
    worst_rel_error: Mapped[float | None] = mapped_column(Float)
    worst_ulp_error: Mapped[float | None] = mapped_column(Float)
    torch_version: Mapped[str | None] = mapped_column(String(64))
    sympy_version: Mapped[str | None] = mapped_column(String(64))
    total_seconds: Mapped[float | None] = mapped_column(Float)
    versions: Mapped[dict[str, Any]] = mapped_column(JSON)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)

    check: Mapped[Check] = relationship(back_populates="report")
    blocks: Mapped[list[ReportBlock]] = relationship(
        cascade="all, delete-orphan", order_by="ReportBlock.number", lazy="raise"
    )


class ReportBlock(Base):
    """Up to ``BLOCK_ENTRIES`` entries of a report, as columns (verifier/store/blocks.py):
    no stored value grows with a report's size."""

    __tablename__ = "report_blocks"

    report_id: Mapped[int] = mapped_column(
        ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_entry: Mapped[int] = mapped_column(Integer)
    entries: Mapped[int] = mapped_column(Integer)
    failing: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
