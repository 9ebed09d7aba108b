"""``/reports`` and ``/stats``: query and count stored reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from verifier import service
from verifier.api.deps import SessionDep, SettingsDep
from verifier.api.ratelimit import CallerDep
from verifier.api.responses import ACCESS_RESPONSES
from verifier.repository import ReportFilters
from verifier.schemas import Dtype, GroupBy, ReportPage, Stats, VerdictName

router = APIRouter(tags=["reports"], responses=ACCESS_RESPONSES)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_FILTER_CHARS = 2000


def report_filters(
    caller: CallerDep,
    verdict: Annotated[
        VerdictName | None, Query(description="a verdict (verifier/core/verdict.py)")
    ] = None,
    expression: Annotated[
        str | None, Query(max_length=MAX_FILTER_CHARS, description="substring of the expression")
    ] = None,
    function: Annotated[
        str | None, Query(max_length=32, description="a function the expression calls, e.g. sinc")
    ] = None,
    dtype: Dtype | None = None,
    device: Annotated[
        str | None, Query(max_length=32, description="cpu, cuda (any index) or cuda:N")
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
        since=service.as_utc(since),
        until=service.as_utc(until),
    )


FiltersDep = Annotated[ReportFilters, Depends(report_filters)]


@router.get("/reports", response_model=ReportPage)
def list_reports(
    filters: FiltersDep,
    session: SessionDep,
    settings: SettingsDep,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of a page")] = None,
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
