"""Querying stored reports: every filter, exact function matching, cursors, and stats."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from verifier.config import Settings
from verifier.delivery.execution import report_row
from verifier.service import jobs, reports
from verifier.service.schemas import JobIn
from verifier.store import repository
from verifier.store.models import Job, utc_now
from verifier.store.repository import ReportFilters

ReportDocument = Callable[..., dict[str, Any]]

# (expression, verdict, dtype, device): a small catalogue with one distinguishing trait each.
CATALOGUE = [
    ("sin(x)", "pass", "float64", "cpu"),
    ("sinc(x)", "fail", "float32", "cpu"),
    ("exp(x) + sin(x)", "pass", "float32", "cuda:0"),
    ("x**2", "undefined", "float64", "cuda:1"),
    ("log(x)", "domain", "float16", "cpu"),
]


def _store(session: Session, settings: Settings, make: ReportDocument) -> Job:
    body = JobIn.model_validate(
        {"checks": [{"expression": e, "points": [{"x": 2}]} for e, *_ in CATALOGUE]}
    )
    job = jobs.submit_job(session, body, settings)
    for check, (expression, verdict, dtype, device) in zip(job.checks, CATALOGUE, strict=True):
        document = make(expression, verdict, dtype=dtype, device=device)
        assert repository.insert_report(session, report_row(check, document))
    session.commit()
    return job


def _expressions(session: Session, **filters: object) -> list[str]:
    page = reports.list_reports(session, ReportFilters(**filters), cursor=None, limit=50)  # type: ignore[arg-type]
    return sorted(item.expression for item in page.items)


def test_filters_select_the_matching_reports(
    session: Session, settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _store(session, settings, make_report_document)
    assert _expressions(session, verdict="fail") == ["sinc(x)"]
    assert _expressions(session, dtype="float32") == ["exp(x) + sin(x)", "sinc(x)"]
    assert _expressions(session, expression="x**") == ["x**2"]  # a substring, not a pattern
    assert _expressions(session, device="cuda") == ["exp(x) + sin(x)", "x**2"]
    assert _expressions(session, device="cuda:1") == ["x**2"]
    assert _expressions(session, job=job.id) == sorted(e for e, *_ in CATALOGUE)


def test_function_filter_is_exact(
    session: Session, settings: Settings, make_report_document: ReportDocument
) -> None:
    _store(session, settings, make_report_document)
    # "sin" must not match "sinc": functions are rows, not a substring of a column.
    assert _expressions(session, function="sin") == ["exp(x) + sin(x)", "sin(x)"]
    assert _expressions(session, function="sinc") == ["sinc(x)"]


def test_time_window_filters(
    session: Session, settings: Settings, make_report_document: ReportDocument
) -> None:
    _store(session, settings, make_report_document)
    now = utc_now()
    assert len(_expressions(session, since=now - timedelta(hours=1))) == len(CATALOGUE)
    assert _expressions(session, until=now - timedelta(hours=1)) == []


def test_cursor_pagination_visits_every_report_once(
    session: Session, settings: Settings, make_report_document: ReportDocument
) -> None:
    _store(session, settings, make_report_document)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = reports.list_reports(session, ReportFilters(), cursor=cursor, limit=2)
        seen.extend(item.expression for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(e for e, *_ in CATALOGUE)
    assert len(seen) == len(set(seen))


def test_report_items_carry_worst_errors_and_functions(
    session: Session, settings: Settings, make_report_document: ReportDocument
) -> None:
    _store(session, settings, make_report_document)
    page = reports.list_reports(session, ReportFilters(function="exp"), cursor=None, limit=5)
    (item,) = page.items
    assert item.functions == ["exp", "sin"]
    assert item.device == "cuda:0"
    # Worst errors are over the entries that did not pass (StoredReport.worst_errors): none here.
    assert item.worst.ratio is None and item.worst.ulp_error is None
    (failing,) = reports.list_reports(
        session, ReportFilters(function="sinc"), cursor=None, limit=5
    ).items
    assert failing.worst.ulp_error == 0.5  # report_document's ulp_error
    assert failing.worst.ratio == 4.0  # report_document's ratio of an entry that did not pass


def test_stats_count_by_verdict_and_group(
    session: Session, settings: Settings, make_report_document: ReportDocument
) -> None:
    _store(session, settings, make_report_document)
    overall = reports.report_stats(session, ReportFilters(), None)
    assert overall.counts == {"pass": 2, "undefined": 1, "domain": 1, "fail": 1}
    assert overall.total == 5
    by_dtype = reports.report_stats(session, ReportFilters(), "dtype")
    groups = {group.key: group.counts for group in by_dtype.groups}
    assert groups == {
        "float16": {"domain": 1},
        "float32": {"pass": 1, "fail": 1},
        "float64": {"pass": 1, "undefined": 1},
    }
    by_function = reports.report_stats(session, ReportFilters(), "function")
    groups = {group.key: group.total for group in by_function.groups}
    # x**2 calls no function; exp(x) + sin(x) is in both the exp and the sin group.
    assert groups == {None: 1, "exp": 1, "log": 1, "sin": 2, "sinc": 1}
    assert by_function.total == 5
