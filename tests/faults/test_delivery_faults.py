"""Faults on the delivery path with real processes: a real Redis server (private, so the test
may stop it), real PostgreSQL, real Celery worker processes started and killed by the test.

Each test submits through the service as the API does, injects the fault, and then requires:
the check finished, exactly one report, the broker's queue and unacknowledged set empty.
"""

from __future__ import annotations

import math
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery
from slowness import SLOWNESS
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from verifier.cli.processes import ChildProcess
from verifier.config import Settings
from verifier.delivery.celery import CelerySender, make_celery
from verifier.delivery.reconciler import reconcile_once
from verifier.delivery.sender import send_checks
from verifier.service import jobs
from verifier.service.schemas import JobIn
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import Check, CheckStatus, Job, JobStatus, StoredReport
from workers.watchdog import EXIT_TIME_LIMIT

pytestmark = pytest.mark.slow

StartWorker = Callable[[str], ChildProcess]
# Every wait below is its value on the development machine times SLOWNESS (tests/slowness.py);
# the fault windows of fault_settings (tests/faults/conftest.py) are scaled alike.
FINISH_TIMEOUT_S = 45.0 * SLOWNESS
CLAIM_TIMEOUT_S = 20.0 * SLOWNESS
JOB_TIMEOUT_S = 30.0 * SLOWNESS
LONG_JOB_TIMEOUT_S = 45.0 * SLOWNESS
ACK_TIMEOUT_S = 10.0 * SLOWNESS
POLL_S = 0.1  # how often a condition is looked at, not how long anything may take
# Delivery windows, in order, for a worker whose checks may run up to 20 s.
LONG_CHECKS = {
    "VERIFIER_CHECK_TIME_LIMIT_S": str(20 * SLOWNESS),
    "VERIFIER_WORKER_SOFT_SHUTDOWN_S": str(21 * SLOWNESS),
    "VERIFIER_BROKER_VISIBILITY_TIMEOUT_S": str(math.ceil(22 * SLOWNESS)),
}


@pytest.fixture
def sessions(fault_settings: Settings) -> Any:
    engine = make_engine(fault_settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def sender(fault_settings: Settings) -> Any:
    client = CelerySender(make_celery(fault_settings, Celery, main="fault-test"))
    yield client
    client.close()


def _submit(
    sessions: sessionmaker[Session], sender: CelerySender, settings: Settings, expression: str
) -> Job:
    # Every name in these expressions is a variable; give each the value 1.
    point = {name: 1 for name in expression.replace("*", " ").replace("+", " ").split()}
    point = {name: 1 for name in point if name.isidentifier()}
    body = JobIn.model_validate({"checks": [{"expression": expression, "points": [point]}]})
    with sessions() as session:
        job = jobs.submit_job(session, body, settings)
        send_checks(session, sender, list(job.checks))
        return job


def _check(sessions: sessionmaker[Session], job: Job) -> Check:
    with sessions() as session:
        return session.scalars(select(Check).where(Check.job_id == job.id)).one()


def _reports(sessions: sessionmaker[Session], job: Job) -> list[StoredReport]:
    with sessions() as session:
        return list(session.scalars(select(StoredReport).where(StoredReport.job_id == job.id)))


def _wait_for(what: str, condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(POLL_S)


def _job_status(sessions: sessionmaker[Session], job_id: uuid.UUID) -> JobStatus:
    with sessions() as session:
        status = session.scalar(select(Job.status).where(Job.id == job_id))
        assert status is not None
        return status


def _assert_broker_empty(private_redis: Any, settings: Settings) -> None:
    client = private_redis.client()
    _wait_for(
        "the acknowledgement",
        lambda: client.llen(settings.cpu_queue) == 0 and client.hlen("unacked") == 0,
        ACK_TIMEOUT_S,
    )


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGKILL], [signal.SIGTERM, signal.SIGKILL]],
    ids=["kill -9", "SIGTERM then SIGKILL"],
)
def test_a_worker_killed_mid_check_leaves_it_to_run_again_once(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
    private_redis: Any,
    signals: list[signal.Signals],
) -> None:
    first = start_worker("first")
    job = _submit(sessions, sender, fault_settings, "slow + x")
    _wait_for(
        "the claim", lambda: _check(sessions, job).status is CheckStatus.RUNNING, CLAIM_TIMEOUT_S
    )
    for number in signals:
        first.process.send_signal(number)
        time.sleep(0.3 * SLOWNESS)  # SIGTERM starts a warm shutdown; SIGKILL cuts it short
    first.process.wait(timeout=10 * SLOWNESS)
    assert _reports(sessions, job) == []

    start_worker("second")
    _wait_for(
        "the re-run",
        lambda: _job_status(sessions, job.id) is JobStatus.DONE,
        FINISH_TIMEOUT_S,
    )
    (report,) = _reports(sessions, job)
    assert report.verdict == "pass"
    check = _check(sessions, job)
    assert check.attempts == 2  # the killed run and the re-run
    assert check.claim_token is None
    _assert_broker_empty(private_redis, fault_settings)


