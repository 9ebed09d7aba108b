"""``/reports``, ``/stats`` and ``/jobs/{id}/report``: query, count and read stored reports.

Every answer is bounded whatever was stored. A listing reads no report's entries (nor the
rest of its document). A job's report is read a page at a time: at most ``limit`` entries
(``max_report_page_entries``), ``max_report_page_checks`` checks and
``max_report_page_document_chars`` of stored documents; the database cuts the entries out of a
report, so a report of a million entries costs the API one page of them. ``next_cursor``, passed
back as ``cursor``, continues where a page stopped, in the middle of a check's entries if need
be (the check then comes again, with the entries that follow).

Filters are refused with a 422 naming the parameter where a database could not take them
(control characters: PostgreSQL stores no NUL), and dates are held within what every database
stores (a time zone's offset may carry year 1 or 9999 past it).
"""

from __future__ import annotations

import uuid
from datetime import MINYEAR, UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator, Field
from sqlalchemy.orm import Session

from verifier import repository, service
from verifier.api.deps import SessionDep, SettingsDep
from verifier.api.ratelimit import CallerDep
from verifier.api.responses import ACCESS_RESPONSES
from verifier.config import MAX_REPORT_PAGE_ENTRIES, Settings
from verifier.outcome import read_outcome
from verifier.repository import ReportedCheck, ReportFilters
from verifier.schemas import (
    Dtype,
    GroupBy,
    JobReport,
    PendingCheck,
    ReportPage,
    Stats,
    VerdictName,
)

router = APIRouter(tags=["reports"], responses=ACCESS_RESPONSES)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_FILTER_CHARS = 2000
MAX_CURSOR_CHARS = 64
ENTRY_PLACES = repository.MAX_SQL_INTEGER + 1
"""A place in a job's report, (check position, entry index), is one cursor number:
position * ENTRY_PLACES + index (both are database integers)."""
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such job (or it belongs to another key)"}
}

EntrySelection = Literal["all", "failing", "none"]


def _printable(value: str | None) -> str | None:
    if value is not None and any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError(
            "control characters (NUL, tab, newline, ...) are not allowed in a filter; "
            "percent-encode only printable text"
        )
    return value


PrintableText = Annotated[str, AfterValidator(_printable)]


def _utc(value: datetime | None) -> datetime | None:
    """``value`` in UTC (a naive time is UTC); a time that UTC cannot write (year 1 or 9999
    with an offset) becomes the earliest or latest time there is, which means the same: before
    or after every report."""
    aware = service.as_utc(value)
    if aware is None:
        return None
    try:
        return aware.astimezone(UTC)
    except OverflowError:
        extreme = datetime.min if aware.year == MINYEAR else datetime.max
        return extreme.replace(tzinfo=UTC)


def report_filters(
    caller: CallerDep,
    verdict: Annotated[
        VerdictName | None, Query(description="a verdict (verifier/core/verdict.py)")
    ] = None,
    expression: Annotated[
        PrintableText | None,
        Query(max_length=MAX_FILTER_CHARS, description="substring of the expression"),
    ] = None,
    function: Annotated[
        PrintableText | None,
        Query(max_length=32, description="a function the expression calls, e.g. sinc"),
    ] = None,
    dtype: Dtype | None = None,
    device: Annotated[
        PrintableText | None,
        Query(max_length=32, description="cpu, cuda (any index) or cuda:N"),
    ] = None,
    job: uuid.UUID | None = None,
    since: Annotated[datetime | None, Query(description="reports written at or after")] = None,
    until: Annotated[datetime | None, Query(description="reports written before")] = None,
) -> ReportFilters:
    """The report filters of a query string, limited to the caller's own jobs."""
    return ReportFilters(
        owner=caller.key_id,
        verdict=str(verdict) if verdict is not None else None,
        expression=expression,
        function=function,
        dtype=dtype,
        device=device,
        job=job,
        since=_utc(since),
        until=_utc(until),
    )


FiltersDep = Annotated[ReportFilters, Depends(report_filters)]


@router.get("/reports", response_model=ReportPage)
def list_reports(
    filters: FiltersDep,
    session: SessionDep,
    settings: SettingsDep,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_CHARS, description="next_cursor of a page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> ReportPage:
    """Reports matching the filters, newest first, a page at a time."""
    return service.list_reports(
        session, filters, cursor=cursor, limit=min(limit, settings.max_page_size)
    )


@router.get("/stats", response_model=Stats)
def read_stats(
    filters: FiltersDep,
    session: SessionDep,
    group_by: GroupBy | None = None,
) -> Stats:
    """Counts of reports by verdict, overall and grouped by function, dtype or device."""
    return service.report_stats(session, filters, group_by)


class JobReportPage(JobReport):
    """One page of a job's report: its checks from where ``cursor`` pointed, in submission
    order; pass ``next_cursor`` back as ``cursor`` for the rest."""

    entries: EntrySelection = Field(
        description="which entries each check carries: all, failing (verdict not pass) or "
        "none (the check has no 'entries' then)"
    )
    next_cursor: str | None = Field(
        description="where the next page starts (null: this page ends the report); a check "
        "whose entries continue there comes again with the entries that follow"
    )


@router.get("/jobs/{job_id}/report", response_model=JobReportPage, responses=NOT_FOUND)
def read_job_report(
    job_id: uuid.UUID,
    caller: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
    entries: Annotated[
        EntrySelection,
        Query(
            description="the entries of each check: all, failing (those whose verdict is not "
            "pass) or none"
        ),
    ] = "all",
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_REPORT_PAGE_ENTRIES,
            description="the most entries in this page, over all its checks",
        ),
    ] = MAX_REPORT_PAGE_ENTRIES,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_CHARS, description="next_cursor of the previous page"),
    ] = None,
) -> JobReportPage:
    """The job and the report of each finished check, in the core's report format, a page at
    a time (checks with no report yet are listed as pending)."""
    job = service.job_status(session, job_id, caller.key_id)
    place = (0, 0)
    if cursor is not None:
        number = service.decode_cursor(cursor, "e", maximum=ENTRY_PLACES * ENTRY_PLACES - 1)
        place = divmod(number, ENTRY_PLACES)
    checks, pending, next_place = _page(
        session, job_id, settings, place, entries, min(limit, settings.max_report_page_entries)
    )
    next_cursor = None
    if next_place is not None:
        next_cursor = service.encode_cursor(next_place[0] * ENTRY_PLACES + next_place[1], "e")
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
