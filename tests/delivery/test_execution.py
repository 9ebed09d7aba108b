"""What a worker task does with a check: one report per check however often it runs, the
job finished by the last report, and failures of the core kept as ``error`` reports.

The core is replaced here by a stub (it is tested in tests/core; the end-to-end tests run
the real one): these tests are about the database side of a task.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from slowness import SLOWNESS
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from verifier.config import Settings
from verifier.delivery.execution import ClaimPolicy, LeaseRenewer, execute_check
from verifier.delivery.reconciler import reconcile_once
from verifier.delivery.sender import InMemorySender, send_checks
from verifier.errors import PointError
from verifier.service import jobs
from verifier.service.schemas import JobIn
from verifier.store import claims, repository
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import (
    Check,
    CheckStatus,
    Job,
    JobStatus,
    ReportBlock,
    StoredReport,
    utc_now,
)

LEASE_S = 0.6 * SLOWNESS
"""A short claim lease (renewed every third of it), scaled: a heartbeat late on a loaded
machine would let it lapse."""

ReportDocument = Callable[..., dict[str, Any]]


@pytest.fixture
def sessions(fresh_sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(fresh_sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def _submit(sessions: sessionmaker[Session], settings: Settings, *expressions: str) -> Job:
    body = JobIn.model_validate(
        {"checks": [{"expression": e, "points": [{"x": 2}]} for e in expressions]}
    )
    with sessions() as session:
        return jobs.submit_job(session, body, settings)


class StubCore:
    """Returns a fixed verdict per expression and counts its calls."""

    def __init__(self, make: ReportDocument, verdicts: dict[str, str]):
        self.make = make
        self.verdicts = verdicts
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, expression: str, **options: Any) -> dict[str, Any]:
        self.calls.append((expression, options))
        return self.make(expression, self.verdicts[expression])


def _job(sessions: sessionmaker[Session], job_id: uuid.UUID) -> Job:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _report_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(StoredReport)) or 0


def test_the_last_report_finishes_the_job_with_the_worst_verdict(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _submit(sessions, settings, "x**2", "sin(x)")
    core = StubCore(make_report_document, {"x**2": "pass", "sin(x)": "fail"})
    first, second = (check.id for check in job.checks)

    assert execute_check(sessions, first, core) == "pass"
    halfway = _job(sessions, job.id)
    assert halfway.status is JobStatus.RUNNING
    assert halfway.finished_at is None
    assert halfway.passed is None

    assert execute_check(sessions, second, core) == "fail"
    done = _job(sessions, job.id)
    assert done.status is JobStatus.DONE
    assert done.verdict == "fail"  # worst of pass and fail
    assert done.passed is False  # fail is in the default fail_on (verifier/core/judge/verdict.py)
    assert done.finished_at is not None


def test_core_receives_the_stored_points_and_options(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _submit(sessions, settings, "x**2")
    core = StubCore(make_report_document, {"x**2": "pass"})
    execute_check(sessions, job.checks[0].id, core)
    ((expression, given),) = core.calls
    assert expression == "x**2"
    assert given["at"] == [{"x": 2.0}]
    options = given["options"]
    assert options.dtype.name == "float64"
    assert options.device == "auto"
    assert options.hessian is True
    assert options.strict is False
    assert options.failing_names == ["fail", "nonfinite"]  # DEFAULT_FAIL_ON (verdict.py)


def test_a_job_passes_or_fails_by_the_fail_on_of_each_of_its_checks(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    # Ill-conditioned is not in the default fail_on, and is in the strict one
    # (verifier/core/judge/verdict.py); the job's verdict is the same either way.
    core = StubCore(make_report_document, {"x**2": "ill-conditioned", "x**3": "pass"})
    for strict, passed in ((False, True), (True, False)):
        body = JobIn.model_validate(
            {
                "checks": [
                    {"expression": "x**2", "points": [{"x": 2}], "strict": strict},
                    {"expression": "x**3", "points": [{"x": 2}], "strict": strict},
                ]
            }
        )
        with sessions() as session:
            job = jobs.submit_job(session, body, settings)
        for check in job.checks:
            execute_check(sessions, check.id, core)
        done = _job(sessions, job.id)
        assert (done.verdict, done.passed) == ("ill-conditioned", passed), strict


def test_a_task_that_runs_twice_writes_one_report(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _submit(sessions, settings, "x**2")
    core = StubCore(make_report_document, {"x**2": "pass"})
    check_id = job.checks[0].id
    assert execute_check(sessions, check_id, core) == "pass"
    assert execute_check(sessions, check_id, core) == "pass"
    assert len(core.calls) == 1  # the second delivery found the report and did not rerun
    assert _report_count(sessions) == 1
    assert _job(sessions, job.id).status is JobStatus.DONE


def test_a_check_interrupted_before_its_report_runs_again_once_its_claim_expires(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _submit(sessions, settings, "x**2")
    check_id = job.checks[0].id

    def dies(expression: str, **options: Any) -> dict[str, Any]:
        raise KeyboardInterrupt  # stands for a worker killed mid-check

    with pytest.raises(KeyboardInterrupt):
        execute_check(sessions, check_id, dies)
    assert _report_count(sessions) == 0
    with sessions() as session:
        check = repository.get_check(session, check_id)
        assert check is not None and check.status is CheckStatus.RUNNING
    core = StubCore(make_report_document, {"x**2": "pass"})
    # Under the live claim of the dead execution, a second delivery leaves the check alone.
    assert execute_check(sessions, check_id, core) is None
    assert core.calls == []
    # Once the claim's lease has run out, the next delivery claims and runs it.
    _expire_claims(sessions)
    assert execute_check(sessions, check_id, core) == "pass"
    with sessions() as session:
        check = repository.get_check(session, check_id)
        assert check is not None and check.attempts == 2
        assert check.claim_token is None and check.status is CheckStatus.DONE


def test_a_running_check_keeps_its_claim_past_the_lease_and_runs_once(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _submit(sessions, settings, "x**2")
    check_id = job.checks[0].id
    renewer = LeaseRenewer(sessions, LEASE_S)
    others: list[str | None] = []
    lease_ends = []

    def outlives_its_lease(expression: str, **options: Any) -> dict[str, Any]:
        # Runs for five leases while other deliveries (a redelivered message) try to claim.
        deadline = time.monotonic() + 5 * renewer.lease_s
        while time.monotonic() < deadline:
            others.append(execute_check(sessions, check_id, second))
            with sessions() as session:
                lease_ends.append(session.scalars(select(Check.lease_expires_at)).one())
            time.sleep(renewer.lease_s / 4)
        return make_report_document(expression, "pass")

    second = StubCore(make_report_document, {"x**2": "fail"})
    try:
        verdict = execute_check(sessions, check_id, outlives_its_lease, renewer=renewer)
    finally:
        renewer.close()
    assert verdict == "pass"
    assert len(others) >= 10 and set(others) == {None}  # each found it held
    assert second.calls == []
    assert lease_ends[-1] > lease_ends[0]  # the heartbeat moved the lease on
    with sessions() as session:
        check = repository.get_check(session, check_id)
        assert check is not None and check.attempts == 1
    assert _report_count(sessions) == 1


def test_one_renewer_keeps_every_claim_of_a_threaded_worker(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    # Two checks run at once in two threads of one worker, sharing its renewer.
    job = _submit(sessions, settings, "x**2", "x**3")
    renewer = LeaseRenewer(sessions, LEASE_S)
    both_running = threading.Barrier(3)  # the two checks and this test
    verdicts: dict[str, str | None] = {}

    def outlives_its_lease(expression: str, **options: Any) -> dict[str, Any]:
        both_running.wait()
        time.sleep(5 * renewer.lease_s)
        return make_report_document(expression, "pass")

    def run(check: Check) -> None:
        verdicts[check.expression] = execute_check(
            sessions, check.id, outlives_its_lease, renewer=renewer
        )

    threads = [threading.Thread(target=run, args=(check,)) for check in job.checks]
    for thread in threads:
        thread.start()
    try:
        both_running.wait()
        time.sleep(3 * renewer.lease_s)
        with sessions() as session:
            leases = session.scalars(select(Check.lease_expires_at)).all()
        # Both leases were renewed: each would have run out LEASE_S after its claim.
        assert all(lease is not None and lease > utc_now() for lease in leases), leases
    finally:
        for thread in threads:
            thread.join()
        renewer.close()
    assert verdicts == {"x**2": "pass", "x**3": "pass"}
    assert _report_count(sessions) == 2


def test_a_retry_takes_back_the_claim_of_the_execution_it_names(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _submit(sessions, settings, "x**2")
    check_id = job.checks[0].id

    def dies(expression: str, **options: Any) -> dict[str, Any]:
        raise KeyboardInterrupt  # stands for the database error that ended this execution

    with pytest.raises(KeyboardInterrupt):
        execute_check(sessions, check_id, dies, claim_token="failed-execution")
    core = StubCore(make_report_document, {"x**2": "pass"})
    # Its claim is live: a delivery naming another execution may not take it ...
    assert execute_check(sessions, check_id, core, takes_over="someone-else") is None
    assert core.calls == []
    # ... the retry of the failed execution takes it at once.
    assert execute_check(sessions, check_id, core, takes_over="failed-execution") == "pass"
    with sessions() as session:
        check = repository.get_check(session, check_id)
        assert check is not None and check.attempts == 2 and check.status is CheckStatus.DONE


def _expire_claims(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        session.execute(update(Check).values(lease_expires_at=utc_now() - timedelta(seconds=1)))
        session.commit()


def test_a_poison_check_ends_as_an_error_after_max_attempts(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = _submit(sessions, settings, "x**2")
    check_id = job.checks[0].id
    calls = 0

    def kills_its_worker(expression: str, **options: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        raise KeyboardInterrupt

    policy = ClaimPolicy(max_attempts=2)
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            execute_check(sessions, check_id, kills_its_worker, policy)
        _expire_claims(sessions)
    assert execute_check(sessions, check_id, kills_its_worker, policy) == "error"
    assert calls == 2  # the third claim did not run the core again
    with sessions() as session:
        report = session.scalars(select(StoredReport)).one()
        assert report.reason == "gave up after 2 attempts"
    assert _job(sessions, job.id).status is JobStatus.ERROR


def test_an_execution_that_lost_its_claim_writes_nothing(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _submit(sessions, settings, "x**2")
    check_id = job.checks[0].id
    slow_result: dict[str, Any] = {}

    def overtaken(expression: str, **options: Any) -> dict[str, Any]:
        # While this execution runs, its lease runs out and another one claims and finishes.
        _expire_claims(sessions)
        fast = StubCore(make_report_document, {"x**2": "pass"})
        slow_result["other"] = execute_check(sessions, check_id, fast)
        return make_report_document(expression, "fail")

    assert execute_check(sessions, check_id, overtaken) is None
    assert slow_result["other"] == "pass"
    with sessions() as session:
        (report,) = session.scalars(select(StoredReport)).all()
        assert report.verdict == "pass"  # the overtaken execution's "fail" was dropped
    assert _job(sessions, job.id).verdict == "pass"


def test_the_reconciler_releases_expired_claims_and_republishes_them(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = _submit(sessions, settings, "x**2")
    check_id = job.checks[0].id

    def dies(expression: str, **options: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    sender = InMemorySender()
    with pytest.raises(KeyboardInterrupt):
        execute_check(sessions, check_id, dies)
    with sessions() as session:
        send_checks(session, sender, list(job.checks))
        sender.sent.clear()
        assert reconcile_once(session, sender, settings) == 0  # claim live, message recent
    _expire_claims(sessions)
    with sessions() as session:
        assert reconcile_once(session, sender, settings) == 1
    assert sender.check_ids == [check_id]
    with sessions() as session:
        check = repository.get_check(session, check_id)
        assert (
            check is not None and check.status is CheckStatus.QUEUED and check.claim_token is None
        )


def test_bad_input_found_by_the_core_becomes_an_error_report(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = _submit(sessions, settings, "x**2")

    def refuses(expression: str, **options: Any) -> dict[str, Any]:
        raise PointError("point 0: x=2 is outside the test's range")

    assert execute_check(sessions, job.checks[0].id, refuses) == "error"
    finished = _job(sessions, job.id)
    assert finished.status is JobStatus.ERROR
    assert finished.verdict == "error"
    with sessions() as session:
        report = session.scalars(select(StoredReport)).one()
        assert report.reason == "invalid input: point 0: x=2 is outside the test's range"
        assert report.document["expression"] == "x**2"
        # The core's report format (Report.to_dict) with the check's policy, and no entries.
        assert report.document["fail_on"] == ["fail", "nonfinite"]
        assert report.document["passed"] is False
        assert report.document["counts"] == {} and "entries" not in report.document
        assert session.scalar(select(func.count()).select_from(ReportBlock)) == 0
    assert finished.passed is False


def test_a_crash_in_the_core_becomes_an_error_report_with_its_reason(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = _submit(sessions, settings, "x**2")

    def crashes(expression: str, **options: Any) -> dict[str, Any]:
        raise IndexError("dimension out of range")

    assert execute_check(sessions, job.checks[0].id, crashes) == "error"
    with sessions() as session:
        report = session.scalars(select(StoredReport)).one()
        assert report.reason == "internal error: IndexError: dimension out of range"


def test_a_missing_check_is_skipped(sessions: sessionmaker[Session]) -> None:
    def never(expression: str, **options: Any) -> dict[str, Any]:
        raise AssertionError("must not run")

    assert execute_check(sessions, uuid.uuid4(), never) is None


def test_the_report_that_completes_a_job_finishes_it_in_its_own_transaction(
    sessions: sessionmaker[Session], settings: Settings, make_report_document: ReportDocument
) -> None:
    job = _submit(sessions, settings, "x**2")
    check_id = job.checks[0].id
    core = StubCore(make_report_document, {"x**2": "pass"})
    statements: list[str] = []
    commits: list[object] = []
    engine = sessions.kw["bind"]

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    def committed(connection: object) -> None:
        commits.append(connection)

    event.listen(engine, "before_cursor_execute", record)
    event.listen(engine, "commit", committed)
    try:
        assert execute_check(sessions, check_id, core) == "pass"
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(engine, "commit", committed)
    assert len(commits) == 2  # the claim, then the report with its count
    finished = _job(sessions, job.id)
    assert (finished.status, finished.verdict, finished.passed) == (JobStatus.DONE, "pass", True)
    assert finished.reported == 1
    # Finishing the job read none of its reports back: the job's row carries the count.
    assert [sql for sql in statements if "reports.job_id" in sql.partition("WHERE")[2]] == []

    # A job counted but left unfinished (as migration 0007 may leave one) is finished by the
    # reconciler, from its counts; a redelivered message changes nothing.
    with sessions() as session:
        session.execute(
            update(Job).where(Job.id == job.id).values(status=JobStatus.RUNNING, verdict=None)
        )
        session.commit()
    with sessions() as session:
        nothing = InMemorySender()
        assert reconcile_once(session, nothing, settings) == 0
        assert nothing.sent == []  # nothing re-published
    assert _job(sessions, job.id).status is JobStatus.DONE
    assert execute_check(sessions, check_id, core) == "pass"  # a redelivered message
    again = _job(sessions, job.id)
    assert (again.status, again.verdict, again.reported) == (JobStatus.DONE, "pass", 1)
    assert len(core.calls) == 1


def test_a_check_given_back_is_resent_at_once_and_another_executions_claim_is_kept(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = _submit(sessions, settings, "x**2")
    check_id = job.checks[0].id
    with sessions() as session:
        send_checks(session, InMemorySender(), list(job.checks))
        now = utc_now()
        assert claims.claim_check(session, check_id, "holder", now, now + timedelta(hours=1))
        session.commit()
    renewer = LeaseRenewer(sessions, LEASE_S)
    try:
        # An execution whose retry was dropped gives back only what it holds.
        assert renewer.give_back(check_id, "another")
        with sessions() as session:
            check = repository.get_check(session, check_id)
            assert check is not None and check.claim_token == "holder"
            assert reconcile_once(session, InMemorySender(), settings) == 0  # held, live
        assert renewer.give_back(check_id, "holder")
    finally:
        renewer.close()
    with sessions() as session:
        check = repository.get_check(session, check_id)
        assert check is not None and check.status is CheckStatus.QUEUED
        assert check.enqueued_at is None and check.claim_token is None
        # requeue_after_s is 900 s (Settings' default): given back, it is sent at once.
        resent = InMemorySender()
        assert reconcile_once(session, resent, settings) == 1
    assert resent.check_ids == [check_id]
