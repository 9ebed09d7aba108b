"""Submissions that find the parser processes busy, over real HTTP with keys required: the
valid request is answered 503 with Retry-After (the service's capacity is at fault, not the
request: never a 4xx), within the parse wait however many expressions it holds, and nothing is
stored; a key with a submission already being parsed waits its turn, gets 429 with Retry-After
when none comes within the parse wait, and another key is parsed meanwhile (docs/hostile-load.md has
the attack this answers: two parser processes held by one key's large submissions starved every
other key).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slowness import SLOWNESS
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from verifier.api import create_app
from verifier.config import Settings
from verifier.core.guard import ParserPool
from verifier.store import keys
from verifier.store.engine import make_engine
from verifier.store.models import Job

CHECK = {"expression": "3*x**2 + 2*x*y + y**2", "points": [{"x": 2, "y": 1}]}
WAIT_S = 1.0


@pytest.fixture
def database(fresh_sqlite_url: str) -> Iterator[Engine]:
    """A database of this test alone (the API's requests run concurrently, each with its
    own session)."""
    engine = make_engine(fresh_sqlite_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def service(
    settings: Settings, fresh_sqlite_url: str, database: Engine, sender: Any, server_thread: Any
) -> Iterator[tuple[str, ParserPool, dict[str, str], dict[str, str]]]:
    """A live API with one parser process, and the headers of two keys."""
    one_parser = settings.model_copy(
        update={
            "database_url": fresh_sqlite_url,
            "parse_processes": 1,
            "parse_wait_s": WAIT_S * SLOWNESS,
        }
    )
    app = create_app(one_parser, sender)
    with Session(database) as session:
        _, alice = keys.create_key(session, "alice")
        _, bob = keys.create_key(session, "bob")
        session.commit()
    with server_thread(app) as url:
        yield (
            url,
            app.state.parser,
            {"Authorization": f"Bearer {alice}"},
            {"Authorization": f"Bearer {bob}"},
        )


def _jobs(database: Engine) -> int:
    with Session(database) as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_a_valid_submission_that_finds_every_parser_busy_is_a_503_with_retry_after(
    service: Any, database: Engine
) -> None:
    url, pool, alice, _ = service
    many = {"checks": [CHECK] * 5}
    with httpx.Client(base_url=url, headers=alice, timeout=60 * SLOWNESS) as http:
        (http.post("/jobs", json={"checks": [CHECK]}).raise_for_status())  # the parser is up
        before = _jobs(database)
        sandbox = pool._free.get()  # another request is parsing
        try:
            started = time.monotonic()
            response = http.post("/jobs", json=many)
            waited = time.monotonic() - started
        finally:
            pool._free.put(sandbox)
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) >= 1
        assert "every parser process is busy" in response.json()["detail"]
        assert waited < (WAIT_S + 10) * SLOWNESS  # the wait, not 5 expressions' bounds
        assert _jobs(database) == before  # nothing stored
        assert http.post("/jobs", json=many).status_code == 202  # and served once free


def test_a_key_parsing_one_submission_gets_429_for_another_while_a_second_key_is_served(
    service: Any,
) -> None:
    url, pool, alice, bob = service
    answers: dict[str, int] = {}
    pool.wait_s = 60 * SLOWNESS  # alice's first submission waits for the held process

    def alices_first() -> None:
        with httpx.Client(base_url=url, headers=alice, timeout=120 * SLOWNESS) as http:
            answers["first"] = http.post("/jobs", json={"checks": [CHECK]}).status_code

    sandbox = pool._free.get()
    given_back = False
    try:
        waiting = threading.Thread(target=alices_first)
        waiting.start()
        deadline = time.monotonic() + 30 * SLOWNESS
        while not pool._callers and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(pool._callers) == 1  # alice's first submission is in the pool
        pool.wait_s = WAIT_S * SLOWNESS  # her second waits this long for its turn
        with httpx.Client(base_url=url, timeout=60 * SLOWNESS) as http:
            second = http.post("/jobs", json={"checks": [CHECK]}, headers=alice)
            assert second.status_code == 429, second.text
            assert int(second.headers["retry-after"]) >= 1
            assert "already has 1 request(s) being parsed" in second.json()["detail"]
            # Bob may find the one process taken by alice's first submission, and waits for it
            # (how long that parse takes depends on the machine's load).
            pool.wait_s = 60 * SLOWNESS
            pool._free.put(sandbox)
            given_back = True
            assert http.post("/jobs", json={"checks": [CHECK]}, headers=bob).status_code == 202
    finally:
        if not given_back:
            pool._free.put(sandbox)
    waiting.join(timeout=120 * SLOWNESS)
    assert answers["first"] == 202