def test_a_check_running_past_the_visibility_timeout_runs_once_with_two_workers(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
    private_redis: Any,
) -> None:
    # The check runs 8 s (scaled), within its time limit, and Redis hands its unacknowledged
    # message out again after 2 s (not scaled: the redelivery must come while the check runs).
    windows = {**LONG_CHECKS, "FAULT_VISIBILITY_TIMEOUT_S": "2"}
    workers = [
        start_worker(name, slow_s=8 * SLOWNESS, extra_env=windows) for name in ("first", "second")
    ]
    job = _submit(sessions, sender, fault_settings, "slow + x")
    _wait_for(
        "the job", lambda: _job_status(sessions, job.id) is JobStatus.DONE, LONG_JOB_TIMEOUT_S
    )
    logs = [worker.log_path.read_text(errors="replace") for worker in workers]
    # Both workers received the message; the second delivery found the check held.
    assert sum(log.count("Task derivcheck.run_check[") for log in logs) >= 2, logs
    assert sum(log.count("is held by another execution") for log in logs) >= 1, logs
    (report,) = _reports(sessions, job)
    assert report.verdict == "pass"
    assert _check(sessions, job).attempts == 1  # the core ran once
    _assert_broker_empty(private_redis, fault_settings)


@pytest.mark.parametrize(
    ("expression", "slow_s", "exit_code"),
    [("poison + x", None, -signal.SIGKILL), ("slow + x", 30.0 * SLOWNESS, EXIT_TIME_LIMIT)],
    ids=["kills its worker", "runs past the hard time limit"],
)
def test_a_poison_check_ends_as_an_error_after_max_attempts(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
    private_redis: Any,
    expression: str,
    slow_s: float | None,
    exit_code: int,
) -> None:
    job = _submit(sessions, sender, fault_settings, expression)
    deadline = time.monotonic() + 3 * FINISH_TIMEOUT_S
    workers = 0
    # The poison kills every worker that runs it; a supervisor would restart each one.
    while _job_status(sessions, job.id) not in (JobStatus.DONE, JobStatus.ERROR):
        assert time.monotonic() < deadline, "the poison check never ended"
        assert workers <= fault_settings.max_attempts + 1, "more restarts than attempts"
        worker = start_worker(f"worker-{workers}", slow_s=slow_s)
        workers += 1
        while worker.running() and _job_status(sessions, job.id) is not JobStatus.ERROR:
            assert time.monotonic() < deadline, "the poison check never ended"
            time.sleep(POLL_S)
        if not worker.running():
            assert worker.process.returncode == exit_code
    (report,) = _reports(sessions, job)
    assert report.verdict == "error"
    assert report.reason == "gave up after 2 attempts"
    assert _check(sessions, job).attempts == fault_settings.max_attempts + 1
    _assert_broker_empty(private_redis, fault_settings)


