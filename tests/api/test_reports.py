"""GET /reports and GET /stats over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy.orm import Session

from verifier.store import repository
from verifier.store.documents import report_row

ReportDocument = Callable[..., dict[str, Any]]


def _job_with_reports(
    client: httpx.Client, session: Session, make: ReportDocument, verdicts: list[str]
) -> str:
    checks = [{"expression": f"sin(x) + {i}", "points": [{"x": 1}]} for i in range(len(verdicts))]
    job_id: str = client.post("/jobs", json={"checks": checks}).json()["id"]
    job = repository.get_job(session, uuid.UUID(job_id))
    assert job is not None
    for check, verdict in zip(job.checks, verdicts, strict=True):
        repository.insert_report(session, report_row(check, make(check.expression, verdict)))
    session.commit()
    return job_id


def test_reports_filter_by_verdict_and_page_with_cursors(
    client: httpx.Client, session: Session, make_report_document: ReportDocument
) -> None:
    job_id = _job_with_reports(
        client, session, make_report_document, ["pass", "fail", "fail", "fail"]
    )
    first = client.get("/reports", params={"verdict": "fail", "limit": 2}).json()
    assert [item["verdict"] for item in first["items"]] == ["fail", "fail"]
    assert first["next_cursor"]
    second = client.get(
        "/reports", params={"verdict": "fail", "limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert len(second["items"]) == 1
    assert second["next_cursor"] is None
    item = second["items"][0]
    assert item["job"] == job_id
    assert item["functions"] == ["sin"]
    assert set(item["worst"]) == {"ratio", "abs_error", "rel_error", "ulp_error"}


def test_reports_reject_a_bad_cursor_and_an_unknown_verdict(client: httpx.Client) -> None:
    response = client.get("/reports", params={"cursor": "garbage!"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]
    assert client.get("/reports", params={"verdict": "great"}).status_code == 422


def test_stats_group_by_function(
    client: httpx.Client, session: Session, make_report_document: ReportDocument
) -> None:
    _job_with_reports(client, session, make_report_document, ["pass", "fail"])
    stats = client.get("/stats", params={"group_by": "function"}).json()
    assert stats["counts"] == {"pass": 1, "fail": 1}
    assert stats["groups"] == [{"key": "sin", "counts": {"pass": 1, "fail": 1}, "total": 2}]


def test_stats_filtered_by_function_and_grouped_by_function(
    client: httpx.Client, session: Session, make_report_document: ReportDocument
) -> None:
    _job_with_reports(client, session, make_report_document, ["pass", "fail"])
    checks = [{"expression": "exp(x)*sin(x)", "points": [{"x": 1}]}]
    job_id = client.post("/jobs", json={"checks": checks}).json()["id"]
    job = repository.get_job(session, uuid.UUID(job_id))
    assert job is not None
    (check,) = job.checks
    document = make_report_document(check.expression, "pass")
    repository.insert_report(session, report_row(check, document))
    session.commit()
    # The filter keeps the one check that uses exp; grouping shows all its functions.
    response = client.get("/stats", params={"function": "exp", "group_by": "function"})
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["counts"] == {"pass": 1}  # the totals count a check once
    assert stats["groups"] == [
        {"key": "exp", "counts": {"pass": 1}, "total": 1},
        {"key": "sin", "counts": {"pass": 1}, "total": 1},
    ]
