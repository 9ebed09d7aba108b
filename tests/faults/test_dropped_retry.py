"""A retry that cannot be published: the database fails a check's claim (so the task retries)
while the broker refuses the retry's message (Celery then rejects the delivery, and no message
of the check is left anywhere). The check must be re-sendable at the reconciler's next pass,
not after ``requeue_after_s`` (900 s by default: on the development machine the check waited
15.8 minutes, the rest of that window and the reconciler's interval).

The task is the worker's own (``workers.app.create_celery``), run in this process with the
request a worker gives it; the database (PostgreSQL behind a proxy the test cuts) and the
broker (a private Redis server the test stops) are real.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import Reject
from slowness import SLOWNESS
from sqlalchemy.orm import Session, sessionmaker

from verifier.config import Settings
from verifier.delivery.celery import RUN_CHECK_TASK, CelerySender, make_celery
from verifier.delivery.reconciler import reconcile_once
from verifier.delivery.sender import send_checks
from verifier.service import jobs
from verifier.service.schemas import JobIn
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import Check, CheckStatus
from workers.app import create_celery

pytestmark = pytest.mark.slow

GIVEN_BACK_TIMEOUT_S = 10.0 * SLOWNESS
TASK_TIME_LIMIT_S = 30.0 * SLOWNESS
"""The task's hard limit here, well past a refused publish (its retries take about a second):
the limit ends the process it runs in, this test's."""
POLL_S = 0.1  # how often a condition is looked at, not how long anything may take


@pytest.fixture
def sessions(fault_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(fault_settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


def _wait_for(what: str, condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(POLL_S)


def _check(sessions: sessionmaker[Session], check_id: uuid.UUID) -> Check:
    with sessions() as session:
        check = session.get(Check, check_id)
        assert check is not None
        return check


def test_a_check_whose_retry_is_refused_by_the_broker_is_resent_at_the_next_pass(
    sessions: sessionmaker[Session],
    fault_settings: Settings,
    database_proxy: Any,
    private_redis: Any,
) -> None:
    proxy, proxied_url = database_proxy
    body = JobIn.model_validate({"checks": [{"expression": "x", "points": [{"x": 1}]}]})
    sender = CelerySender(make_celery(fault_settings, Celery, main="dropped-retry-test"))
    # The worker's settings, its database behind the proxy; windows as fault_settings'.
    worker_settings = fault_settings.model_copy(
        update={"database_url": proxied_url, "check_time_limit_s": TASK_TIME_LIMIT_S}
    )
    worker = create_celery(worker_settings, core=lambda *_, **__: {})
    task = worker.tasks[RUN_CHECK_TASK]
    try:
        with sessions() as session:
            job = jobs.submit_job(session, body, fault_settings)
            assert send_checks(session, sender, list(job.checks)) == 1
        check_id = job.checks[0].id
        sent_at = _check(sessions, check_id).enqueued_at
        # The worker has taken the message; now its database and its broker both fail.
        proxy.cut()
        private_redis.stop()
        task.push_request(
            id=str(uuid.uuid4()), args=[str(check_id)], kwargs={}, retries=0, called_directly=False
        )
        try:
            with pytest.raises(Reject):  # Celery drops the delivery: no message is left
                task.run(str(check_id))
        finally:
            task.pop_request()
        proxy.resume()
        private_redis.start()  # empty: the first message went with the old server
        _wait_for(
            "the check given back",
            lambda: _check(sessions, check_id).enqueued_at is None,
            GIVEN_BACK_TIMEOUT_S,
        )
        assert _check(sessions, check_id).status is CheckStatus.QUEUED
        assert sent_at is not None  # it had been sent: only its being given back re-sends it
        with sessions() as session:
            # requeue_after_s is its default (900 s): the pass re-sends it all the same.
            assert fault_settings.requeue_after_s == 900
            assert reconcile_once(session, sender, fault_settings) == 1
    finally:
        worker.dispose()
        sender.close()
