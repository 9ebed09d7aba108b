"""GET /jobs (the caller's jobs, a prefix of an id resolved) and DELETE /jobs/{id} (cancel)
over HTTP, with the claims a worker takes (verifier/store/claims.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy.orm import Session

from verifier.delivery.execution import passes, report_row
from verifier.store import claims, repository
from verifier.store.models import CheckStatus, utc_now

SEED_CHECK = {"expression": "3*x**2 + 2*x*y + y**2", "points": [{"x": 2, "y": 1}]}
LEASE = timedelta(minutes=5)


def _submit(client: httpx.Client, checks: int = 1, label: str = "job") -> str:
    response = client.post("/jobs", json={"checks": [SEED_CHECK] * checks, "label": label})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_jobs_are_listed_newest_first_a_page_at_a_time(client: httpx.Client) -> None:
    submitted = [_submit(client, label=f"job {number}") for number in range(3)]

    first = client.get("/jobs", params={"limit": 2})
    assert first.status_code == 200, first.text  # was 405: /jobs only took POST
    page = first.json()
    assert [job["id"] for job in page["items"]] == submitted[::-1][:2]
    assert page["next_cursor"]
    second = client.get("/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [job["id"] for job in second["items"]] == [submitted[0]]
    assert second["next_cursor"] is None
    assert second["items"][0]["label"] == "job 0"


def test_a_bad_cursor_or_status_is_refused_naming_it(client: httpx.Client) -> None:
    bad = client.get("/jobs", params={"cursor": "bm90IGEgY3Vyc29y"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "cursor"]
    assert client.get("/jobs", params={"status": "lost"}).status_code == 422


def test_a_unique_prefix_of_eight_hex_digits_finds_its_job(client: httpx.Client) -> None:
    job_id = _submit(client)
    _submit(client)  # another job, which the prefix must not find

    for prefix in (job_id[:8], job_id[:13], job_id.upper()[:8], job_id):
        found = client.get("/jobs", params={"prefix": prefix})
        assert found.status_code == 200, (prefix, found.text)
        assert [job["id"] for job in found.json()["items"]] == [job_id], prefix


def test_a_prefix_shorter_than_eight_digits_or_not_hex_is_refused(client: httpx.Client) -> None:
    for prefix in ("beb2164", "zzzzzzzz", "beb21642;drop"):
        refused = client.get("/jobs", params={"prefix": prefix})
        assert refused.status_code == 422, prefix
        (problem,) = refused.json()["detail"]
        assert problem["loc"] == ["query", "prefix"]
        assert "8 to 32 hex digits" in problem["msg"]


def test_jobs_are_filtered_by_status(client: httpx.Client) -> None:
    kept = _submit(client)
    cancelled = _submit(client)
    assert client.delete(f"/jobs/{cancelled}").status_code == 200

    listed = client.get("/jobs", params={"status": "cancelled"}).json()["items"]
    assert [job["id"] for job in listed] == [cancelled]
    queued = client.get("/jobs", params={"status": "queued"}).json()["items"]
    assert kept in [job["id"] for job in queued] and cancelled not in [j["id"] for j in queued]


def test_cancel_stops_queued_checks_lets_running_ones_finish_and_is_idempotent(
    client: httpx.Client, session: Session, make_report_document: object
) -> None:
    job_id = _submit(client, checks=2)
    job = repository.get_job(session, uuid.UUID(job_id))
    assert job is not None
    running, queued = job.checks
    now = utc_now()
    assert claims.claim_check(session, running.id, "worker-a", now, now + LEASE) == 1
    session.commit()

    answer = client.delete(f"/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    state = answer.json()
    assert state["status"] == "cancelled"
    assert state["finished_at"] is not None
    assert state["progress"] == {"done": 0, "total": 2}

    session.expire_all()
    assert queued.status == CheckStatus.CANCELLED
    # A worker that is delivered the cancelled check cannot claim it, and skips it.
    assert claims.claim_check(session, queued.id, "worker-b", now, now + LEASE) is None
    # The running check finishes and its report is kept; the job stays cancelled.
    document = make_report_document(running.expression, "pass")  # type: ignore[operator]
    row = report_row(running, document)
    assert claims.finish_check(session, row, "worker-a", utc_now(), passed=passes(running, row))
    session.commit()
    session.expire_all()

    again = client.delete(f"/jobs/{job_id}")
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"
    assert again.json()["progress"] == {"done": 1, "total": 2}
    assert client.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    report = client.get(f"/jobs/{job_id}/report").json()
    assert [check["status"] for check in report["pending"]] == ["cancelled"]


def test_a_running_check_of_a_cancelled_job_whose_worker_died_is_not_run_again(
    client: httpx.Client, session: Session
) -> None:
    job_id = _submit(client, checks=1)
    job = repository.get_job(session, uuid.UUID(job_id))
    assert job is not None
    (check,) = job.checks
    claimed = utc_now()
    assert claims.claim_check(session, check.id, "worker-a", claimed, claimed + LEASE) == 1
    session.commit()
    assert client.delete(f"/jobs/{job_id}").json()["status"] == "cancelled"
    # worker-a dies; once its lease has expired the reconciler releases its claims. A check
    # put back to queued would be sent and run again for a job nobody wants any more.
    later = claimed + 2 * LEASE
    assert claims.release_expired_claims(session, later, limit=10) == 1
    session.commit()
    session.expire_all()
    assert check.status == CheckStatus.CANCELLED
    assert claims.claim_check(session, check.id, "worker-b", later, later + LEASE) is None
    assert client.get(f"/jobs/{job_id}").json()["status"] == "cancelled"


def test_cancelling_a_finished_job_leaves_it_as_it_is(
    client: httpx.Client, session: Session, make_report_document: object
) -> None:
    job_id = _submit(client)
    job = repository.get_job(session, uuid.UUID(job_id))
    assert job is not None
    (check,) = job.checks
    document = make_report_document(check.expression, "pass")  # type: ignore[operator]
    row = report_row(check, document)
    assert claims.record_report(session, row, utc_now(), passed=passes(check, row))
    session.commit()

    answer = client.delete(f"/jobs/{job_id}")
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["passed"]) == ("done", True)


def test_cancelling_an_unknown_job_is_404(client: httpx.Client) -> None:
    missing = uuid.uuid4()
    answer = client.delete(f"/jobs/{missing}")
    assert answer.status_code == 404
    assert str(missing) in answer.json()["detail"]
