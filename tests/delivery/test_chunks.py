"""Chunks: a large job's checks go several to a message (verifier/delivery/sender.py), and each
check of a chunk is still claimed, run and reported on its own (verifier/delivery/execution.py;
docs/delivery.md, "Chunks")."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from celery import Celery
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from verifier.config import Settings
from verifier.delivery.celery import CelerySender, make_celery
from verifier.delivery.execution import Progress, execute_checks
from verifier.delivery.inventory import check_ids_of, redis_held
from verifier.delivery.sender import (
    CHUNK_COST_UNITS,
    MAX_CHECKS_PER_TASK,
    MIN_TASKS_PER_SEND,
    InMemorySender,
    deliveries,
    send_checks,
)
from verifier.service import jobs
from verifier.service.schemas import JobIn
from verifier.store import migrate
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import Check, CheckStatus, Job, JobStatus, StoredReport, utc_now

ReportDocument = Callable[..., dict[str, Any]]


class Died(BaseException):
    """What a worker killed mid-check looks like to the code after it: nothing returns."""


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest) -> Iterator[sessionmaker[Session]]:
    """Both databases: on PostgreSQL a claim and a report's write are single statements
    (verifier/store/claims.py), elsewhere several."""
    if request.param == "sqlite":
        url = request.getfixturevalue("fresh_sqlite_url")
    else:
        url = request.getfixturevalue("postgres_url")
        migrate.upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def _checks(count: int, cost_units: int = 58, priority: int = 0) -> list[Check]:
    return [
        Check(id=uuid.uuid4(), queue="cpu", priority=priority, cost_units=cost_units)
        for _ in range(count)
    ]


def _submit(sessions: sessionmaker[Session], settings: Settings, count: int) -> Job:
    body = JobIn.model_validate(
        {"checks": [{"expression": f"x**{n + 2}", "points": [{"x": 2}]} for n in range(count)]}
    )
    with sessions() as session:
        return jobs.submit_job(session, body, settings)


def test_a_small_job_is_one_check_a_message() -> None:
    # Fewer than 2 x MIN_TASKS_PER_SEND checks: a chunk of 1 each (the rule in sender.py).
    checks = _checks(2 * MIN_TASKS_PER_SEND - 1)
    messages = deliveries(checks)
    assert [message.check_ids for message in messages] == [[check.id] for check in checks]
    assert all(message.argument == str(message.check_id) for message in messages)


def test_a_large_job_of_small_checks_goes_in_chunks_in_order() -> None:
    checks = _checks(1000)
    messages = deliveries(checks)
    assert all(len(message.check_ids) == MAX_CHECKS_PER_TASK for message in messages[:-1])
    assert len(messages) == -(-1000 // MAX_CHECKS_PER_TASK)  # 63: 62 of 16 and one of 8
    assert [i for message in messages for i in message.check_ids] == [c.id for c in checks]
    assert messages[0].argument == [str(check.id) for check in checks[:MAX_CHECKS_PER_TASK]]


def test_heavy_checks_go_alone_and_a_new_priority_starts_a_new_chunk() -> None:
    heavy = _checks(40, cost_units=CHUNK_COST_UNITS)  # each alone fills a chunk's cost
    assert [len(message.check_ids) for message in deliveries(heavy)] == [1] * 40
    mixed = _checks(32, priority=0) + _checks(32, priority=1)
    messages = deliveries(mixed)  # 64 checks: chunks of 64 // 8 = 8, never across priorities
    assert [(len(m.check_ids), m.priority) for m in messages] == [(8, 0)] * 4 + [(8, 1)] * 4


def test_a_chunk_counts_as_its_checks_in_memory(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = _submit(sessions, settings, 32)
    sender = InMemorySender()
    with sessions() as session:
        checks = session.scalars(select(Check).where(Check.job_id == job.id)).all()
        assert send_checks(session, sender, list(checks)) == 32
        assert sender.check_ids == [check.id for check in checks]
        enqueued = session.scalars(select(Check.enqueued_at)).all()
    assert all(at is not None for at in enqueued)


def test_a_report_lost_to_another_claim_is_dropped_and_counts_nothing(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _submit(sessions, settings, 2)
    first, second = (check.id for check in job.checks)

    def overtaken(expression: str, **_: Any) -> dict[str, Any]:
        with sessions() as session:  # another execution took the check over meanwhile
            session.execute(update(Check).where(Check.id == first).values(claim_token="other"))
            session.commit()
        return make_report_document(expression, "fail")

    (lost,) = execute_checks(sessions, [first], overtaken)
    assert lost.verdict is None
    (kept,) = execute_checks(
        sessions, [second], lambda expression, **_: make_report_document(expression, "pass")
    )
    assert kept.verdict == "pass"
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredReport)) == 1
        stored = session.get(Job, job.id)
        assert stored is not None
        assert stored.reported == 1 and stored.status is JobStatus.RUNNING  # 1 of 2 counted
        assert stored.worst_verdict == "pass"  # the dropped "fail" was not counted


def test_each_check_of_a_chunk_is_claimed_and_reported_once(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _submit(sessions, settings, 5)
    ids = [check.id for check in job.checks]
    calls: list[str] = []

    def core(expression: str, **_: Any) -> dict[str, Any]:
        calls.append(expression)
        return make_report_document(expression, "pass")

    executed = execute_checks(sessions, ids, core)
    assert [done.check_id for done in executed] == ids
    assert [done.verdict for done in executed] == ["pass"] * 5
    assert len(calls) == 5
    again = execute_checks(sessions, ids, core)  # a redelivered chunk: nothing runs twice
    assert [done.verdict for done in again] == ["pass"] * 5
    assert len(calls) == 5
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredReport)) == 5
        attempts = session.scalars(select(Check.attempts)).all()
        stored = session.get(Job, job.id)
        assert stored is not None
        assert stored.status is JobStatus.DONE and stored.reported == 5
        assert stored.verdict == "pass" and stored.passed is True
    assert attempts == [1] * 5


def test_a_worker_killed_mid_chunk_keeps_the_reports_before_and_leaves_the_rest(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _submit(sessions, settings, 5)
    ids = [check.id for check in job.checks]
    poison = job.checks[2].expression

    def dies_on_the_third(expression: str, **_: Any) -> dict[str, Any]:
        if expression == poison:
            raise Died
        return make_report_document(expression, "pass")

    progress = Progress()
    with pytest.raises(Died):
        execute_checks(sessions, ids, dies_on_the_third, progress=progress)
    # The second report was committed with the third check's claim, before its core ran.
    assert [done.check_id for done in progress.done] == ids[:2]
    with sessions() as session:
        statuses = {c.id: c.status for c in session.scalars(select(Check))}
        reported = set(session.scalars(select(StoredReport.check_id)))
    assert reported == set(ids[:2])
    assert [statuses[i] for i in ids] == [
        CheckStatus.DONE,
        CheckStatus.DONE,
        CheckStatus.RUNNING,  # claimed: its lease runs out, then it runs again
        CheckStatus.QUEUED,  # never claimed: no attempt counted
        CheckStatus.QUEUED,
    ]
    with sessions() as session:  # the lease ran out (the reconciler would release it)
        session.execute(update(Check).values(lease_expires_at=utc_now() - timedelta(seconds=1)))
        session.commit()
    redelivered = execute_checks(
        sessions, ids, lambda expression, **_: make_report_document(expression, "pass")
    )
    assert [done.verdict for done in redelivered] == ["pass"] * 5
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredReport)) == 5
        attempts = {c.id: c.attempts for c in session.scalars(select(Check))}
    assert [attempts[i] for i in ids] == [1, 1, 2, 1, 1]


def test_redis_holds_every_check_of_a_chunk_message(redis_url: str, settings: Settings) -> None:
    on_redis = settings.model_copy(update={"broker_url": redis_url})
    sender = CelerySender(make_celery(on_redis, Celery, main="chunk-test"))
    queue = f"chunk-test-{uuid.uuid4().hex[:8]}"
    checks = [Check(id=uuid.uuid4(), queue=queue, priority=0, cost_units=58) for _ in range(32)]
    client = redis.Redis.from_url(redis_url)
    try:
        messages = deliveries(checks)
        assert sender.send(messages) == len(messages) == MIN_TASKS_PER_SEND
        (raw, *_) = client.lrange(queue, 0, 0)
        assert len(check_ids_of(json.loads(raw))) == 32 // MIN_TASKS_PER_SEND
        with sender.app.connection_for_read() as connection:
            channel: Any = connection.default_channel
            held = redis_held(
                channel.client,
                [queue],
                separator=channel.sep,
                priority_steps=channel.priority_steps,
                unacked_key=channel.unacked_key,
                limit=1000,
            )
        assert held.check_ids == {check.id for check in checks}
    finally:
        sender.close()
        client.close()
