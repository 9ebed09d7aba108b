"""StoredReport queries: list and count stored reports, and read a job's report page by page.

Every read is scoped to an ``api_key_id`` (the caller's API key id; None when keys are off); another
key's job is reported as not found. Cursors are opaque: a report id for ``/reports``, a place
(check position, entry index) in a job's report for its pages.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.config import Settings
from verifier.core.judge.verdict import VERDICT_ORDER
from verifier.errors import RequestRejectedError
from verifier.service.jobs import job_status
from verifier.service.schemas import (
    Blamed,
    EntrySelection,
    GroupBy,
    JobReportPage,
    PendingCheck,
    ReportItem,
    ReportPage,
    Stats,
    StatsGroup,
    Worst,
)
from verifier.store import repository
from verifier.store.documents import ReportView
from verifier.store.models import Check, StoredReport
from verifier.store.outcome import Outcome, read_outcome
from verifier.store.repository import ReportedCheck, ReportFilters


def _outcome(view: ReportView, check: Check) -> Outcome:
    return read_outcome(view, None, fail_on=check.fail_on, strict=check.strict)


def encode_cursor(number: int, kind: str = "r") -> str:
    """The opaque cursor that continues a listing after ``number``: a report id for
    ``/reports`` (kind ``r``), or a place in a job's report for its next page (kind ``e``)."""
    return base64.urlsafe_b64encode(f"{kind}{number}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str = "r", maximum: int = repository.MAX_SQL_INTEGER) -> int:
    """The number inside a cursor of ``kind``, from 0 to ``maximum`` (a report id fits a
    database integer); RequestRejectedError naming the cursor if it is not such a cursor."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        text = ""
    digits = text[len(kind) :] if text.startswith(kind) else ""
    # ASCII digits only: int() would also take signs, spaces, underscores and other scripts.
    if digits.isascii() and digits.isdigit() and int(digits) <= maximum:
        return int(digits)
    raise RequestRejectedError(
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


def _report_item(report: StoredReport, check: Check, functions: list[str]) -> ReportItem:
    view = ReportView.read(report.document, report.verdict)  # read once per listed report
    outcome = _outcome(view, check)
    worst = view.worst
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
        compared_device=report.compared_device,
        compared_verdict=report.compared_verdict,
        functions=functions,
        worst=Worst(
            ratio=worst["ratio"],
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
    api_key_id: uuid.UUID | None,
    settings: Settings,
    *,
    entries: EntrySelection,
    limit: int,
    cursor: str | None,
) -> JobReportPage:
    """One page of a job's report from ``cursor`` on (``api_key_id``'s only): at most ``limit``
    entries, ``max_report_page_checks`` checks and ``max_report_page_document_chars`` of stored
    documents; NotFoundError for another api_key_id's or no job, RequestRejectedError for a bad
    cursor."""
    job = job_status(session, job_id, api_key_id)
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
        view = ReportView.read(document, str(row.verdict))
        outcome = read_outcome(view, None, fail_on=row.fail_on, strict=row.strict)
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
