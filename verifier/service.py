"""The service's use cases: submit a job, follow it, read its report, query and count reports.

Submission commits the job and its checks before anything is queued (the database is the
source of truth); checks the broker did not take stay unsent and are published later by the
reconciler (verifier/reconciler.py). Every read is scoped to an ``owner`` (the caller's API
key id; None when keys are off), and another key's job is reported as not found.

A submission may carry an idempotency key (HTTP ``Idempotency-Key``): the job keeps it, scoped
to its owner, with the SHA-256 of its request, and a later submission with the same key and
owner gets that job back instead of a new one (the same request) or a refusal (another
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
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from verifier import claims, repository
from verifier.admission import admit
from verifier.config import Settings
from verifier.core.verdict import VERDICT_ORDER
from verifier.errors import JobRejectedError, NotFoundError
from verifier.models import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    Check,
    CheckFunction,
    Job,
    JobStatus,
    Report,
    utc_now,
)
from verifier.outcome import Outcome, check_fail_on, read_outcome, report_number
from verifier.repository import ReportedCheck, ReportFilters
from verifier.schemas import (
    Blamed,
    EntrySelection,
    GroupBy,
    JobIn,
    JobOut,
    JobReportPage,
    PendingCheck,
    Progress,
    ReportItem,
    ReportPage,
    Stats,
    StatsGroup,
    Worst,
)
from verifier.submission import validate_job

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_CHARACTERS = "letters, digits and . _ ~ : + / = -"
IDEMPOTENCY_KEY_TEXT = re.compile(rf"[A-Za-z0-9._~:+/=-]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}")
"""An idempotency key: 1 to MAX_IDEMPOTENCY_KEY_CHARS of IDEMPOTENCY_KEY_CHARACTERS (UUIDs,
ULIDs, hex and base64 digests fit)."""
OPEN_OWNER = "-"
"""The owner part of a stored idempotency key while API keys are off."""
SHOWN_KEY_CHARS = 60


class CheckSender(Protocol):
    """Hands a check id to the broker, on the named queue."""

    def send_check(self, check_id: uuid.UUID, queue: str) -> None: ...


def queue_for(device: str, settings: Settings) -> str:
    """The queue of a check: ``cuda`` checks need a GPU worker, the rest go to ``cpu``."""
    return settings.gpu_queue if device == "cuda" else settings.cpu_queue


@dataclass(frozen=True)
class Submission:
    """What a submission left: its job, and whether an earlier submission with the same
    idempotency key had made it (``replayed``: nothing new was stored)."""

    job: Job
    replayed: bool


def submit_job(
    session: Session, request: JobIn, settings: Settings, owner: uuid.UUID | None = None
) -> Job:
    """Validate ``request`` and commit it as a queued job of ``owner``; nothing is sent yet."""
    return submit(session, request, settings, owner).job


def submit(
    session: Session,
    request: JobIn,
    settings: Settings,
    owner: uuid.UUID | None = None,
    *,
    idempotency_key: str | None = None,
) -> Submission:
    """Validate ``request`` and commit it as a queued job of ``owner``; nothing is sent yet.

    With ``idempotency_key``, the job of ``owner``'s earlier submission with that key is
    returned instead (``replayed``) when its request was the same; JobRejectedError naming the
    key if it was another request, or if the key is malformed.
    """
    scope = digest = None
    if idempotency_key is not None:
        scope = _idempotency_scope(idempotency_key, owner)
        digest = request_digest(request)
        earlier = repository.job_by_idempotency_key(session, scope)
        if earlier is not None:
            return Submission(_replayed(earlier, digest, idempotency_key), replayed=True)
    job = _new_job(request, settings, owner)
    job.idempotency_key = scope
    job.request_digest = digest
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
    """The job's queued checks that were never handed to the broker (a submission that ended
    between its commit and its sending leaves them so)."""
    return repository.never_sent_checks(session, job.id)


def _idempotency_scope(key: str, owner: uuid.UUID | None) -> str:
    """The stored form of ``key``: ``"<owner>:<key>"``; JobRejectedError if it is malformed.

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
    return f"{owner or OPEN_OWNER}:{text}"


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


def _new_job(request: JobIn, settings: Settings, owner: uuid.UUID | None) -> Job:
    parsed = validate_job(request, settings)
    admit(request, parsed, settings)
    job = Job(
        label=request.label,
        status=JobStatus.QUEUED,
        check_count=len(request.checks),
        api_key_id=owner,
    )
    for position, (check, expression) in enumerate(zip(request.checks, parsed, strict=True)):
        job.checks.append(
            Check(
                position=position,
                expression=check.expression,
                variables=list(expression.variables),
                points=check.points,
                dtype=check.dtype,
                device=check.device,
                nodes=check.nodes,
                hessian=check.hessian,
                samples=check.samples,
                domain={k: list(v) for k, v in check.domain.items()} if check.domain else None,
                seed=check.seed,
                rtol=check.rtol,
                atol=check.atol,
                strict=check.strict,
                fail_on=check_fail_on(check.fail_on, strict=check.strict),
                queue=queue_for(check.device, settings),
                functions=[CheckFunction(function=name) for name in sorted(expression.functions)],
            )
        )
    return job


