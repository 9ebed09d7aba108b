"""Reports at any legal size, over real HTTP on SQLite and PostgreSQL: ``GET /jobs/{id}/report``
pages entries (``entries=all|failing|none``, ``limit``, ``cursor``) that the database cuts out
of the stored list, and ``GET /reports`` lists without reading entries or documents.

docs/hostile-load.md: a report of 1,121,000 entries (a 1,000-point, 32-variable check; a
303 MB row) once took 19.6 s from ``/jobs/{id}/report`` and grew the API by 2.2 GB, and
``/reports?limit=5`` beside it took 8 s.
Here a report row of 200,000 entries is written directly, as a worker would store it.
"""

from __future__ import annotations

import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from slowness import SLOWNESS
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from verifier.api import create_app
from verifier.config import MAX_REPORT_PAGE_ENTRIES, Settings
from verifier.delivery.execution import report_row
from verifier.service import reports
from verifier.service.reports import ENTRY_PLACES
from verifier.store import migrate, repository
from verifier.store.engine import make_session_factory

ReportDocument = Callable[..., dict[str, Any]]

BIG_ENTRIES = 200_000
FAIL_EVERY = 4  # entries 0, 4, 8, ... fail, the rest pass: 50,000 failing of 200,000
PAGE = 1000


class Live:
    """A live API on one database: its URL, its engine, and a session factory of its own."""

    def __init__(self, url: str, engine: Engine, settings: Settings):
        self.url = url
        self.engine = engine
        self.settings = settings
        self.sessions = make_session_factory(engine)

    def job(
        self, documents: list[dict[str, Any]], *, pending: int = 0, variables: str = "x"
    ) -> str:
        """A job of ``len(documents) + pending`` checks, the first ones with these reports."""
        checks = [
            {"expression": f"sin({variables}) + {n}", "points": [{variables: 1}]}
            for n in range(len(documents) + pending)
        ]
        accepted = httpx.post(f"{self.url}/jobs", json={"checks": checks}, timeout=30 * SLOWNESS)
        assert accepted.status_code == 202, accepted.text
        job_id: str = accepted.json()["id"]
        with self.sessions() as session:
            stored = repository.checks_of_job(session, uuid.UUID(job_id))
            for check, document in zip(stored, documents, strict=False):
                assert repository.insert_report(session, report_row(check, document))
            session.commit()
        return job_id


@pytest.fixture(params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    settings: Settings,
    server_thread: Any,
    sender: Any,
) -> Iterator[Live]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pages.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate.upgrade(url)
    on_database = settings.model_copy(
        update={"database_url": url, "api_keys": "off", "rate_limit_per_minute": 0}
    )
    app = create_app(on_database, sender)
    engine = app.state.engine
    with server_thread(app) as base:
        yield Live(base, engine, on_database)


def _document(make: ReportDocument, expression: str, entries: int) -> dict[str, Any]:
    """A report of ``entries`` gradient entries, every FAIL_EVERY-th failing, each naming its
    own index in ``point`` so that the order can be checked."""
    document = make(expression, "fail")
    (entry,) = document["entries"]
    document["entries"] = [
        {**entry, "point": n, "verdict": "fail" if n % FAIL_EVERY == 0 else "pass"}
        for n in range(entries)
    ]
    failing = len(range(0, entries, FAIL_EVERY))
    document["counts"] = {"pass": entries - failing, "fail": failing}
    return document


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    issued: list[str] = []

    def record(*args: Any) -> None:
        issued.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield issued
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _reads_whole_column(statement: str, column: str) -> bool:
    """Whether a SELECT returns the column itself (not an element or a length of it)."""
    head = statement.split("FROM", 1)[0]
    return head.startswith("SELECT") and any(
        part.strip() == f"reports.{column}" for part in head.removeprefix("SELECT").split(",")
    )


