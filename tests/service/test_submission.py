"""Submitting a job: validation with locations, what is stored, and sending to the broker.

Sources of the expected values: [points] the limits and the number syntax of
``verifier/core/floats/points.py`` (``SERVICE_POINTS_PER_CHECK``, ``MAX_POINTS_PER_CHECK``,
``MAX_NUMBER_CHARS``, ``MAX_DECIMAL_EXPONENT``); [ieee] IEEE 754's largest finite numbers:
binary32 about 3.4028e38, binary16 65504 (above 65520 a value rounds to infinity), bfloat16
about 3.3895e38; [tolerance] ``make_tolerance`` in ``verifier/core/judge/tolerance.py`` refuses a
tolerance of 1e300 or more; [hostile-load] docs/hostile-load.md's row "accepted, then
refused": what the worker refused after a 202.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier.config import Settings
from verifier.core.floats.points import (
    MAX_DECIMAL_EXPONENT,
    MAX_POINTS_PER_CHECK,
    SERVICE_POINTS_PER_CHECK,
)
from verifier.delivery.execution import run_core
from verifier.delivery.reconciler import reconcile_once
from verifier.delivery.sender import InMemorySender, send_checks
from verifier.errors import JobRejectedError
from verifier.service import jobs
from verifier.service.schemas import CheckIn, JobIn
from verifier.store.models import Check, CheckFunction, JobStatus
from verifier.store.outcome import check_fail_on
from workers.tasks import core_check


def _job(*checks: dict[str, object], label: str | None = None) -> JobIn:
    return JobIn.model_validate({"checks": list(checks), "label": label})


def _problems(error: pytest.ExceptionInfo[JobRejectedError]) -> list[dict[str, object]]:
    return error.value.problems


def test_submit_stores_checks_with_their_functions_and_queues(
    session: Session, settings: Settings
) -> None:
    job = jobs.submit_job(
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
        jobs.submit_job(
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
        ({"expression": "x*y", "points": [{"x": 1}]}, ["points", 0], "no value for variable(s) y"),
        ({"expression": "x", "points": [{"x": 1, "z": 2}]}, ["points", 0], "unknown variable(s) z"),
        ({"expression": "x", "points": [{"x": "two"}]}, ["points", 0, "x"], "not a decimal number"),
        ({"expression": "x", "points": [{"x": "inf"}]}, ["points", 0, "x"], "not a decimal number"),
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
        jobs.submit_job(session, _job(check), settings)
    (problem,) = _problems(error)
    assert problem["loc"] == ["body", "checks", 0, *loc_tail]
    assert words in str(problem["msg"])


def test_checks_per_job_limit(session: Session, settings: Settings) -> None:
    limited = settings.model_copy(update={"max_checks_per_job": 2})
    check = {"expression": "x", "points": [{"x": 1}]}
    with pytest.raises(JobRejectedError, match="3 checks in one job, more than the limit of 2"):
        jobs.submit_job(session, _job(check, check, check), limited)


def test_send_marks_checks_enqueued_and_lost_ones_are_resent(
    session: Session, settings: Settings
) -> None:
    check = {"expression": "x", "points": [{"x": 1}]}
    job = jobs.submit_job(session, _job(check, check, check), settings)
    flaky = InMemorySender(refuse_after=1)
    assert send_checks(session, flaky, list(job.checks)) == 1
    enqueued = [c.enqueued_at is not None for c in job.checks]
    assert enqueued == [True, False, False]

    healthy = InMemorySender()
    assert reconcile_once(session, healthy, settings) == 2
    assert {check_id for check_id, _ in healthy.sent} == {c.id for c in job.checks[1:]}
    # Sent just now: not due again until requeue_after_s has passed.
    assert reconcile_once(session, InMemorySender(), settings) == 0


# [hostile-load] Checks that were answered 202 and then ended as `error` in the worker, each with
# the field the refusal must name and words of the core's own message.
REFUSED_BY_THE_WORKER = [
    pytest.param(
        {"expression": "2*pi + 1", "points": [{}]},
        ["expression"],
        "no variables to differentiate by",
        id="no variables",
    ),
    pytest.param(
        {"expression": "x", "points": [{"x": 1e39}], "dtype": "float32"},  # [ieee] > 3.4028e38
        ["points", 0, "x"],
        "overflows float32",
        id="1e39 in float32",
    ),
    pytest.param(
        {"expression": "x", "points": [{"x": "70000"}], "dtype": "float16"},  # [ieee] > 65520
        ["points", 0, "x"],
        "overflows float16",
        id="70000 in float16",
    ),
    pytest.param(
        {"expression": "x", "points": [{"x": -1e39}], "dtype": "bfloat16"},  # [ieee] > 3.39e38
        ["points", 0, "x"],
        "overflows bfloat16",
        id="-1e39 in bfloat16",
    ),
    pytest.param(
        {"expression": "x", "points": [{"x": 1}], "rtol": 1e308},  # [tolerance] >= 1e300
        ["rtol"],
        "rtol must be",
        id="rtol 1e308",
    ),
    pytest.param(
        {"expression": "x", "points": [{"x": 1}], "atol": 1e300},  # [tolerance] >= 1e300
        ["atol"],
        "atol must be",
        id="atol 1e300",
    ),
    pytest.param(
        # [points] the decimal exponent -500 is beyond MAX_DECIMAL_EXPONENT (400).
        {"expression": "x", "points": [{"x": "1e-500"}]},
        ["points", 0, "x"],
        f"out of range (a decimal exponent beyond ±{MAX_DECIMAL_EXPONENT})",
        id="1e-500 as text",
    ),
    pytest.param(
        # [points] "0." and 150 zeros and "1": 153 characters, more than MAX_NUMBER_CHARS.
        {"expression": "x", "points": [{"x": "0." + "0" * 150 + "1"}]},
        ["points", 0, "x"],
        "is not a decimal number",
        id="150 zeros",
    ),
    pytest.param(
        {"expression": "x", "points": [{"x": 1}], "domain": {"x": [0, 1]}},
        ["domain"],
        "domain is given without samples",
        id="domain without samples",
    ),
    pytest.param(
        {"expression": "x*1e-4400", "points": [{"x": 1}]},
        ["expression"],
        "decimal exponent beyond",
        id="1e-4400 literal",
    ),
]


def _stored(check: dict[str, object]) -> Check:
    """The row the service would store for ``check`` (not added to any session)."""
    request = CheckIn.model_validate(check)
    domain = {k: list(v) for k, v in request.domain.items()} if request.domain else None
    return Check(
        expression=request.expression,
        variables=[],
        points=request.points,
        dtype=request.dtype,
        device=request.device,
        nodes=request.nodes,
        hessian=request.hessian,
        samples=request.samples,
        domain=domain,
        seed=request.seed,
        rtol=request.rtol,
        atol=request.atol,
        strict=request.strict,
        fail_on=check_fail_on(request.fail_on, strict=request.strict),
        functions=[],
    )


@pytest.mark.parametrize(("check", "loc_tail", "words"), REFUSED_BY_THE_WORKER)
def test_what_the_worker_refuses_submission_refuses_first_naming_the_check_and_field(
    session: Session,
    settings: Settings,
    check: dict[str, object],
    loc_tail: list[object],
    words: str,
) -> None:
    # The worker's own path (run_core with the worker's core) ends such a check as invalid input.
    document = run_core(_stored(check), core_check)
    assert document["verdict"] == "error"
    assert str(document["reason"]).startswith("invalid input: ")
    assert words in str(document["reason"])
    # Submission refuses it first, with the same words, at the check's index and field.
    ok = {"expression": "x", "points": [{"x": 1}]}
    with pytest.raises(JobRejectedError) as error:
        jobs.submit_job(session, _job(ok, check), settings)
    (problem,) = _problems(error)
    assert problem["loc"] == ["body", "checks", 1, *loc_tail]
    assert str(problem["msg"]).startswith("check 1")
    assert words in str(problem["msg"])


def test_points_and_samples_together_are_bounded_by_the_service_then_by_the_core(
    session: Session, settings: Settings
) -> None:
    # [points] one given point and SERVICE_POINTS_PER_CHECK samples: one point too many for
    # the service's default, counted as the worker counts them.
    over = {"expression": "x", "points": [{"x": 1}], "samples": SERVICE_POINTS_PER_CHECK}
    with pytest.raises(JobRejectedError) as error:
        jobs.submit_job(session, _job(over), settings)
    (problem,) = _problems(error)
    assert problem["loc"] == ["body", "checks", 0, "samples"]
    words = f"{SERVICE_POINTS_PER_CHECK + 1} points, more than {SERVICE_POINTS_PER_CHECK} per check"
    assert words in str(problem["msg"])
    # An operator may raise the limit up to the core's, which the worker enforces itself.
    raised = settings.model_copy(
        update={
            "max_points_per_check": MAX_POINTS_PER_CHECK,
            "max_samples_per_check": MAX_POINTS_PER_CHECK,
        }
    )
    assert jobs.submit_job(session, _job(over), raised).check_count == 1
    beyond = {**over, "samples": MAX_POINTS_PER_CHECK}
    document = run_core(_stored(beyond), core_check)
    words = f"{MAX_POINTS_PER_CHECK + 1} points, more than {MAX_POINTS_PER_CHECK} per check"
    assert document["verdict"] == "error" and words in str(document["reason"])
    with pytest.raises(JobRejectedError) as error:
        jobs.submit_job(session, _job(beyond), raised)
    (problem,) = _problems(error)
    assert words in str(problem["msg"])


@pytest.mark.parametrize(
    "check",
    [
        # [points] -400 is the most negative decimal exponent allowed; in float64 it rounds to 0.
        {"expression": "x", "points": [{"x": "1e-400"}]},
        # [points] the sampling range may be a single value (low <= high).
        {"expression": "x", "samples": 3, "domain": {"x": [0.5, 0.5]}},
        # [ieee] 65504 is float16's largest finite number.
        {"expression": "x", "points": [{"x": 65504}], "dtype": "float16"},
        # [points] SERVICE_POINTS_PER_CHECK in all, given and sampled.
        {"expression": "x", "points": [{"x": 1}], "samples": SERVICE_POINTS_PER_CHECK - 1},
    ],
)
def test_what_the_worker_accepts_submission_accepts(
    session: Session, settings: Settings, check: dict[str, object]
) -> None:
    job = jobs.submit_job(session, _job(check), settings)
    assert job.check_count == 1


def test_compare_devices_is_stored_as_two_names_and_routed_to_the_device_it_needs(
    session: Session, settings: Settings
) -> None:
    point = {"points": [{"x": 2}]}
    job = jobs.submit_job(
        session,
        _job(
            {"expression": "x**2", **point, "compare_devices": True},
            {"expression": "x**2", **point, "device": "cpu", "compare_devices": ["cpu", "cuda"]},
            {"expression": "x**2", **point, "compare_devices": ["cpu", "cpu"]},
            {"expression": "x**2", **point, "compare_devices": False},
        ),
        settings,
    )
    checks = session.scalars(select(Check).where(Check.job_id == job.id).order_by(Check.position))
    stored = [(check.compare_devices, check.queue) for check in checks]
    gpu, cpu = settings.gpu_queue, settings.cpu_queue
    assert stored == [
        (["cuda", "cpu"], gpu),  # true: CUDA (the report's device) against the CPU
        (["cpu", "cuda"], gpu),  # any CUDA device needs a GPU worker
        (["cpu", "cpu"], cpu),
        (None, cpu),
    ]


def test_a_bad_device_pair_is_refused_at_its_check(session: Session, settings: Settings) -> None:
    with pytest.raises(JobRejectedError) as error:
        jobs.submit_job(
            session,
            _job(
                {"expression": "x", "points": [{"x": 1}]},
                {"expression": "x", "points": [{"x": 1}], "compare_devices": ["cuda", "tpu"]},
                {"expression": "x", "points": [{"x": 1}], "device": "cpu", "compare_devices": True},
            ),
            settings,
        )
    first, second = _problems(error)
    assert first["loc"] == ["body", "checks", 1, "compare_devices"]
    assert "unknown device 'tpu'" in str(first["msg"])
    assert second["loc"] == ["body", "checks", 2, "compare_devices"]
    assert "device 'cpu' and compare_devices ['cuda', 'cpu'] disagree" in str(second["msg"])