def test_a_check_past_its_hard_limit_takes_no_other_check_down(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
    private_redis: Any,
) -> None:
    # Two slots, as `derivcheck worker --concurrency 2` runs them. The slow check runs past
    # the hard time limit (3 s) and ends its process each time; the napping check (2.5 s)
    # starts while the slow one runs and is still running when that process dies. In one
    # process with two threads it died too and lost an attempt. (Every time here scaled.)
    worker = start_worker(
        "slots",
        slow_s=30 * SLOWNESS,
        extra_env={"FAULT_SLOTS": "2", "FAULT_NAP_S": str(2.5 * SLOWNESS)},
    )
    _wait_for(
        "both slots",
        lambda: worker.log_path.read_text().count("ready.") >= 2,
        60 * SLOWNESS,
    )
    slow = _submit(sessions, sender, fault_settings, "slow + x")
    _wait_for(
        "the slow check to start", lambda: _check(sessions, slow).attempts == 1, CLAIM_TIMEOUT_S
    )
    time.sleep(1.0 * SLOWNESS)
    napping = _submit(sessions, sender, fault_settings, "nap + x")
    _wait_for(
        "the napping check",
        lambda: _job_status(sessions, napping.id) is JobStatus.DONE,
        JOB_TIMEOUT_S,
    )
    assert _check(sessions, napping).attempts == 1
    (report,) = _reports(sessions, napping)
    assert report.verdict == "pass"
    _wait_for(
        "the slow check", lambda: _job_status(sessions, slow.id) is JobStatus.ERROR, 90 * SLOWNESS
    )
    (failed,) = _reports(sessions, slow)
    assert failed.reason == "gave up after 2 attempts"
    assert worker.running()  # the slots were restarted, the worker never went away
    assert "exited unexpectedly" in worker.log_path.read_text()


def test_a_check_past_the_memory_limit_ends_as_an_error_and_the_worker_goes_on(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
    private_redis: Any,
) -> None:
    # The worker's address space is bounded at 2 GiB (a worker with torch loaded maps about
    # 0.8 GiB); the hog asks for 4 GiB more.
    limits = {"VERIFIER_WORKER_MEMORY_BYTES": str(2 * 1024**3), "FAULT_HOG_BYTES": str(4 * 1024**3)}
    worker = start_worker("bounded", extra_env=limits)
    hog = _submit(sessions, sender, fault_settings, "hog + x")
    _wait_for("the hog", lambda: _job_status(sessions, hog.id) is JobStatus.ERROR, JOB_TIMEOUT_S)
    (report,) = _reports(sessions, hog)
    assert report.reason == "resource limit: out of memory (worker_memory_bytes)"
    assert _check(sessions, hog).attempts == 1
    after = _submit(sessions, sender, fault_settings, "x * y")
    _wait_for(
        "the next check", lambda: _job_status(sessions, after.id) is JobStatus.DONE, JOB_TIMEOUT_S
    )
    assert worker.running()


def test_redis_down_at_submission_then_the_reconciler_publishes(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
    private_redis: Any,
) -> None:
    private_redis.stop()
    # docs/delivery.md, point 8: publishing gives up after publish_timeout_s (1 s), so a
    # submission never hangs on a broker that is down. The publish timeout is the guarantee;
    # only the second for the rest of the submission scales.
    bound_s = fault_settings.publish_timeout_s + 1.0 * SLOWNESS
    started = time.monotonic()
    job = _submit(sessions, sender, fault_settings, "x * y")
    assert time.monotonic() - started < bound_s
    assert _check(sessions, job).enqueued_at is None  # stored, not sent

    private_redis.start()  # an empty Redis: nothing survived
    start_worker("after-outage")
    with sessions() as session:
        assert reconcile_once(session, sender, fault_settings) == 1
    _wait_for("the job", lambda: _job_status(sessions, job.id) is JobStatus.DONE, JOB_TIMEOUT_S)
    assert len(_reports(sessions, job)) == 1


def test_a_flushed_redis_loses_no_check(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
    private_redis: Any,
) -> None:
    job = _submit(sessions, sender, fault_settings, "x * y")
    private_redis.stop()  # no persistence: the queued message is gone
    private_redis.start()
    assert private_redis.client().llen(fault_settings.cpu_queue) == 0
    start_worker("after-restart")
    lost = fault_settings.model_copy(update={"requeue_after_s": 0.01})
    with sessions() as session:
        assert reconcile_once(session, sender, lost) == 1
    _wait_for("the job", lambda: _job_status(sessions, job.id) is JobStatus.DONE, JOB_TIMEOUT_S)
    with sessions() as session:
        count = session.scalar(select(func.count()).select_from(StoredReport))
    assert count == 1


