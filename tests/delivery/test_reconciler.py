"""The reconciler: two reconcilers at once never publish the same check (PostgreSQL), and a
check whose message still waits in the broker (Redis, the embedded SQLite broker) is not
published again, while a lost one is, once."""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from slowness import SLOWNESS
from sqlalchemy.orm import Session, sessionmaker

from verifier.config import Settings
from verifier.delivery import reconciler
from verifier.delivery.celery import CelerySender, embedded_broker_database, make_celery
from verifier.delivery.inventory import check_id_of, redis_lists
from verifier.delivery.reconciler import reconcile_once
from verifier.delivery.sender import InMemorySender, send_checks
from verifier.service import jobs
from verifier.service.schemas import JobIn
from verifier.store import claims, migrate
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import LOWEST_PRIORITY, utc_now

REDIS_SEPARATOR = "\x06\x16"
"""kombu's separator between a queue's name and its priority step (kombu.transport.redis)."""


def test_concurrent_reconcilers_split_the_stranded_checks(
    postgres_url: str, settings: Settings
) -> None:
    migrate.upgrade(postgres_url)
    engine = make_engine(postgres_url)
    sessions = make_session_factory(engine)
    try:
        body = JobIn.model_validate(
            {"checks": [{"expression": "x", "points": [{"x": n}]} for n in range(4)]}
        )
        with sessions() as session:
            job = jobs.submit_job(session, body, settings)  # stored, never sent
        with sessions() as first, sessions() as second:
            held = claims.unfinished_checks(first, utc_now(), limit=2)
            assert len(held) == 2  # locked by the first reconciler until it commits
            other = InMemorySender()
            assert reconcile_once(second, other, settings) == 2
            assert set(other.check_ids).isdisjoint({check.id for check in held})
            first.rollback()
        with sessions() as session:
            late = InMemorySender()
            assert reconcile_once(session, late, settings) == 2  # the two it had held
        assert set(late.check_ids) | set(other.check_ids) == {check.id for check in job.checks}
    finally:
        engine.dispose()


# Checks that only wait in line: the reconciler reads the broker before it sends again
# (docs/delivery.md, point 7). Each test queues CHECKS checks to a queue that no worker reads,
# with a requeue_after_s so short that every pass finds all of them "sent long ago".

CHECKS = 12
PASSES = 3
WAITING_PRIORITIES = (0, 3, 9)
"""Priorities the checks are published at (Check.priority): kombu keeps a list for each step
(the first, 0, is the queue's own name; docs/admission.md)."""
TAKE_TIMEOUT_S = 10 * SLOWNESS


def _idle_settings(settings: Settings, broker_url: str | None = None) -> Settings:
    update: dict[str, object] = {
        "cpu_queue": f"idle-{uuid.uuid4().hex[:8]}",
        "requeue_after_s": 0.001,
    }
    if broker_url is not None:
        update["broker_url"] = broker_url
    return settings.model_copy(update=update)


def _queue_idle_checks(
    sessions: sessionmaker[Session], settings: Settings, sender: CelerySender
) -> list[uuid.UUID]:
    body = JobIn.model_validate(
        {"checks": [{"expression": "x", "points": [{"x": n}]} for n in range(CHECKS)]}
    )
    with sessions() as session:
        job = jobs.submit_job(session, body, settings)
        for position, check in enumerate(job.checks):
            check.priority = WAITING_PRIORITIES[position % len(WAITING_PRIORITIES)]
        assert send_checks(session, sender, list(job.checks)) == CHECKS
        return [check.id for check in job.checks]


def _passes(sessions: sessionmaker[Session], sender: CelerySender, settings: Settings) -> list[int]:
    sent = []
    for _ in range(PASSES):
        with sessions() as session:
            sent.append(reconcile_once(session, sender, settings))
    return sent


def _redis_messages(client: redis.Redis, queue: str) -> Counter[uuid.UUID]:
    """Every check id in the queue's lists (each priority step) and in the unacked hash."""
    found: Counter[uuid.UUID] = Counter()
    for name in redis_lists(queue, REDIS_SEPARATOR, range(LOWEST_PRIORITY + 1)):
        for raw in client.lrange(name, 0, -1):
            found[check_id_of(json.loads(raw))] += 1  # type: ignore[index]
    for raw in client.hvals("unacked"):
        found[check_id_of(json.loads(raw)[0])] += 1  # type: ignore[index]
    return found


@pytest.fixture
def sessions(fresh_sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(fresh_sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_checks_waiting_in_redis_are_not_sent_again_and_a_flush_sends_each_once(
    redis_url: str, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    idle = _idle_settings(settings, redis_url)
    sender = CelerySender(make_celery(idle, Celery, main="reconcile-test"))
    client = redis.Redis.from_url(redis_url)
    try:
        ids = _queue_idle_checks(sessions, idle, sender)
        with sender.app.connection_for_read() as connection:
            # A worker takes one message and holds it unacknowledged (kombu's unacked hash).
            taken = connection.SimpleQueue(idle.cpu_queue).get(timeout=TAKE_TIMEOUT_S)
            assert client.hlen("unacked") == 1
            assert _passes(sessions, sender, idle) == [0] * PASSES
            assert _redis_messages(client, idle.cpu_queue) == Counter(ids)  # N stays N
            taken.ack()
        client.flushdb()  # every message lost: each check comes back exactly once
        assert _passes(sessions, sender, idle) == [CHECKS] + [0] * (PASSES - 1)
        assert _redis_messages(client, idle.cpu_queue) == Counter(ids)
    finally:
        sender.close()
        client.close()


# kombu's SQLAlchemy transport declares its queue's messages with the ``noload`` strategy,
# which SQLAlchemy 2.1 deprecates; the service's own processes do not turn warnings to errors.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_checks_waiting_in_the_embedded_broker_are_not_sent_again_and_lost_ones_are_once(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    idle = _idle_settings(settings)
    sender = CelerySender(make_celery(idle, Celery, main="reconcile-test"))
    broker_file = embedded_broker_database(idle.broker_url).removeprefix("sqlite:///")

    def messages() -> Counter[uuid.UUID]:
        with sqlite3.connect(broker_file) as connection:
            rows = connection.execute("SELECT payload FROM kombu_message WHERE visible = 1")
            return Counter(check_id_of(json.loads(payload)) for (payload,) in rows)  # type: ignore[misc]

    try:
        ids = _queue_idle_checks(sessions, idle, sender)
        assert _passes(sessions, sender, idle) == [0] * PASSES
        assert messages() == Counter(ids)
        with sqlite3.connect(broker_file) as connection:
            connection.execute("DELETE FROM kombu_message")  # the broker file lost them
        assert _passes(sessions, sender, idle) == [CHECKS] + [0] * (PASSES - 1)
        assert messages() == Counter(ids)
    finally:
        sender.close()


def test_a_queue_longer_than_a_pass_reads_is_taken_as_waiting_and_logged(
    redis_url: str,
    settings: Settings,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    idle = _idle_settings(settings, redis_url)
    sender = CelerySender(make_celery(idle, Celery, main="reconcile-test"))
    try:
        _queue_idle_checks(sessions, idle, sender)
        monkeypatch.setattr(reconciler, "MAX_MESSAGES_READ", CHECKS // 2)
        with caplog.at_level(logging.WARNING, logger=reconciler.__name__):
            assert _passes(sessions, sender, idle) == [0] * PASSES
        assert f"holds more than {CHECKS // 2} messages" in caplog.text
        assert f"the {CHECKS - CHECKS // 2} checks sent before and not among them" in caplog.text
    finally:
        sender.close()
