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
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator

from verifier.api.deps import SessionDep, SettingsDep
from verifier.api.ratelimit import CallerDep
from verifier.api.responses import ACCESS_RESPONSES
from verifier.config import MAX_PAGE_SIZE, MAX_REPORT_PAGE_ENTRIES
from verifier.service import reports as report_queries
from verifier.service.schemas import (
    Dtype,
    EntrySelection,
    GroupBy,
    JobReportPage,
    ReportPage,
    Stats,
    VerdictName,
)
from verifier.store.repository import ReportFilters

router = APIRouter(tags=["reports"], responses=ACCESS_RESPONSES)

DEFAULT_PAGE_SIZE = 50
MAX_FILTER_CHARS = 2000
MAX_CURSOR_CHARS = 64
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such job (or it belongs to another key)"}
}


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
    aware = report_queries.as_utc(value)
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
        VerdictName | None, Query(description="a verdict (verifier/core/judge/verdict.py)")
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
        api_key_id=caller.key_id,
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
    return report_queries.list_reports(
        session, filters, cursor=cursor, limit=min(limit, settings.max_page_size)
    )


@router.get("/stats", response_model=Stats)
def read_stats(
    filters: FiltersDep,
    session: SessionDep,
    group_by: GroupBy | None = None,
) -> Stats:
    """Counts of reports by verdict, overall and grouped by function, dtype or device."""
    return report_queries.report_stats(session, filters, group_by)


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
    return report_queries.job_report_page(
        session,
        job_id,
        caller.key_id,
        settings,
        entries=entries,
        limit=limit,
        cursor=cursor,
    )
