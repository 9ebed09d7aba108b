"""The job page shows each check's worst error over its tolerance (err/allowed, with ulps beside
it) and the operations its checks blame, summed over the checks, as ``derivcheck status`` does
(verifier/cli/render.py). Reports are stored directly from documents built here, over a live
API answering real HTTP on a rolled-back session.
"""

from __future__ import annotations

import html as markup
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from servers import ServerThread
from slowness import SLOWNESS
from sqlalchemy.orm import Session

from verifier.api import create_app
from verifier.api.deps import get_session
from verifier.config import Settings
from verifier.delivery.sender import InMemorySender
from verifier.store import repository
from verifier.store.documents import report_row


@pytest.fixture
def client(settings: Settings, session: Session) -> Iterator[httpx.Client]:
    """A live API, keys off, whose database work is rolled back after the test."""
    app = create_app(settings.model_copy(update={"api_keys": "off"}), InMemorySender())
    app.dependency_overrides[get_session] = lambda: session
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        yield http


def _plain(cell: str) -> str:
    """A cell's text, tags and spacing dropped."""
    return " ".join(markup.unescape(re.sub(r"<[^>]+>", "", cell)).split())


def _text(found: re.Match[str] | None) -> str:
    assert found is not None
    return _plain(found.group(1))


def _cells(row: str) -> list[str]:
    """The text of a table row's cells."""
    return [_plain(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]


def test_the_job_page_shows_err_over_allowed_and_the_blamed_operations_summed(
    client: httpx.Client, session: Session, make_report_document: Callable[..., Any]
) -> None:
    checks = [{"expression": "x*x", "points": [{"x": 2}]} for _ in range(3)]
    accepted = client.post("/jobs", json={"checks": checks})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    stored = repository.checks_of_job(session, uuid.UUID(job_id))
    documents = [
        make_report_document(
            "x*x", "fail", ratio=12.5, ulp_error=800.0, blame="mul", phase="backward"
        ),
        make_report_document(
            "x*x", "fail", ratio=3.0, ulp_error=192.0, blame="mul", phase="backward"
        ),
        make_report_document("x*x", "pass", ratio=0.5, ulp_error=0.5),
    ]
    for check, document in zip(sorted(stored, key=lambda c: c.position), documents, strict=True):
        assert repository.insert_report(session, report_row(check, document))
    session.commit()
    # By hand: each document's one entry is its worst, so worst.ratio is the ratio it was
    # built with (conftest.py's report_document); a passing report names no worst error.
    assert [d["worst"]["ratio"] for d in documents[:2]] == [12.5, 3.0]

    answer = client.get(f"/ui/jobs/{job_id}")
    assert answer.status_code == 200, answer.text[:2000]
    html = answer.text
    assert "worst err/allowed" in html and "worst ulps" not in html
    rows = re.findall(r'<tr class="check".*?</tr>', html, flags=re.S)
    worst = [_text(re.search(r'class="num ratio">(.*?)</td>', row, flags=re.S)) for row in rows]
    assert worst == ["12.5 (800 ulps)", "3 (192 ulps)", "-"]
    # One row for mul in backward: 1 failing entry in each of checks 0 and 1, summed.
    table = re.search(r'<table id="blamed".*?</table>', html, flags=re.S)
    assert table is not None, "no blamed-operations table"
    blamed = [
        _cells(row)
        for row in re.findall(r"<tr class=\"blamed\".*?</tr>", table.group(0), flags=re.S)
    ]
    assert blamed == [["mul", "backward", "fail", "2", "0, 1"]]


def test_a_job_whose_checks_blame_nothing_has_no_blamed_table(
    client: httpx.Client, session: Session, make_report_document: Callable[..., Any]
) -> None:
    accepted = client.post("/jobs", json={"checks": [{"expression": "x", "points": [{"x": 2}]}]})
    job_id = accepted.json()["id"]
    (check,) = repository.checks_of_job(session, uuid.UUID(job_id))
    assert repository.insert_report(session, report_row(check, make_report_document("x", "pass")))
    session.commit()
    html = client.get(f"/ui/jobs/{job_id}").text
    assert 'id="blamed"' not in html
