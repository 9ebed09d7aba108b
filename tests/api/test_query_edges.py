"""No 5xx from any query of ``/reports`` and ``/stats``, over real HTTP on SQLite and PostgreSQL.

docs/hostile-load.md lists 500s once drawn by cursors forged with an id above int32
(PostgreSQL) or int64 (SQLite), by a NUL in the ``expression``, ``function`` or ``device``
filter (PostgreSQL stores no NUL) and by extreme ``since``/``until`` dates (SQLite: year 1 or
9999 with a time zone's offset leaves the range of Python's datetime in UTC). Each is refused
with a 422 naming the parameter or answered; then a property test drives every query parameter
with such values.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from slowness import SLOWNESS

from verifier.api import create_app
from verifier.config import Settings
from verifier.core.judge.verdict import VERDICT_ORDER
from verifier.delivery.execution import report_row
from verifier.service import reports
from verifier.store import migrate, repository
from verifier.store.engine import make_engine, make_session_factory

ReportDocument = Callable[..., dict[str, Any]]

INT32_MAX = 2**31 - 1  # PostgreSQL's integer, the type of reports.id
INT64_MAX = 2**63 - 1  # SQLite's integer
EXAMPLES_PER_ENDPOINT = 150


@pytest.fixture(params=["sqlite", "postgresql"])
def api(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    settings: Settings,
    server_thread: Any,
    sender: Any,
    make_report_document: ReportDocument,
) -> Iterator[str]:
    """A live API on a fresh database holding one job of two reports (a pass and a fail)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'queries.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate.upgrade(url)
    app = create_app(
        settings.model_copy(
            update={"database_url": url, "api_keys": "off", "rate_limit_per_minute": 0}
        ),
        sender,
    )
    with server_thread(app) as base:
        checks = [{"expression": f"sin(x) + {n}", "points": [{"x": 1}]} for n in range(2)]
        job_id = httpx.post(f"{base}/jobs", json={"checks": checks}, timeout=30 * SLOWNESS).json()[
            "id"
        ]
        engine = make_engine(url)
        try:
            with make_session_factory(engine)() as session:
                stored = repository.checks_of_job(session, uuid.UUID(job_id))
                for check, verdict in zip(stored, ["pass", "fail"], strict=True):
                    document = make_report_document(check.expression, verdict)
                    assert repository.insert_report(session, report_row(check, document))
                session.commit()
        finally:
            engine.dispose()
        yield base


