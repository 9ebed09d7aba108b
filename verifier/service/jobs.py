"""Jobs: submit one (validated, admitted, stored) and follow it.

Submission commits the job and its checks before anything is queued (the database is the
source of truth); checks the broker did not take stay unsent and are published later by the
reconciler (verifier/delivery/reconciler.py). Every read is scoped to an ``api_key_id``
(the caller's API key; None when keys are off), and another key's job is reported as not found.

A submission may carry an idempotency key (HTTP ``Idempotency-Key``): the job keeps it, scoped
to its API key, with the SHA-256 of its request, and a later submission with the same key and
API key gets that job back instead of a new one (the same request) or a refusal (another
request). A client that lost the answer to a submission (a timeout, an API killed after the
commit) can therefore retry it without making a second job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from verifier.config import Settings
from verifier.core.guard import check_expressions
from verifier.delivery.fleet import fleet_for
from verifier.errors import JobRejectedError, NotFoundError, RequestRejectedError
from verifier.ids import SHORT_ID_CHARS
from verifier.service.admission import (
    admit,
    check_quota,
    queue_priority,
    require_served_queues,
)
from verifier.service.schemas import (
    JobIn,
    JobOut,
    JobPage,
    Progress,
)
from verifier.service.submission import Parser, validate_job
from verifier.store import claims, repository
from verifier.store.models import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    Check,
    CheckFunction,
    Job,
    JobStatus,
    utc_now,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_CHARACTERS = "letters, digits and . _ ~ : + / = -"
IDEMPOTENCY_KEY_TEXT = re.compile(rf"[A-Za-z0-9._~:+/=-]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}")
"""An idempotency key: 1 to MAX_IDEMPOTENCY_KEY_CHARS of IDEMPOTENCY_KEY_CHARACTERS (UUIDs,
ULIDs, hex and base64 digests fit)."""
NO_API_KEY = "-"
"""The API key part of a stored idempotency key while API keys are off."""
SHOWN_KEY_CHARS = 60
MIN_PREFIX_DIGITS = SHORT_ID_CHARS
"""The fewest hex digits of a job id prefix (what the CLI prints: ``job beb21642``)."""
JOB_PREFIX_TEXT = re.compile(rf"[0-9a-f]{{{MIN_PREFIX_DIGITS},32}}")
JOB_CURSOR_KIND = "j"


def queue_for(device: str, settings: Settings, compared: Sequence[str] | None = None) -> str:
    """The queue of a check: a check on ``cuda`` (or comparing a CUDA device) needs a GPU
    worker, the rest go to ``cpu``."""
    devices = [device, *(compared or [])]
    needs_gpu = any(name.startswith("cuda") for name in devices)
    return settings.gpu_queue if needs_gpu else settings.cpu_queue


@dataclass(frozen=True)
class Submission:
    """What a submission left: its job, and whether an earlier submission with the same
    idempotency key had made it (``replayed``: nothing new was stored)."""

    job: Job
    replayed: bool


def submit_job(
    session: Session, request: JobIn, settings: Settings, api_key_id: uuid.UUID | None = None
) -> Job:
    """Validate ``request`` and commit it as a queued job of ``api_key_id``; nothing is sent yet."""
    return submit(session, request, settings, api_key_id).job


def submit(
    session: Session,
    request: JobIn,
    settings: Settings,
    api_key_id: uuid.UUID | None = None,
    *,
    idempotency_key: str | None = None,
    parse: Parser = check_expressions,
    sending_at: datetime | None = None,
) -> Submission:
    """Validate ``request`` and commit it as a queued job of ``api_key_id``; nothing is sent yet.

    ``parse`` parses the expressions (the API passes its pool of parser processes).
    ``sending_at``: the checks are stored as sent at that time, in the same transaction, for a
    caller that sends them right after the commit and marks those the broker did not take
    unsent again (``send_new_checks``, verifier/delivery/sender.py): one transaction per
    submission instead of a second one after sending.

    With ``idempotency_key``, the job of ``api_key_id``'s earlier submission with that key is
    returned instead (``replayed``) when its request was the same; JobRejectedError naming the
    key if it was another request, or if the key is malformed.
    """
    scope = digest = None
    if idempotency_key is not None:
        scope = _idempotency_scope(idempotency_key, api_key_id)
        digest = request_digest(request)
        earlier = repository.job_by_idempotency_key(session, scope)
        if earlier is not None:
            return Submission(_replayed(earlier, digest, idempotency_key), replayed=True)
    job = _new_job(request, settings, api_key_id, parse)
    require_served_queues([check.queue for check in job.checks], settings)
    if api_key_id is not None:
        job_units = sum(check.cost_units or 0 for check in job.checks)
        queued = repository.queued_cost_units(session, api_key_id)
        check_quota(queued, job_units, settings)
        # Each check after the work its key queued before it, this job's earlier checks
        # included: one key's backlog waits behind another key's first checks.
        for check in job.checks:
            check.priority = queue_priority(queued)
            queued += check.cost_units or 0
    job.idempotency_key = scope
    job.request_digest = digest
    if sending_at is not None:
        for check in job.checks:
            check.enqueued_at = sending_at
    try:
        repository.add_job(session, job)
        session.commit()
    except IntegrityError:
        session.rollback()
        # Two submissions with one key raced, and the other committed first.
        earlier = repository.job_by_idempotency_key(session, scope) if scope else None
        if earlier is None or digest is None or idempotency_key is None:
            raise
        return Submission(_replayed(earlier, digest, idempotency_key), replayed=True)
    return Submission(job, replayed=False)


def request_digest(request: JobIn) -> str:
    """The SHA-256 (hex) of ``request`` with its defaults filled in: two requests that mean
    the same job have the same digest, whatever their key order or omitted defaults."""
    canonical = json.dumps(
        request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), allow_nan=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def unsent_checks(session: Session, job: Job) -> Sequence[Check]:
    """The job's queued checks that a submission may have left unsent: those the broker did
    not take, and those stored as sent by a submission that ended between its commit and its
    sending; the caller asks the broker which of the latter it holds
    (``lost_checks``, verifier/delivery/reconciler.py)."""
    return repository.queued_checks(session, job.id)


def _idempotency_scope(key: str, api_key_id: uuid.UUID | None) -> str:
    """The stored form of ``key``: ``"<api_key_id>:<key>"``; JobRejectedError if it is malformed.

    The key may come bare or quoted (``"..."``, the Structured Fields string of the IETF
    Idempotency-Key draft); either form means the same key.
    """
    text = key.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not IDEMPOTENCY_KEY_TEXT.fullmatch(text):
        shown = key if len(key) <= SHOWN_KEY_CHARS else f"{key[:SHOWN_KEY_CHARS]}..."
        raise JobRejectedError(
            [
                _key_problem(
                    f"{IDEMPOTENCY_KEY_HEADER} {shown!r} ({len(key)} characters) must be 1 to "
                    f"{MAX_IDEMPOTENCY_KEY_CHARS} characters of {IDEMPOTENCY_KEY_CHARACTERS}",
                    "idempotency_key",
                )
            ]
        )
    return f"{api_key_id or NO_API_KEY}:{text}"


def _replayed(earlier: Job, digest: str, key: str) -> Job:
    if earlier.request_digest != digest:
        raise JobRejectedError(
            [
                _key_problem(
                    f"{IDEMPOTENCY_KEY_HEADER} {key!r} was already used for job {earlier.id} "
                    "with a different request; send the same request to get that job again, "
                    "or a new key for a new job",
                    "idempotency_key_reused",
                )
            ]
        )
    return earlier


def _key_problem(message: str, kind: str) -> dict[str, Any]:
    return {
        "loc": ["header", IDEMPOTENCY_KEY_HEADER],
        "msg": message,
        "type": kind,
        "position": None,
    }


def _new_job(
    request: JobIn, settings: Settings, api_key_id: uuid.UUID | None, parse: Parser
) -> Job:
    parsed = validate_job(request, settings, parse)
    costs = admit(request, parsed, settings)
    job = Job(
        label=request.label,
        status=JobStatus.QUEUED,
        check_count=len(request.checks),
        api_key_id=api_key_id,
    )
    checks = zip(request.checks, parsed, costs, strict=True)
    for position, (check, expression, cost_units) in enumerate(checks):
        options = check.options()  # validated above: resolved, with the policy, once here
        job.checks.append(
            Check(
                position=position,
                expression=check.expression,
                variables=list(expression.variables),
                points=check.points,
                **options.stored(),
                cost_units=cost_units,
                queue=queue_for(options.device, settings, options.compare_devices),
                functions=[CheckFunction(function=name) for name in sorted(expression.functions)],
            )
        )
    return job


def job_status(
    session: Session,
    job_id: uuid.UUID,
    api_key_id: uuid.UUID | None = None,
    settings: Settings | None = None,
) -> JobOut:
    """The job's state and progress; NotFoundError if there is no such job of ``api_key_id``.

    With ``settings``, an unfinished job also says which of its queued checks' queues no
    worker serves (``waiting``; verifier/delivery/fleet.py)."""
    job = repository.get_job(session, job_id, api_key_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    waiting = None
    if settings is not None and job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        waiting = waiting_for(claims.queues_of_queued_checks(session, job.id), settings)
    return _job_out(job, waiting)


def waiting_for(queues: Sequence[str], settings: Settings) -> str | None:
    """What queued checks on ``queues`` wait for, if no worker serves one of them."""
    fleet = fleet_for(settings)
    unserved = [queue for queue in queues if fleet.served(queue) is False]
    if not unserved:
        return None
    names = " and ".join(f"the {queue} queue" for queue in unserved)
    return f"waiting: no worker serves {names}"


def _job_out(job: Job, waiting: str | None = None) -> JobOut:
    return JobOut(
        waiting=waiting,
        id=job.id,
        label=job.label,
        status=job.status,
        verdict=job.verdict,
        passed=job.passed,
        progress=Progress(done=job.reported, total=job.check_count),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def list_jobs(
    session: Session,
    api_key_id: uuid.UUID | None,
    *,
    status: JobStatus | None = None,
    prefix: str | None = None,
    cursor: str | None = None,
    limit: int,
) -> JobPage:
    """``api_key_id``'s jobs, newest first, ``limit`` a page, from ``cursor`` on; only those
    with ``status``, or whose id starts with ``prefix`` (hex digits, hyphens ignored).

    RequestRejectedError names a prefix of fewer than MIN_PREFIX_DIGITS hex digits, or a bad
    cursor."""
    filters = repository.JobFilters(
        api_key_id=api_key_id,
        status=status,
        prefix=None if prefix is None else job_prefix(prefix),
    )
    before = _decode_job_cursor(cursor) if cursor is not None else None
    rows = repository.list_jobs(session, filters, before=before, limit=limit + 1)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit and page:
        next_cursor = _encode_job_cursor(page[-1])
    return JobPage(items=[_job_out(job) for job in page], next_cursor=next_cursor)


def job_prefix(text: str) -> str:
    """The lowercase hex digits of a job id prefix (hyphens dropped); RequestRejectedError
    naming it unless it has MIN_PREFIX_DIGITS to 32 of them."""
    digits = text.replace("-", "").lower()
    if JOB_PREFIX_TEXT.fullmatch(digits):
        return digits
    shown = text if len(text) <= SHOWN_KEY_CHARS else f"{text[:SHOWN_KEY_CHARS]}..."
    raise RequestRejectedError(
        [
            {
                "loc": ["query", "prefix"],
                "msg": f"invalid job id prefix {shown!r}: give {MIN_PREFIX_DIGITS} to 32 hex "
                "digits of a job id (hyphens allowed)",
                "type": "prefix",
                "position": None,
            }
        ]
    )


def cancel_job(
    session: Session,
    job_id: uuid.UUID,
    api_key_id: uuid.UUID | None = None,
    settings: Settings | None = None,
) -> JobOut:
    """Cancel ``api_key_id``'s job: its queued checks are never run, its running checks
    finish (their reports are kept) and the job ends ``cancelled``. A finished job (done,
    error or already cancelled) is left as it is, so cancelling twice is harmless. Returns
    the job's state afterwards; NotFoundError if there is no such job of ``api_key_id``."""
    job = repository.get_job(session, job_id, api_key_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    cancelled = repository.cancel_job(session, job, utc_now())
    session.commit()
    if cancelled:
        logger.info("job %s cancelled: %d queued checks will not run", job_id, cancelled)
    return job_status(session, job_id, api_key_id, settings)


def _encode_job_cursor(job: Job) -> str:
    text = f"{JOB_CURSOR_KIND}{job.created_at.isoformat()}|{job.id.hex}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_job_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(JOB_CURSOR_KIND):
            raise ValueError(cursor)
        created, _, job_id = text[len(JOB_CURSOR_KIND) :].partition("|")
        return datetime.fromisoformat(created), uuid.UUID(hex=job_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise RequestRejectedError(
            [
                {
                    "loc": ["query", "cursor"],
                    "msg": f"invalid cursor {cursor!r}: pass next_cursor from a previous page",
                    "type": "cursor",
                    "position": None,
                }
            ]
        ) from None
