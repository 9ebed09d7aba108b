"""``Idempotency-Key`` on ``POST /jobs`` over real HTTP: a retried submission returns the first
job instead of making a second, another body under the same key is refused, keys are per API
key, malformed keys are refused naming the header, and racing twins make one job on SQLite and
on PostgreSQL.

Expected answers come from the route's documented contract (verifier/api/routes/jobs.py): 202
for a new job, 200 with ``Idempotent-Replayed: true`` for a retry, 422 for a malformed or reused
key; and from the IETF draft "The Idempotency-Key HTTP Header Field"
(draft-ietf-httpapi-idempotency-key-header), which answers a reused key with another payload
with 422 and writes the key as a quoted Structured Fields string.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slowness import SLOWNESS
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from verifier.api import create_app
from verifier.api.deps import get_session
from verifier.config import Settings
from verifier.delivery.sender import InMemorySender
from verifier.store import keys, migrate
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import MAX_IDEMPOTENCY_KEY_CHARS, Check, Job

CHECK = {"expression": "3*x**2 + 2*x*y + y**2", "points": [{"x": 2, "y": 1}]}
BODY = {"checks": [CHECK, CHECK], "label": "retried"}
KEY = "7f9c2ba4-e88f-4d5b-9a3c-1f2e3d4c5b6a"
RACERS = 8


def _post(http: httpx.Client, body: dict[str, Any], key: str | None = KEY) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return http.post("/jobs", json=body, headers=headers)


def _jobs(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Job)) or 0


def test_two_identical_posts_with_one_key_make_one_job(
    client: httpx.Client, session: Session, sender: Any
) -> None:
    first = _post(client, BODY)
    again = _post(client, BODY)
    assert first.status_code == 202, first.text  # a new job (the route's contract)
    assert again.status_code == 200, again.text  # a retry (the route's contract)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["location"] == first.headers["location"]
    assert _jobs(session) == 1
    assert len(sender.sent) == 2  # the two checks, sent once: the retry found nothing unsent


def test_without_a_key_two_identical_posts_make_two_jobs(
    client: httpx.Client, session: Session
) -> None:
    first = _post(client, BODY, key=None)
    second = _post(client, BODY, key=None)
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] != second.json()["id"]
    assert _jobs(session) == 2


def test_the_same_key_with_another_body_is_refused_naming_the_key_and_the_first_job(
    client: httpx.Client, session: Session
) -> None:
    first = _post(client, BODY)
    other = _post(client, {**BODY, "label": "another job"})
    assert other.status_code == 422  # the IETF draft's answer to a reused key
    (problem,) = other.json()["detail"]
    assert problem["loc"] == ["header", "Idempotency-Key"]
    assert problem["type"] == "idempotency_key_reused"
    assert KEY in problem["msg"] and first.json()["id"] in problem["msg"]
    assert _jobs(session) == 1


def test_a_body_that_spells_out_its_defaults_is_the_same_request(client: httpx.Client) -> None:
    first = _post(client, BODY)
    # float64, auto, hessian true are CheckIn's defaults (service/schemas.py); keys reordered.
    spelled = {
        "label": "retried",
        "checks": [{**CHECK, "dtype": "float64", "device": "auto", "hessian": True}] * 2,
    }
    again = _post(client, spelled)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]


def test_a_quoted_key_is_the_same_key_as_the_bare_one(client: httpx.Client) -> None:
    first = _post(client, BODY)
    again = _post(client, BODY, key=f'"{KEY}"')  # the draft's Structured Fields string form
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    "key",
    ["k" * (MAX_IDEMPOTENCY_KEY_CHARS + 1), "two words", "", '""', "semi;colon", "caf\u00e9"],
    ids=["too-long", "space", "empty", "empty-quoted", "semicolon", "non-ascii"],
)
def test_a_malformed_key_is_refused_naming_the_header_and_stores_nothing(
    client: httpx.Client, session: Session, key: str
) -> None:
    response = client.post("/jobs", json=BODY, headers={"Idempotency-Key": key.encode()})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["header", "Idempotency-Key"]
    assert problem["type"] == "idempotency_key"
    assert f"1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters" in problem["msg"]
    assert _jobs(session) == 0


def test_a_key_of_the_longest_allowed_length_is_accepted(client: httpx.Client) -> None:
    longest = "k" * MAX_IDEMPOTENCY_KEY_CHARS
    first = _post(client, BODY, key=longest)
    again = _post(client, BODY, key=longest)
    assert (first.status_code, again.status_code) == (202, 200)


def test_a_retry_sends_the_checks_its_first_submission_left_unsent(
    api_settings: Settings, session: Session, server_thread: Any
) -> None:
    broker = InMemorySender(refuse_first=1)  # the broker was away for the first publish
    app = create_app(api_settings, broker)
    app.dependency_overrides[get_session] = lambda: session
    with server_thread(app) as url, httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        first = _post(http, BODY)
        assert first.status_code == 202  # stored; the broker delays the checks, not the answer
        assert broker.sent == []
        again = _post(http, BODY)
        assert again.status_code == 200
    checks = session.scalars(select(Check.id).order_by(Check.position)).all()
    assert broker.check_ids == list(checks)  # both checks, in order, sent by the retry
    assert all(
        enqueued is not None for enqueued in session.scalars(select(Check.enqueued_at)).all()
    )


def test_keys_are_per_api_key(settings: Settings, session: Session, server_thread: Any) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 0}), InMemorySender())
    app.dependency_overrides[get_session] = lambda: session
    _, alice = keys.create_key(session, "alice")
    _, bob = keys.create_key(session, "bob")
    with server_thread(app) as url, httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        as_alice = {"Authorization": f"Bearer {alice}", "Idempotency-Key": KEY}
        as_bob = {"Authorization": f"Bearer {bob}", "Idempotency-Key": KEY}
        alices = http.post("/jobs", json=BODY, headers=as_alice)
        bobs = http.post("/jobs", json=BODY, headers=as_bob)
        alices_again = http.post("/jobs", json=BODY, headers=as_alice)
        # Another key's job stays invisible: bob's reuse of the key with another body is not
        # told about alice's job, only about his own.
        bobs_other = http.post("/jobs", json={**BODY, "label": "x"}, headers=as_bob)
    assert (alices.status_code, bobs.status_code, alices_again.status_code) == (202, 202, 200)
    assert alices.json()["id"] != bobs.json()["id"]
    assert alices_again.json()["id"] == alices.json()["id"]
    assert bobs_other.status_code == 422
    assert alices.json()["id"] not in bobs_other.text and bobs.json()["id"] in bobs_other.text
    assert _jobs(session) == 2


@pytest.fixture
def sqlite_database(fresh_sqlite_url: str) -> str:
    return fresh_sqlite_url


@pytest.fixture
def postgres_database(postgres_url: str) -> str:
    migrate.upgrade(postgres_url)
    return postgres_url


@pytest.fixture(params=["sqlite_database", "postgres_database"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.getfixturevalue(request.param)


def test_racing_submissions_with_one_key_make_one_job(
    settings: Settings, database_url: str, server_thread: Any
) -> None:
    # Every racer may parse at once: one caller's share of the parser processes (a 429 for a
    # second submission parsed at the same time, tests/api/test_parser_admission.py) is not
    # what is raced here, and on a loaded machine the racers' parses overlap.
    update = {"database_url": database_url, "api_keys": "off", "parses_per_key": RACERS}
    app = create_app(settings.model_copy(update=update), InMemorySender())
    answers: list[httpx.Response] = []
    start = threading.Barrier(RACERS)

    def race(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
            start.wait()
            answers.append(_post(http, BODY))

    with server_thread(app) as url:
        racers = [threading.Thread(target=race, args=(url,)) for _ in range(RACERS)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
    assert sorted(answer.status_code for answer in answers) == [200] * (RACERS - 1) + [202]
    assert len({answer.json()["id"] for answer in answers}) == 1
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as fresh:
            assert _jobs(fresh) == 1
            assert fresh.scalar(select(func.count()).select_from(Check)) == 2
    finally:
        engine.dispose()