def test_a_page_of_a_200000_entry_report_is_bounded_and_reads_no_whole_entry_list(
    live: Live, make_report_document: ReportDocument
) -> None:
    job_id = live.job([_document(make_report_document, "sin(x) + 0", BIG_ENTRIES)])
    with _statements(live.engine) as issued:
        tracemalloc.start()
        started = time.monotonic()
        response = httpx.get(
            f"{live.url}/jobs/{job_id}/report", params={"limit": PAGE}, timeout=30 * SLOWNESS
        )
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert response.status_code == 200, response.text
    page = response.json()
    (check,) = page["checks"]
    assert [entry["point"] for entry in check["entries"]] == list(range(PAGE))
    assert check["counts"] == {"pass": 150_000, "fail": 50_000}  # from _document
    assert page["next_cursor"] is not None and page["entries"] == "all"
    # The whole report is about 80 MB of JSON (200,000 entries of ~400 bytes) and was read
    # whole before; a page of 1,000 entries is ~0.4 MB and the API's allocations stay small.
    assert len(response.content) < 1_000_000
    assert peak < 32_000_000, f"the API allocated {peak / 1e6:.0f} MB at its peak"
    # docs/hostile-load.md: 19.6 s for the whole report before, 2.1 s for a page of 10,000
    # entries now; this page is a tenth of that: a latency of this machine's work, scaled.
    assert elapsed < 5.0 * SLOWNESS
    assert not any(_reads_whole_column(s, "entries") for s in issued), issued


def test_a_cursor_continues_a_big_report_to_its_last_entry(
    live: Live, make_report_document: ReportDocument
) -> None:
    job_id = live.job([_document(make_report_document, "sin(x) + 0", BIG_ENTRIES)])
    # Jump near the end with the cursor the API would hand out there (position 0, entry 199,500).
    near_end = reports.encode_cursor(0 * ENTRY_PLACES + BIG_ENTRIES - 500, "e")
    response = httpx.get(
        f"{live.url}/jobs/{job_id}/report",
        params={"cursor": near_end, "limit": PAGE},
        timeout=30 * SLOWNESS,
    )
    assert response.status_code == 200, response.text
    page = response.json()
    (check,) = page["checks"]
    assert [entry["point"] for entry in check["entries"]] == list(
        range(BIG_ENTRIES - 500, BIG_ENTRIES)
    )
    assert page["next_cursor"] is None
    failing = httpx.get(
        f"{live.url}/jobs/{job_id}/report",
        params={"cursor": near_end, "limit": PAGE, "entries": "failing"},
        timeout=30 * SLOWNESS,
    ).json()
    points = [entry["point"] for entry in failing["checks"][0]["entries"]]
    assert points == list(range(BIG_ENTRIES - 500, BIG_ENTRIES, FAIL_EVERY))


def test_reports_listing_reads_neither_entries_nor_documents_and_stays_small(
    live: Live, make_report_document: ReportDocument
) -> None:
    live.job([_document(make_report_document, "sin(x) + 0", BIG_ENTRIES)])
    with _statements(live.engine) as issued:
        started = time.monotonic()
        response = httpx.get(f"{live.url}/reports", params={"limit": 5}, timeout=30 * SLOWNESS)
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert item["counts"] == {"pass": 150_000, "fail": 50_000}  # stored counts, not recounted
    assert item["passed"] is False and item["worst"]["ratio"] == 4.0  # report_document's ratio
    assert len(response.content) < 5_000
    # docs/hostile-load.md: 8 s when listing loaded every report's entries, 0.12 s now on the
    # development machine; a latency of this machine's work, so it scales with SLOWNESS.
    assert elapsed < 1.0 * SLOWNESS
    selects = [s for s in issued if s.startswith("SELECT")]
    assert selects, issued
    assert not any(_reads_whole_column(s, "entries") for s in selects), selects
    assert not any(_reads_whole_column(s, "document") for s in selects), selects
    assert not any("json_each" in s or "json_array_elements" in s for s in selects), selects