def test_database_unreachable_during_the_report_write_is_retried_to_one_report(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
    database_proxy: Any,
) -> None:
    proxy, proxied_url = database_proxy
    start_worker("behind-proxy", database_url=proxied_url)
    job = _submit(sessions, sender, fault_settings, "slow + x")
    _wait_for(
        "the claim", lambda: _check(sessions, job).status is CheckStatus.RUNNING, CLAIM_TIMEOUT_S
    )
    proxy.cut()  # the database goes away while the core runs (FAULT_SLOW_S = 2 s)
    time.sleep(3 * SLOWNESS)  # the report write fails; the task retries with backoff
    assert _reports(sessions, job) == []
    proxy.resume()
    _wait_for(
        "the retry", lambda: _job_status(sessions, job.id) is JobStatus.DONE, LONG_JOB_TIMEOUT_S
    )
    assert len(_reports(sessions, job)) == 1
    assert _check(sessions, job).attempts >= 2  # the same task took its claim back


def test_database_locked_during_the_report_write_waits_to_one_report(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
) -> None:
    # Time enough for the check (2 s) and the lock (6 s) within the check's time limit (all
    # three scaled).
    start_worker("behind-lock", extra_env=LONG_CHECKS)
    job = _submit(sessions, sender, fault_settings, "slow + x")
    _wait_for(
        "the claim", lambda: _check(sessions, job).status is CheckStatus.RUNNING, CLAIM_TIMEOUT_S
    )
    with sessions() as locker:
        # Another transaction holds the check's row: the report write must wait for it.
        locker.execute(select(Check).where(Check.job_id == job.id).with_for_update())
        time.sleep(6 * SLOWNESS)
        assert _reports(sessions, job) == []  # the check ended 4 s ago; its write waits
        locker.commit()
    _wait_for("the job", lambda: _job_status(sessions, job.id) is JobStatus.DONE, JOB_TIMEOUT_S)
    assert len(_reports(sessions, job)) == 1
    check = _check(sessions, job)
    assert check.attempts == 1  # it waited; nothing ran twice


def test_a_worker_started_before_redis_runs_checks_once_redis_is_up(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
    private_redis: Any,
) -> None:
    private_redis.stop()
    worker = start_worker("early", wait=False)
    time.sleep(2 * SLOWNESS)
    assert worker.running()  # it waits for the broker instead of exiting
    private_redis.start()
    job = _submit(sessions, sender, fault_settings, "x * y")
    _wait_for(
        "the job", lambda: _job_status(sessions, job.id) is JobStatus.DONE, LONG_JOB_TIMEOUT_S
    )
    assert len(_reports(sessions, job)) == 1


def test_redis_restarted_while_the_worker_is_idle_and_the_next_check_runs(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
    private_redis: Any,
) -> None:
    worker = start_worker("idle")
    private_redis.stop()
    time.sleep(1 * SLOWNESS)  # the worker notices the lost connection
    private_redis.start()
    job = _submit(sessions, sender, fault_settings, "x * y")
    _wait_for(
        "the job", lambda: _job_status(sessions, job.id) is JobStatus.DONE, LONG_JOB_TIMEOUT_S
    )
    assert len(_reports(sessions, job)) == 1
    assert worker.running()
    _assert_broker_empty(private_redis, fault_settings)


def test_redis_restarted_mid_check_loses_nothing_and_the_worker_goes_on(
    sessions: sessionmaker[Session],
    sender: CelerySender,
    fault_settings: Settings,
    start_worker: StartWorker,
    private_redis: Any,
) -> None:
    worker = start_worker("through-restart")
    job = _submit(sessions, sender, fault_settings, "slow + x")
    _wait_for(
        "the claim", lambda: _check(sessions, job).status is CheckStatus.RUNNING, CLAIM_TIMEOUT_S
    )
    private_redis.stop()  # no persistence: the unacknowledged message is gone with it
    private_redis.start()
    _wait_for("the job", lambda: _job_status(sessions, job.id) is JobStatus.DONE, JOB_TIMEOUT_S)
    assert len(_reports(sessions, job)) == 1
    assert worker.running()
    after = _submit(sessions, sender, fault_settings, "x * y")
    _wait_for(
        "the next job",
        lambda: _job_status(sessions, after.id) is JobStatus.DONE,
        LONG_JOB_TIMEOUT_S,
    )
