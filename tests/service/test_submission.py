"""Submitting a job: validation with locations, what is stored, and sending to the broker."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier import service
from verifier.config import Settings
from verifier.errors import JobRejectedError
from verifier.models import Check, CheckFunction, JobStatus
from verifier.reconciler import reconcile_once
from verifier.schemas import JobIn


class RecordingSender:
    """Stands in for the broker, which is not what these tests are about."""

    def __init__(self, fail_after: int | None = None):
        self.sent: list[tuple[uuid.UUID, str]] = []
        self.fail_after = fail_after

    def send_check(self, check_id: uuid.UUID, queue: str) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise ConnectionError("broker down")
        self.sent.append((check_id, queue))


def _job(*checks: dict[str, object], label: str | None = None) -> JobIn:
    return JobIn.model_validate({"checks": list(checks), "label": label})


def _problems(error: pytest.ExceptionInfo[JobRejectedError]) -> list[dict[str, object]]:
    return error.value.problems


def test_submit_stores_checks_with_their_functions_and_queues(
    session: Session, settings: Settings
) -> None:
    job = service.submit_job(
        session,
        _job(
            {"expression": "sin(x) + sinc(y)", "points": [{"x": 1, "y": "0.5"}]},
            {"expression": "x**2", "points": [{"x": 2}], "device": "cuda", "dtype": "float32"},
            label="mine",
        ),
        settings,
    )
    assert job.status is JobStatus.QUEUED
    assert job.check_count == 2
    checks = session.scalars(select(Check).where(Check.job_id == job.id).order_by(Check.position))
    first, second = checks.all()
    assert first.variables == ["x", "y"]
    assert first.queue == settings.cpu_queue
    assert second.queue == settings.gpu_queue  # device cuda needs a GPU worker
    functions = session.scalars(
        select(CheckFunction.function).where(CheckFunction.check_id == first.id)
    ).all()
    assert sorted(functions) == ["sin", "sinc"]


def test_bad_expression_is_refused_with_check_index_and_position(
    session: Session, settings: Settings
) -> None:
    with pytest.raises(JobRejectedError) as error:
        service.submit_job(
            session,
            _job(
                {"expression": "x + 1", "points": [{"x": 1}]},
                {"expression": "x + foo(x)", "points": [{"x": 1}]},
            ),
            settings,
        )
    (problem,) = _problems(error)
    assert problem["loc"] == ["body", "checks", 1, "expression"]
    assert problem["position"] == 4  # "x + foo(x)": the call starts at column 4
    assert "check 1" in str(problem["msg"]) and "foo" in str(problem["msg"])


@pytest.mark.parametrize(
    ("check", "loc_tail", "words"),
    [
        ({"expression": "x*y", "points": [{"x": 1}]}, ["points", 0], "no value for variable 'y'"),
        ({"expression": "x", "points": [{"x": 1, "z": 2}]}, ["points", 0, "z"], "'z' is not"),
        ({"expression": "x", "points": [{"x": "two"}]}, ["points", 0, "x"], "not a number"),
        ({"expression": "x", "points": [{"x": "inf"}]}, ["points", 0, "x"], "not finite"),
        ({"expression": "x"}, ["points"], "give points, or samples"),
        ({"expression": "x", "samples": 4, "domain": {"q": [0, 1]}}, ["domain", "q"], "'q'"),
        ({"expression": "x", "samples": 4, "domain": {"x": [1, 0]}}, ["domain", "x"], "low <"),
    ],
)
def test_bad_points_and_options_are_refused_naming_the_field(
    session: Session,
    settings: Settings,
    check: dict[str, object],
    loc_tail: list[object],
    words: str,
) -> None:
    with pytest.raises(JobRejectedError) as error:
        service.submit_job(session, _job(check), settings)
    (problem,) = _problems(error)
    assert problem["loc"] == ["body", "checks", 0, *loc_tail]
    assert words in str(problem["msg"])


def test_checks_per_job_limit(session: Session, settings: Settings) -> None:
    limited = settings.model_copy(update={"max_checks_per_job": 2})
    check = {"expression": "x", "points": [{"x": 1}]}
    with pytest.raises(JobRejectedError, match="3 checks in one job, more than the limit of 2"):
        service.submit_job(session, _job(check, check, check), limited)


def test_send_marks_checks_enqueued_and_lost_ones_are_resent(
    session: Session, settings: Settings
) -> None:
    check = {"expression": "x", "points": [{"x": 1}]}
    job = service.submit_job(session, _job(check, check, check), settings)
    flaky = RecordingSender(fail_after=1)
    assert service.send_checks(session, flaky, list(job.checks)) == 1
    enqueued = [c.enqueued_at is not None for c in job.checks]
    assert enqueued == [True, False, False]

    healthy = RecordingSender()
    assert reconcile_once(session, healthy, settings) == 2
    assert {check_id for check_id, _ in healthy.sent} == {c.id for c in job.checks[1:]}
    # Sent just now: not due again until requeue_after_s has passed.
    assert reconcile_once(session, RecordingSender(), settings) == 0
