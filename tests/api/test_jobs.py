"""POST /jobs, GET /jobs/{id} and GET /jobs/{id}/report over HTTP."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.orm import Session

from verifier.delivery.execution import passes, report_row
from verifier.store import claims, repository
from verifier.store.models import utc_now

SEED_CHECK = {"expression": "3*x**2 + 2*x*y + y**2", "points": [{"x": 2, "y": 1}]}


def test_submit_answers_202_with_location_and_queues_each_check(
    client: httpx.Client, sender: object
) -> None:
    response = client.post("/jobs", json={"checks": [SEED_CHECK, SEED_CHECK], "label": "seed"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert response.headers["location"] == f"/jobs/{body['id']}"
    assert [queue for _, queue in sender.sent] == ["cpu", "cpu"]  # type: ignore[attr-defined]

    job = client.get(response.headers["location"]).json()
    assert job["status"] == "queued"
    assert job["progress"] == {"done": 0, "total": 2}
    assert job["label"] == "seed"
    assert job["verdict"] is None


def test_bad_expression_gets_422_naming_check_index_problem_and_position(
    client: httpx.Client,
) -> None:
    response = client.post(
        "/jobs",
        json={"checks": [SEED_CHECK, {"expression": "x**2 + foo(x)", "points": [{"x": 1}]}]},
    )
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "checks", 1, "expression"]
    assert problem["msg"] == "check 1: unknown function 'foo' at position 7"
    assert problem["position"] == 7  # "x**2 + " is 7 characters: foo starts at column 7


def test_code_in_an_expression_is_refused_not_run(client: httpx.Client) -> None:
    response = client.post(
        "/jobs",
        json={"checks": [{"expression": "__import__('os').system('true')", "points": [{}]}]},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "expression"


def test_schema_errors_use_the_same_shape(client: httpx.Client) -> None:
    response = client.post("/jobs", json={"checks": [{**SEED_CHECK, "dtype": "float8"}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "checks", 0, "dtype"]


def test_checks_per_job_limit_is_enforced(client: httpx.Client) -> None:
    small = {"expression": "x", "points": [{"x": 1}]}
    response = client.post("/jobs", json={"checks": [small] * 6})  # api_settings allows 5
    assert response.status_code == 422
    assert "more than the limit of 5" in response.json()["detail"][0]["msg"]


def test_body_size_limit_is_enforced(client: httpx.Client) -> None:
    huge = {"expression": "x", "points": [{"x": 1}] * 1000}  # well over api_settings' 4096 B
    response = client.post("/jobs", json={"checks": [huge]})
    assert response.status_code == 413
    assert "larger than the limit of 4096" in response.json()["detail"]


def test_chunked_body_over_the_limit_is_refused(client: httpx.Client) -> None:
    def chunks() -> object:
        yield b'{"checks": [{"expression": "x", "points": ['
        for _ in range(1000):
            yield b'{"x": 1},'
        yield b'{"x": 1}]}]}'

    response = client.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_unknown_job_is_404(client: httpx.Client) -> None:
    missing = uuid.uuid4()
    response = client.get(f"/jobs/{missing}")
    assert response.status_code == 404
    assert str(missing) in response.json()["detail"]
    assert client.get(f"/jobs/{missing}/report").status_code == 404
    assert client.get("/jobs/not-a-uuid").status_code == 422


def test_report_has_the_core_format_per_check_in_order(
    client: httpx.Client, session: Session, make_report_document: object
) -> None:
    job_id = client.post("/jobs", json={"checks": [SEED_CHECK, SEED_CHECK]}).json()["id"]
    job = repository.get_job(session, uuid.UUID(job_id))
    assert job is not None
    first = job.checks[0]
    document = make_report_document(first.expression, "pass")  # type: ignore[operator]
    row = report_row(first, document)
    assert claims.record_report(session, row, utc_now(), passed=passes(first, row))
    session.commit()

    report = client.get(f"/jobs/{job_id}/report").json()
    assert report["job"]["progress"] == {"done": 1, "total": 2}
    (check,) = report["checks"]
    assert check["index"] == 0
    assert check["check"] == str(first.id)
    for key in ("verdict", "dtype", "device", "worst", "versions", "timings", "entries"):
        assert check[key] == document[key]
    assert [pending["index"] for pending in report["pending"]] == [1]


def test_an_unknown_fail_on_verdict_gets_422_naming_it_and_the_choices(
    client: httpx.Client,
) -> None:
    response = client.post("/jobs", json={"checks": [{**SEED_CHECK, "fail_on": ["fail", "bad"]}]})
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "checks", 0, "fail_on", 1]
    # parse_verdict's message (verifier/core/judge/verdict.py), the choices in table order.
    assert (
        "unknown verdict 'bad': choose from pass, domain, undefined, ill-conditioned, "
        in (problem["msg"])
    )


def test_each_check_stores_its_fail_on_resolved_with_strict(
    client: httpx.Client, session: Session
) -> None:
    checks = [
        SEED_CHECK,
        {**SEED_CHECK, "strict": True},
        {**SEED_CHECK, "fail_on": ["undefined"]},
        {**SEED_CHECK, "fail_on": ["domain"], "strict": True},
    ]
    job_id = client.post("/jobs", json={"checks": checks}).json()["id"]
    job = repository.get_job(session, uuid.UUID(job_id))
    assert job is not None
    # verifier/core/judge/verdict.py: the default is fail and nonfinite; --strict everything but
    # pass, domain and error; fail_on with strict adds the two.
    strict = ["fail", "ill-conditioned", "nonfinite", "range", "undefined", "unverified"]
    assert [check.fail_on for check in job.checks] == [
        ["fail", "nonfinite"],
        strict,
        ["undefined"],
        sorted([*strict, "domain"]),
    ]


def test_a_job_passes_when_every_check_passes_its_own_fail_on(
    client: httpx.Client, session: Session, make_report_document: object
) -> None:
    # The same undefined report fails the check that fails on undefined and passes the one
    # on the default policy (fail, nonfinite: verifier/core/judge/verdict.py).
    checks = [{**SEED_CHECK, "fail_on": ["undefined"]}, SEED_CHECK]
    job_id = client.post("/jobs", json={"checks": checks}).json()["id"]
    job = repository.get_job(session, uuid.UUID(job_id))
    assert job is not None
    first, second = job.checks
    document = make_report_document(first.expression, "undefined")  # type: ignore[operator]
    row = report_row(first, document)
    assert claims.record_report(session, row, utc_now(), passed=passes(first, row))
    session.commit()
    assert client.get(f"/jobs/{job_id}").json()["passed"] is None  # not finished yet
    row = report_row(second, document)
    assert claims.record_report(session, row, utc_now(), passed=passes(second, row))
    session.commit()
    session.expire_all()  # a worker finishes the job in a session of its own

    state = client.get(f"/jobs/{job_id}").json()
    assert (state["verdict"], state["passed"]) == ("undefined", False)
    report = client.get(f"/jobs/{job_id}/report").json()
    assert [check["passed"] for check in report["checks"]] == [False, True]
    assert [check["fail_on"] for check in report["checks"]] == [
        ["undefined"],
        ["fail", "nonfinite"],
    ]
    assert [check["counts"] for check in report["checks"]] == [{"undefined": 1}] * 2
    items = client.get("/reports", params={"job": job_id}).json()["items"]
    assert sorted(item["passed"] for item in items) == [False, True]