def send_checks(session: Session, sender: CheckSender, checks: list[Check]) -> int:
    """Send ``checks`` to the broker and record when; returns how many the broker took."""
    sent: list[Check] = []
    for check in checks:
        try:
            sender.send_check(check.id, check.queue)
        except Exception:  # any broker failure: the check stays unsent, to be re-sent
            logger.warning("could not send check %s; it will be re-sent", check.id, exc_info=True)
            break
        sent.append(check)
    claims.mark_enqueued(session, sent, utc_now())
    session.commit()
    return len(sent)


def job_status(session: Session, job_id: uuid.UUID, owner: uuid.UUID | None = None) -> JobOut:
    """The job's state and progress; NotFoundError if there is no such job of ``owner``."""
    job = repository.get_job(session, job_id, owner)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    done = repository.count_reports_of_job(session, job_id)
    return _job_out(job, done)


def _job_out(job: Job, done: int) -> JobOut:
    return JobOut(
        id=job.id,
        label=job.label,
        status=job.status,
        verdict=job.verdict,
        passed=job.passed,
        progress=Progress(done=done, total=job.check_count),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def _outcome(report: Report, check: Check) -> Outcome:
    return read_outcome(
        report.verdict, report.document, report.entries, fail_on=check.fail_on, strict=check.strict
    )


def encode_cursor(number: int, kind: str = "r") -> str:
    """The opaque cursor that continues a listing after ``number``: a report id for
    ``/reports`` (kind ``r``), or a place in a job's report for its next page (kind ``e``)."""
    return base64.urlsafe_b64encode(f"{kind}{number}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str = "r", maximum: int = repository.MAX_SQL_INTEGER) -> int:
    """The number inside a cursor of ``kind``, from 0 to ``maximum`` (a report id fits a
    database integer); JobRejectedError naming the cursor if it is not such a cursor."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        text = ""
    digits = text[len(kind) :] if text.startswith(kind) else ""
    # ASCII digits only: int() would also take signs, spaces, underscores and other scripts.
    if digits.isascii() and digits.isdigit() and int(digits) <= maximum:
        return int(digits)
    raise JobRejectedError(
        [
            {
                "loc": ["query", "cursor"],
                "msg": f"invalid cursor {cursor!r}: pass next_cursor from a previous page",
                "type": "cursor",
                "position": None,
            }
        ]
    )


def list_reports(
    session: Session, filters: ReportFilters, *, cursor: str | None, limit: int
) -> ReportPage:
    """One page of reports matching ``filters``, newest first."""
    before_id = decode_cursor(cursor) if cursor else None
    rows = repository.list_reports(session, filters, before_id=before_id, limit=limit + 1)
    page = rows[:limit]
    functions = repository.functions_of_checks(session, [check.id for _, check in page])
    items = [_report_item(report, check, functions[check.id]) for report, check in page]
    next_cursor = encode_cursor(page[-1][0].id) if len(rows) > limit and page else None
    return ReportPage(items=items, next_cursor=next_cursor)


def _report_item(report: Report, check: Check, functions: list[str]) -> ReportItem:
    outcome = _outcome(report, check)
    worst = report.document.get("worst") or {}
    return ReportItem(
        id=report.id,
        check=check.id,
        job=report.job_id,
        index=check.position,
        expression=check.expression,
        verdict=report.verdict,
        reason=report.reason,
        passed=outcome.passed,
        counts=outcome.counts,
        blamed=[Blamed.model_validate(row) for row in outcome.blamed],
        dtype=report.dtype,
        device=report.device,
        functions=functions,
        worst=Worst(
            ratio=report_number(worst.get("ratio")),
            abs_error=report.worst_abs_error,
            rel_error=report.worst_rel_error,
            ulp_error=report.worst_ulp_error,
        ),
        created_at=report.created_at,
    )


def report_stats(session: Session, filters: ReportFilters, group_by: GroupBy | None) -> Stats:
    """Counts of reports by verdict, overall and per group."""
    groups: dict[str | None, Counter[str]] = defaultdict(Counter)
    for key, verdict, count in repository.count_verdicts(session, filters, group_by):
        groups[key][verdict] += count
    if group_by == "function":
        # A check that calls two functions is in two groups; the totals count it once.
        rows = repository.count_verdicts(session, filters, None)
        totals = Counter({verdict: count for _, verdict, count in rows})
    else:
        totals = Counter()
        for counts in groups.values():
            totals.update(counts)
    return Stats(
        group_by=group_by,
        counts=_ordered(totals),
        total=sum(totals.values()),
        groups=[
            StatsGroup(key=key, counts=_ordered(counts), total=sum(counts.values()))
            for key, counts in groups.items()
        ]
        if group_by is not None
        else [],
    )


def _ordered(counts: Counter[str]) -> dict[str, int]:
    return {verdict: counts[verdict] for verdict in VERDICT_ORDER if counts[verdict]}


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware datetime; a naive time is taken to be UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


ENTRY_PLACES = repository.MAX_SQL_INTEGER + 1
"""A place in a job's report, (check position, entry index), is one cursor number:
position * ENTRY_PLACES + index (both are database integers)."""


def job_report_page(
    session: Session,
    job_id: uuid.UUID,
    owner: uuid.UUID | None,
    settings: Settings,
    *,
    entries: EntrySelection,
    limit: int,
    cursor: str | None,
) -> JobReportPage:
    """One page of a job's report from ``cursor`` on (``owner``'s only): at most ``limit``
    entries, ``max_report_page_checks`` checks and ``max_report_page_document_chars`` of stored
    documents; NotFoundError for another owner's or no job, JobRejectedError for a bad cursor."""
    job = job_status(session, job_id, owner)
    place = (0, 0)
    if cursor is not None:
        number = decode_cursor(cursor, "e", maximum=ENTRY_PLACES * ENTRY_PLACES - 1)
        place = divmod(number, ENTRY_PLACES)
    checks, pending, next_place = _page(
        session, job_id, settings, place, entries, min(limit, settings.max_report_page_entries)
    )
    next_cursor = None
    if next_place is not None:
        next_cursor = encode_cursor(next_place[0] * ENTRY_PLACES + next_place[1], "e")
    return JobReportPage(
        job=job, checks=checks, pending=pending, entries=entries, next_cursor=next_cursor
    )


def _page(
    session: Session,
    job_id: uuid.UUID,
    settings: Settings,
    place: tuple[int, int],
    selection: EntrySelection,
    limit: int,
) -> tuple[list[dict[str, Any]], list[PendingCheck], tuple[int, int] | None]:
    """The checks of one page from ``place`` on, its pending checks, and the place where the
    next page starts (None at the end of the report)."""
    position, index = place
    rows = repository.reported_checks(
        session, job_id, from_position=position, limit=settings.max_report_page_checks + 1
    )
    shown: list[ReportedCheck] = []
    chars_left = settings.max_report_page_document_chars
    next_place: tuple[int, int] | None = None
    for number, row in enumerate(rows):
        size = row.document_chars or 0
        if number == settings.max_report_page_checks or (
            row.report_id is not None
            and chars_left < settings.max_report_page_document_chars
            and size > chars_left
        ):
            next_place = (row.position, 0)
            break
        shown.append(row)
        chars_left -= size
    reported = [row for row in shown if row.report_id is not None]
    by_check: dict[int, list[dict[str, Any]]] = {}
    if selection != "none" and reported:
        found = repository.report_entries(
            session,
            [row.report_id for row in reported if row.report_id is not None],
            after=(position, index),
            limit=limit + 1,
            failing=selection == "failing",
        )
        if len(found) > limit:
            next_place = (found[limit][0], found[limit][1])
            found = found[:limit]
            shown = [row for row in shown if row.position <= next_place[0]]
            reported = [row for row in reported if row.position <= next_place[0]]
        by_check = {row.position: [] for row in reported}
        for check_position, _index, entry in found:
            by_check[check_position].append(entry)
    documents = repository.report_documents(
        session, [row.report_id for row in reported if row.report_id is not None]
    )
    uncounted = [report_id for report_id, document in documents.items() if "counts" not in document]
    counted = repository.count_entries_by_verdict(session, uncounted)
    checks: list[dict[str, Any]] = []
    pending: list[PendingCheck] = []
    for row in shown:
        if row.report_id is None:
            pending.append(
                PendingCheck(
                    check=row.id, index=row.position, expression=row.expression, status=row.status
                )
            )
            continue
        document = documents[row.report_id]
        if row.report_id in counted:  # stored before counts existed; none: no entries
            document = {**document, "counts": counted[row.report_id]}
        outcome = read_outcome(
            str(row.verdict), document, None, fail_on=row.fail_on, strict=row.strict
        )
        check = {"check": str(row.id), "index": row.position, **document}
        check.pop("entries", None)
        if selection != "none":
            check["entries"] = by_check[row.position]
        check.update(
            fail_on=outcome.fail_on,
            passed=outcome.passed,
            counts=outcome.counts,
            blamed=outcome.blamed,
        )
        checks.append(check)
    return checks, pending, next_place
