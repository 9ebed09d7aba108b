"""Fair order between keys: a check is published with a priority from the work its key had
queued before it (verifier/service/admission.py, ``queue_priority``), and the Redis broker
hands out priority 0 first, so one key's backlog waits behind another key's first check.

Expected priorities follow the documented rule by hand: 0 below 100,000 queued units, then
1 + floor(log2(units / 100,000)), at most 9 (docs/admission.md).
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery
from kombu import Queue
from slowness import SLOWNESS
from sqlalchemy import update
from sqlalchemy.orm import Session

from verifier.config import Settings
from verifier.delivery.celery import CelerySender, make_celery
from verifier.delivery.sender import Delivery
from verifier.service import jobs
from verifier.service.schemas import CheckIn, JobIn
from verifier.store import keys
from verifier.store.models import Check, Job

JOB = JobIn(checks=[CheckIn(expression="sin(x)*exp(y)", points=[{"x": 1, "y": 2}])] * 3)


def test_a_keys_backlog_lowers_the_priority_of_its_checks_and_no_other_keys(
    session: Session, settings: Settings
) -> None:
    alice, _ = keys.create_key(session, "alice")
    bob, _ = keys.create_key(session, "bob")
    first = jobs.submit_job(session, JOB, settings, alice.id)
    assert [check.priority for check in first.checks] == [0, 0, 0]  # a few units each
    # Alice's first job now stands for 400,002 units of queued work (about 20 s of one
    # worker): 400,002 / 100,000 = 4.00002, floor(log2) = 2, so her next checks come at
    # priority 3.
    session.execute(
        update(Check).where(Check.job_id == first.id).values(cost_units=400_000 // 3 + 1)
    )
    later = jobs.submit_job(session, JOB, settings, alice.id)
    assert [check.priority for check in later.checks] == [3, 3, 3]
    bobs = jobs.submit_job(session, JOB, settings, bob.id)
    assert [check.priority for check in bobs.checks] == [0, 0, 0]


def test_without_keys_every_check_has_the_highest_priority(
    session: Session, settings: Settings
) -> None:
    job = jobs.submit_job(session, JOB, settings)
    assert {check.priority for check in job.checks} == {None}  # published at 0
    stored = session.get(Job, job.id)
    assert stored is not None and stored.api_key_id is None


def test_redis_hands_out_a_later_check_of_a_higher_priority_before_a_backlog(
    redis_url: str, settings: Settings
) -> None:
    on_redis = settings.model_copy(update={"broker_url": redis_url})
    app = make_celery(on_redis, Celery, main="priority-test")
    queue = f"priority-test-{uuid.uuid4().hex[:8]}"
    # Priorities 1 and 2: kombu's default steps (0, 3, 6, 9) would put both in one list.
    backlog = [Delivery(uuid.uuid4(), queue, 2) for _ in range(5)]
    urgent = Delivery(uuid.uuid4(), queue, 1)
    sender = CelerySender(app)
    try:
        assert sender.send([*backlog, urgent]) == 6
        received: list[str] = []

        def take(body: Any, message: Any) -> None:
            received.append(message.headers["argsrepr"])
            message.ack()

        with app.connection_for_read() as connection:
            with connection.Consumer(Queue(queue), callbacks=[take], prefetch_count=1):
                while len(received) < 6:
                    connection.drain_events(timeout=10 * SLOWNESS)
    finally:
        sender.close()
    assert received[0] == repr([str(urgent.check_id)])  # first, though published last
    assert received[1:] == [repr([str(d.check_id)]) for d in backlog]  # the backlog in order