def test_walking_every_page_visits_each_selected_entry_once_in_order(
    live: Live, make_report_document: ReportDocument
) -> None:
    sizes = [2500, 0, 700]
    documents = [
        _document(make_report_document, f"sin(x) + {n}", size) for n, size in enumerate(sizes)
    ]
    job_id = live.job(documents, pending=1)
    for selection, step in (("all", 1), ("failing", FAIL_EVERY)):
        seen: dict[int, list[int]] = {}
        pending: list[int] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": PAGE, "entries": selection}
            if cursor is not None:
                params["cursor"] = cursor
            page = httpx.get(
                f"{live.url}/jobs/{job_id}/report", params=params, timeout=30 * SLOWNESS
            ).json()
            pages += 1
            assert sum(len(check["entries"]) for check in page["checks"]) <= PAGE
            for check in page["checks"]:
                seen.setdefault(check["index"], []).extend(e["point"] for e in check["entries"])
            pending.extend(check["index"] for check in page["pending"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        expected = {n: list(range(0, size, step)) for n, size in enumerate(sizes)}
        assert seen == expected
        assert pending == [3]  # the fourth check has no report
        total = sum(len(points) for points in expected.values())
        assert pages == max(1, -(-total // PAGE))  # full pages until the last


def test_entries_none_gives_every_check_without_entries_in_one_page(
    live: Live, make_report_document: ReportDocument
) -> None:
    documents = [_document(make_report_document, f"sin(x) + {n}", 3000) for n in range(3)]
    job_id = live.job(documents)
    page = httpx.get(
        f"{live.url}/jobs/{job_id}/report", params={"entries": "none"}, timeout=30 * SLOWNESS
    ).json()
    assert [check["index"] for check in page["checks"]] == [0, 1, 2]
    assert all("entries" not in check for check in page["checks"])
    assert all(check["counts"] == {"pass": 2250, "fail": 750} for check in page["checks"])
    assert page["next_cursor"] is None and page["entries"] == "none"


def test_without_parameters_a_small_report_reads_as_before(
    live: Live, make_report_document: ReportDocument
) -> None:
    job_id = live.job([make_report_document("sin(x) + 0", "pass")], pending=1)
    page = httpx.get(f"{live.url}/jobs/{job_id}/report", timeout=30 * SLOWNESS).json()
    (check,) = page["checks"]
    assert len(check["entries"]) == 1 and check["passed"] is True
    assert [pending["index"] for pending in page["pending"]] == [1]
    assert page["next_cursor"] is None


def test_pages_are_bounded_in_checks_and_in_document_characters(
    live: Live, make_report_document: ReportDocument, server_thread: Any
) -> None:
    documents = [make_report_document(f"sin(x) + {n}", "pass") for n in range(5)]
    job_id = live.job(documents)
    with live.sessions() as session:
        sizes = [
            row.document_chars
            for row in repository.reported_checks(
                session, uuid.UUID(job_id), from_position=0, limit=5
            )
        ]
    assert all(size is not None and size > 0 for size in sizes)
    # Room for two documents' characters but not three: pages of two checks.
    two = sum(size for size in sizes[:2] if size is not None)
    for limits, per_page in (
        ({"max_report_page_checks": 3}, [3, 2]),
        ({"max_report_page_document_chars": two}, [2, 2, 1]),
        ({"max_report_page_document_chars": 1}, [1, 1, 1, 1, 1]),  # always one check at least
    ):
        app = create_app(live.settings.model_copy(update=limits))
        with server_thread(app) as url:
            counts, cursor = [], None
            while True:
                params: dict[str, Any] = {"cursor": cursor} if cursor else {}
                page = httpx.get(
                    f"{url}/jobs/{job_id}/report", params=params, timeout=30 * SLOWNESS
                ).json()
                counts.append(len(page["checks"]))
                cursor = page["next_cursor"]
                if cursor is None:
                    break
        assert counts == per_page, limits


@pytest.mark.parametrize(
    "params",
    [
        {"entries": "some"},
        {"limit": 0},
        {"limit": MAX_REPORT_PAGE_ENTRIES + 1},
        {"cursor": "garbage!"},
        {"cursor": reports.encode_cursor(5)},  # a /reports cursor
        {"cursor": reports.encode_cursor(ENTRY_PLACES * ENTRY_PLACES, "e")},
    ],
    ids=[
        "unknown selection",
        "zero limit",
        "limit over the maximum",
        "garbage",
        "wrong kind",
        "beyond",
    ],
)
def test_bad_page_parameters_get_422_naming_the_parameter(
    client: httpx.Client, session: Session, params: dict[str, Any]
) -> None:
    accepted = client.post("/jobs", json={"checks": [{"expression": "x", "points": [{"x": 1}]}]})
    response = client.get(f"/jobs/{accepted.json()['id']}/report", params=params)
    assert response.status_code == 422, response.text
    (name,) = params
    assert response.json()["detail"][0]["loc"] == ["query", name]


def test_openapi_documents_the_page_parameters_and_the_next_cursor(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/jobs/{job_id}/report"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert {"entries", "limit", "cursor"} <= set(parameters)
    assert parameters["entries"]["schema"]["enum"] == ["all", "failing", "none"]
    assert parameters["limit"]["schema"]["maximum"] == MAX_REPORT_PAGE_ENTRIES
    assert all(parameters[name].get("description") for name in ("entries", "limit", "cursor"))
    page = schema["components"]["schemas"]["JobReportPage"]["properties"]
    assert {"job", "checks", "pending", "entries", "next_cursor"} <= set(page)