def _cursor(text: str) -> str:
    """A forged cursor: the text as the API encodes it (url-safe base64, no padding)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


FORGED_CURSORS = {
    "int32+1": f"r{INT32_MAX + 1}",
    "int64+1": f"r{INT64_MAX + 1}",
    "10^30": f"r{10**30}",
    "negative": "r-1",
    "space": "r 5",
    "plus": "r+5",
    "underscore": "r5_0",
    "arabic 3": "r\u0663",
}


def test_forged_cursors_get_422_naming_the_cursor(api: str) -> None:
    for name, forged in FORGED_CURSORS.items():
        response = httpx.get(
            f"{api}/reports", params={"cursor": _cursor(forged)}, timeout=30 * SLOWNESS
        )
        assert response.status_code == 422, (name, response.text)
        (problem,) = response.json()["detail"]
        assert problem["loc"] == ["query", "cursor"]
        assert "pass next_cursor from a previous page" in problem["msg"]


def test_the_largest_cursor_a_database_integer_holds_is_answered(api: str) -> None:
    response = httpx.get(
        f"{api}/reports", params={"cursor": reports.encode_cursor(INT32_MAX)}, timeout=30 * SLOWNESS
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 2  # both reports have smaller ids


def test_control_characters_in_a_filter_get_422_naming_the_parameter(api: str) -> None:
    for path in ("/reports", "/stats"):
        for name in ("expression", "function", "device"):
            for value in ("sin\x00", "\x00", "cpu\n", "a\x1fb", "\x7f"):
                response = httpx.get(f"{api}{path}", params={name: value}, timeout=30 * SLOWNESS)
                assert response.status_code == 422, (path, name, value, response.text)
                (problem,) = response.json()["detail"]
                assert problem["loc"] == ["query", name]
                assert "control characters" in problem["msg"]


# (since or until as sent, whether a report written today is at or after it). Python's datetime
# holds years 1 to 9999; with an offset those ends leave its range in UTC.
EXTREME_TIMES = [
    ("0001-01-01T00:00:00", True),
    ("0001-01-01T00:00:00+01:00", True),  # 0000-12-31T23:00Z: before year 1 in UTC
    ("0001-01-01T00:00:00-23:59", True),
    ("1969-12-31T23:59:59Z", True),
    ("1900-01-01T00:00:00+05:30", True),
    ("9999-12-31T23:59:59.999999", False),
    ("9999-12-31T23:59:59-01:00", False),  # 10000-01-01T00:59:59Z: after year 9999 in UTC
    ("9999-12-31T23:59:59+14:00", False),
]


def test_extreme_dates_are_answered_by_what_they_mean(api: str) -> None:
    for moment, before_today in EXTREME_TIMES:
        since = httpx.get(f"{api}/reports", params={"since": moment}, timeout=30 * SLOWNESS)
        until = httpx.get(f"{api}/reports", params={"until": moment}, timeout=30 * SLOWNESS)
        stats = httpx.get(
            f"{api}/stats", params={"since": moment, "until": moment}, timeout=30 * SLOWNESS
        )
        codes = (since.status_code, until.status_code, stats.status_code)
        assert codes == (200, 200, 200), (moment, since.text, until.text, stats.text)
        assert len(since.json()["items"]) == (2 if before_today else 0), moment
        assert len(until.json()["items"]) == (0 if before_today else 2), moment
        assert stats.json()["total"] == 0  # since == until: an empty window


def test_dates_beyond_the_calendar_get_422_naming_the_parameter(api: str) -> None:
    for moment in ("0000-12-31T23:59:59", "10000-01-01T00:00:00", "9999-13-01", "1e20"):
        response = httpx.get(f"{api}/reports", params={"since": moment}, timeout=30 * SLOWNESS)
        assert response.status_code == 422, (moment, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", "since"]


# Text with every kind of character a query string can carry: controls (NUL included), wide
# and combining characters; no lone surrogates (they cannot be encoded in a URL). Each strategy
# also draws the values docs/hostile-load.md lists, so that every run tries them.
ANY_TEXT = (
    st.sampled_from(["\x00", "sin\x00", "cuda\x00:0", "\n", "%", "_", "\\"])
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
    | st.text(st.sampled_from("x\x00\n%_*'\"\\;"), min_size=2001, max_size=2100)
)
OFFSETS = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
)
MOMENTS = (
    st.sampled_from([moment for moment, _ in EXTREME_TIMES])
    | st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59, 59),
        timezones=OFFSETS.map(timezone) | st.none(),
    ).map(datetime.isoformat)
    | st.integers(min_value=-(10**20), max_value=10**20).map(str)
    | ANY_TEXT
)
NUMBERS = st.sampled_from(
    [0, -1, INT32_MAX, INT32_MAX + 1, INT64_MAX, INT64_MAX + 1, 2**64]
) | st.integers(min_value=-(2**70), max_value=2**70)
FILTERS = {
    "verdict": st.sampled_from([str(v) for v in VERDICT_ORDER]) | ANY_TEXT,
    "expression": ANY_TEXT,
    "function": st.sampled_from(["sin", "exp", "sinc"]) | ANY_TEXT,
    "dtype": st.sampled_from(["float64", "float32", "float16", "bfloat16"]) | ANY_TEXT,
    "device": st.sampled_from(["cpu", "cuda", "cuda:0"]) | ANY_TEXT,
    "job": st.uuids().map(str) | ANY_TEXT,
    "since": MOMENTS,
    "until": MOMENTS,
}
PAGING = {
    "cursor": NUMBERS.map(lambda n: reports.encode_cursor(n))
    | NUMBERS.map(lambda n: _cursor(f"r{n}"))
    | ANY_TEXT,
    "limit": NUMBERS.map(str) | ANY_TEXT,
}
GROUPING = {"group_by": st.sampled_from(["function", "dtype", "device", "verdict"]) | ANY_TEXT}
# The values that once drew a 500 (docs/hostile-load.md), tried first on every run.
FOUND: list[dict[str, str]] = [
    {"since": "0001-01-01T00:00:00+01:00"},
    {"until": "9999-12-31T23:59:59-01:00"},
    {"expression": "sin\x00"},
    {"function": "\x00"},
    {"device": "cuda\x00", "group_by": "device"},
]
FOUND_IN_PAGING = [
    {"cursor": reports.encode_cursor(INT32_MAX + 1)},
    {"cursor": reports.encode_cursor(INT64_MAX + 1)},
]


@pytest.mark.parametrize(
    ("path", "parameters", "found"),
    [
        ("/reports", {**FILTERS, **PAGING}, FOUND + FOUND_IN_PAGING),
        ("/stats", {**FILTERS, **GROUPING}, FOUND),
    ],
    ids=["reports", "stats"],
)
def test_no_query_of_reports_or_stats_gets_a_5xx(
    api: str,
    path: str,
    parameters: dict[str, st.SearchStrategy[str]],
    found: list[dict[str, str]],
) -> None:
    failures: list[str] = []

    with httpx.Client(base_url=api, timeout=30 * SLOWNESS) as http:

        @given(query=st.fixed_dictionaries({}, optional=parameters))
        @_examples(found)
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_ENDPOINT,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answered(query: dict[str, str]) -> None:
            response = http.get(path, params=query)
            if response.status_code >= 500:
                failures.append(f"{query!r}: {response.status_code} {response.text[:200]}")
            assert response.status_code < 500, failures[-1]
            assert response.status_code in (200, 422), response.text

        answered()


def _examples(queries: list[dict[str, str]]) -> Callable[[Any], Any]:
    """Hypothesis's ``@example`` for each of ``queries``."""

    def decorate(test: Any) -> Any:
        for query in reversed(queries):
            test = example(query=query)(test)
        return test

    return decorate
