"""``derivcheck status``, ``jobs`` and ``cancel`` against the real API over HTTP (in a thread,
on a rolled-back session; the broker a recorder): short ids resolved as git resolves them,
a job list, cancelling; and the client's retries of refused requests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from servers import ServerThread
from slowness import SLOWNESS
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from verifier.api import create_app
from verifier.api.deps import get_session
from verifier.cli import create_cli
from verifier.cli.client import ApiClient, CliError
from verifier.cli.render import wait_for_job
from verifier.config import Settings
from verifier.delivery.sender import InMemorySender
from verifier.store import repository
from verifier.store.models import Job, JobStatus

SEED_CHECK = {"expression": "3*x**2 + 2*x*y + y**2", "points": [{"x": 2, "y": 1}]}


@pytest.fixture
def api_url(settings: Settings, session: Session) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"api_keys": "off"}), InMemorySender())
    app.dependency_overrides[get_session] = lambda: session
    with ServerThread(app) as url:
        yield url


def _derivcheck(*arguments: str) -> Any:
    return CliRunner().invoke(create_cli(), list(arguments))


def _submit(url: str) -> str:
    with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        response = http.post("/jobs", json={"checks": [SEED_CHECK]})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _job_with_id(session: Session, job_id: uuid.UUID) -> None:
    session.add(Job(id=job_id, status=JobStatus.QUEUED, check_count=0))
    session.commit()


def test_status_takes_the_short_id_that_submit_prints(api_url: str) -> None:
    job_id = _submit(api_url)
    result = _derivcheck("status", job_id[:8], "--json", "--url", api_url)
    assert result.exit_code == 0, result.output  # was HTTP 422: the route wanted a whole uuid
    assert job_id in result.output


def test_an_ambiguous_prefix_is_refused_listing_the_candidates(
    api_url: str, session: Session
) -> None:
    # Two ids that share their first 8 hex digits (written by hand).
    first = uuid.UUID("beb21642-0000-4000-8000-000000000001")
    second = uuid.UUID("beb21642-0000-4000-8000-000000000002")
    _job_with_id(session, first)
    _job_with_id(session, second)

    result = _derivcheck("status", "beb21642", "--url", api_url)
    assert result.exit_code == 2
    assert "ambiguous" in result.output
    assert str(first) in result.output and str(second) in result.output
    longer = _derivcheck("status", "beb21642-0000-4000-8000-00000000000", "--url", api_url)
    assert longer.exit_code == 2  # still both: 31 digits
    whole = _derivcheck("status", str(second), "--json", "--url", api_url)
    assert whole.exit_code == 0, whole.output


def test_an_unknown_or_too_short_prefix_says_so(api_url: str) -> None:
    unknown = _derivcheck("status", "0123abcd", "--url", api_url)
    assert unknown.exit_code == 2
    assert "no job whose id starts with '0123abcd'" in unknown.output
    short = _derivcheck("status", "0123abc", "--url", api_url)
    assert short.exit_code == 2
    assert "at least 8 of its first hex digits" in short.output


def test_jobs_lists_whole_ids_newest_first_and_cancel_ends_a_job(
    api_url: str, session: Session
) -> None:
    older, newer = _submit(api_url), _submit(api_url)
    listed = _derivcheck("jobs", "--url", api_url)
    assert listed.exit_code == 0, listed.output
    assert listed.output.index(newer) < listed.output.index(older)

    cancelled = _derivcheck("cancel", newer[:8], "--url", api_url)
    assert cancelled.exit_code == 0, cancelled.output
    assert f"job {newer} cancelled: 0 of 1 checks have reports" in cancelled.output
    again = _derivcheck("cancel", newer[:8], "--url", api_url)
    assert again.exit_code == 0, again.output  # cancelling twice is harmless
    assert f"job {newer} cancelled" in again.output
    only = _derivcheck("jobs", "--status", "cancelled", "--url", api_url)
    assert newer in only.output and older not in only.output
    job = repository.get_job(session, uuid.UUID(newer))
    assert job is not None and job.status == JobStatus.CANCELLED


def _flaky_app(refusals: int, retry_after: str | None) -> tuple[FastAPI, list[float]]:
    """An app whose GET /jobs/{id} is refused 429 ``refusals`` times, then answers."""
    app = FastAPI()
    calls: list[float] = []

    @app.get("/jobs/{job_id}")
    def job(job_id: str, request: Request, response: Response) -> dict[str, Any]:
        calls.append(1.0)
        if len(calls) <= refusals:
            response.status_code = 429
            if retry_after is not None:
                response.headers["Retry-After"] = retry_after
            return {"detail": "too many requests"}
        return {"id": job_id, "status": "done"}

    return app, calls


def test_a_429_is_retried_after_the_time_retry_after_asks() -> None:
    app, calls = _flaky_app(refusals=2, retry_after="7")
    waits: list[float] = []
    notes: list[str] = []
    with ServerThread(app) as url:
        client = ApiClient(url, sleep=waits.append, on_retry=notes.append)
        with client:
            # Before: the first 429 ended the command with exit 2 while the job ran on.
            assert client.job("j")["status"] == "done"
    assert len(calls) == 3
    assert waits == [7.0, 7.0]  # the header's seconds, not a guess
    assert "HTTP 429; trying again in 7 s" in notes[0]


def test_without_retry_after_the_client_backs_off_then_gives_up() -> None:
    app, calls = _flaky_app(refusals=100, retry_after=None)
    waits: list[float] = []
    with ServerThread(app) as url, ApiClient(url, sleep=waits.append) as client:
        with pytest.raises(CliError, match="HTTP 429"):
            client.job("j")
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]  # FIRST_BACKOFF_S doubled, MAX_RETRIES
    assert len(calls) == len(waits) + 1


class _WaitingJobs:
    """A client whose job waits for an unserved queue twice, then is done."""

    def __init__(self) -> None:
        self.polls = 0

    def job(self, job_id: str) -> dict[str, Any]:
        self.polls += 1
        done = self.polls > 2
        return {
            "id": job_id,
            "status": "done" if done else "queued",
            "progress": {"done": int(done), "total": 1},
            "waiting": None if done else "waiting: no worker serves the cpu queue",
        }


def test_waiting_for_a_job_no_worker_serves_warns_at_once() -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    job = wait_for_job(
        _WaitingJobs(),  # type: ignore[arg-type]
        "beb21642-0000-4000-8000-000000000001",
        console,
        poll_interval_s=0.0,
        timeout_s=10 * SLOWNESS,
        show_progress=False,
    )
    assert job["status"] == "done"
    text = console.export_text()
    # Before: nothing was said until the hour-long timeout ran out.
    assert text.count("warning: job beb21642 is waiting: no worker serves the cpu queue") == 1
    assert "derivcheck worker" in text
