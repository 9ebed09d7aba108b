"""``GET /metrics`` over real HTTP: behind a key or the metrics token, rate-limited like any
route, and its database counts read at most once per ``metrics_cache_s``, however many scrape.

Before, the route needed no key, had no rate limit, and every scrape ran the counts' scans
(0.5 s at 300,000 reports; 20 scrapers at once held ``/health`` for 3.3 s).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from servers import ServerThread
from slowness import SLOWNESS
from sqlalchemy import event

from verifier.api import create_app
from verifier.config import Settings
from verifier.delivery.sender import InMemorySender
from verifier.store import keys
from verifier.store.engine import make_engine, make_session_factory

SCRAPERS = 10
CACHE_S = 2.0 * SLOWNESS
"""The test's cache interval: long enough for ten scrapers started together to arrive within
it on a loaded machine, short enough to wait out."""
CHECK = {"expression": "3*x**2 + 2*x*y + y**2", "points": [{"x": 2, "y": 1}]}


def _jobs_submitted(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "derivcheck_jobs_submitted_total":
                return sample.value
    raise AssertionError("no derivcheck_jobs_submitted_total in the scrape")


def _new_key(database_url: str, name: str) -> str:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            _, secret = keys.create_key(session, name)
            session.commit()
    finally:
        engine.dispose()
    return secret


@contextmanager
def _serving(settings: Settings, **changes: Any) -> Iterator[tuple[str, Any]]:
    app = create_app(settings.model_copy(update=changes), InMemorySender())
    with ServerThread(app) as url:
        yield url, app


def test_a_scrape_without_a_key_is_401_when_keys_are_required(
    settings: Settings, fresh_sqlite_url: str
) -> None:
    alice = _new_key(fresh_sqlite_url, "alice")
    with (
        _serving(settings, database_url=fresh_sqlite_url, api_keys="required") as (url, _),
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        refused = http.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert http.get("/metrics", headers={"Authorization": "Bearer guess"}).status_code == 401
        answered = http.get("/metrics", headers={"Authorization": f"Bearer {alice}"})
        assert answered.status_code == 200
        assert _jobs_submitted(answered.text) == 0


def test_with_a_metrics_token_only_that_token_opens_metrics(
    settings: Settings, fresh_sqlite_url: str
) -> None:
    alice = _new_key(fresh_sqlite_url, "alice")
    token = "scraper-token-of-the-operators"
    with (
        _serving(
            settings, database_url=fresh_sqlite_url, api_keys="required", metrics_token=token
        ) as (url, _),
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        assert http.get("/metrics").status_code == 401
        refused = http.get("/metrics", headers={"Authorization": f"Bearer {alice}"})
        assert refused.status_code == 401 and "metrics token" in refused.json()["detail"]
        assert http.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        # The API key still opens the other routes.
        assert http.get("/reports", headers={"Authorization": f"Bearer {alice}"}).status_code == 200


def test_scrapes_are_rate_limited_like_other_routes(
    settings: Settings, fresh_sqlite_url: str
) -> None:
    token = "scraper-token"
    burst = 3
    with (
        _serving(
            settings,
            database_url=fresh_sqlite_url,
            api_keys="required",
            metrics_token=token,
            rate_limit_per_minute=1,
            rate_limit_burst=burst,
        ) as (url, _),
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        codes = [
            http.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code
            for _ in range(burst + 2)
        ]
        guesses = [http.get("/metrics").status_code for _ in range(burst + 2)]
    assert codes == [200] * burst + [429, 429]
    assert guesses[:burst] == [401] * burst and set(guesses[burst:]) == {429}


def test_concurrent_scrapes_read_the_database_once_per_cache_interval(
    settings: Settings, fresh_sqlite_url: str
) -> None:
    with (
        _serving(
            settings,
            database_url=fresh_sqlite_url,
            api_keys="off",
            rate_limit_per_minute=0,
            metrics_cache_s=CACHE_S,
        ) as (url, app),
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        statements: list[str] = []
        lock = threading.Lock()

        def count(*arguments: Any) -> None:
            with lock:
                statements.append(arguments[2])

        event.listen(app.state.engine, "before_cursor_execute", count)
        first = http.get("/metrics")
        assert first.status_code == 200 and _jobs_submitted(first.text) == 0
        per_read = len(statements)
        assert per_read > 0
        assert http.get("/metrics").status_code == 200  # within the interval: no statement
        assert len(statements) == per_read

        threading.Event().wait(CACHE_S)  # the counts grow old
        start = threading.Barrier(SCRAPERS)
        answers: list[httpx.Response] = []

        def scrape() -> None:
            with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as own:
                start.wait()
                answers.append(own.get("/metrics"))

        scrapers = [threading.Thread(target=scrape) for _ in range(SCRAPERS)]
        for scraper in scrapers:
            scraper.start()
        for scraper in scrapers:
            scraper.join(timeout=30 * SLOWNESS)
        assert [answer.status_code for answer in answers] == [200] * SCRAPERS
        assert len(statements) == 2 * per_read  # one read for the ten scrapes
        event.remove(app.state.engine, "before_cursor_execute", count)

        # A job stored now shows once the interval is over, not before.
        assert http.post("/jobs", json={"checks": [CHECK]}).status_code == 202
        assert _jobs_submitted(http.get("/metrics").text) == 0
        threading.Event().wait(CACHE_S)
        assert _jobs_submitted(http.get("/metrics").text) == 1


def test_a_cache_interval_of_0_reads_at_every_scrape(
    settings: Settings, fresh_sqlite_url: str
) -> None:
    with (
        _serving(
            settings,
            database_url=fresh_sqlite_url,
            api_keys="off",
            rate_limit_per_minute=0,
            metrics_cache_s=0.0,
        ) as (url, _),
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        assert _jobs_submitted(http.get("/metrics").text) == 0
        assert http.post("/jobs", json={"checks": [CHECK]}).status_code == 202
        assert _jobs_submitted(http.get("/metrics").text) == 1


def test_settings_default_to_a_15_s_cache() -> None:
    # Prometheus' default scrape interval is 15 s: one read per interval and API process.
    assert Settings.model_fields["metrics_cache_s"].default == 15.0
    assert Settings.model_fields["metrics_token"].default == ""
