"""Access over real HTTP with keys required: who may call what, isolation between keys (404,
never 403), open health and docs, and the per-key rate limit with 429 and Retry-After, shared
by API processes through Redis (and kept per process while Redis is away)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from slowness import SLOWNESS
from sqlalchemy.orm import Session

from verifier.api import create_app
from verifier.api.auth import keys_required
from verifier.api.deps import get_session
from verifier.cli.processes import free_port, service_command
from verifier.config import Settings
from verifier.store import keys, repository
from verifier.store.documents import report_row

CHECK = {"expression": "3*x**2 + 2*x*y + y**2", "points": [{"x": 2, "y": 1}]}


@pytest.fixture
def keyed(
    settings: Settings, session: Session, sender: Any, server_thread: Any
) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    """A live API requiring keys, and the headers of two keys, alice and bob."""
    limited = settings.model_copy(update={"rate_limit_per_minute": 60, "rate_limit_burst": 5})
    app = create_app(limited, sender)
    app.dependency_overrides[get_session] = lambda: session
    _, alice = keys.create_key(session, "alice")
    _, bob = keys.create_key(session, "bob")
    with server_thread(app) as url:
        yield (
            url,
            {"Authorization": f"Bearer {alice}"},
            {"X-API-Key": bob},  # the second accepted header
        )


def test_health_docs_and_schema_need_no_key(keyed: Any) -> None:
    url, _, _ = keyed
    with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        assert http.get("/health").status_code == 200
        assert http.get("/docs").status_code == 200
        assert http.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer dck_not-a-real-key"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"X-API-Key": "x" * 5000},
    ],
    ids=["none", "unknown", "empty", "basic", "huge"],
)
def test_requests_without_a_valid_key_get_401(keyed: Any, headers: dict[str, str]) -> None:
    url, _, _ = keyed
    with httpx.Client(base_url=url, headers=headers, timeout=30 * SLOWNESS) as http:
        for method, path in [
            ("POST", "/jobs"),
            ("GET", f"/jobs/{uuid.uuid4()}"),
            ("GET", "/reports"),
            ("GET", "/stats"),
        ]:
            response = http.request(method, path, json={"checks": [CHECK]})
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "API key" in response.json()["detail"]


def test_another_keys_job_report_and_reports_are_invisible(
    keyed: Any, session: Session, make_report_document: Any
) -> None:
    url, alice, bob = keyed
    with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        accepted = http.post("/jobs", json={"checks": [CHECK]}, headers=alice)
        assert accepted.status_code == 202
        job_id = accepted.json()["id"]
        job = repository.get_job(session, uuid.UUID(job_id))
        assert job is not None
        repository.insert_report(
            session, report_row(job.checks[0], make_report_document(CHECK["expression"], "pass"))
        )
        session.commit()

        assert http.get(f"/jobs/{job_id}", headers=alice).status_code == 200
        assert http.get(f"/jobs/{job_id}/report", headers=alice).status_code == 200
        own = http.get("/reports", headers=alice).json()["items"]
        assert [item["job"] for item in own] == [job_id]
        assert http.get("/stats", headers=alice).json()["total"] == 1

        for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/report"):
            hidden = http.get(path, headers=bob)
            assert hidden.status_code == 404  # not 403: the id reveals nothing
            assert hidden.json()["detail"] == f"no job {job_id}"
        assert http.get("/reports", headers=bob).json()["items"] == []
        assert http.get("/reports", params={"job": job_id}, headers=bob).json()["items"] == []
        assert http.get("/stats", headers=bob).json()["total"] == 0


def test_a_revoked_key_gets_401(keyed: Any, session: Session) -> None:
    url, alice, _ = keyed
    with httpx.Client(base_url=url, headers=alice, timeout=30 * SLOWNESS) as http:
        assert http.get("/reports").status_code == 200
        keys.revoke_key(session, "alice")
        assert http.get("/reports").status_code == 401


def test_rate_limit_answers_429_with_retry_after_per_key(keyed: Any) -> None:
    url, alice, bob = keyed
    with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        codes = [http.get("/reports", headers=alice).status_code for _ in range(8)]
        # burst 5, then one per second (60 a minute); 8 quick requests: 5 pass, then 429s.
        assert codes[:5] == [200] * 5
        assert 429 in codes[5:]
        limited = http.get("/reports", headers=alice)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 2
        assert "rate limit" in limited.json()["detail"]
        assert http.get("/reports", headers=bob).status_code == 200  # bob has his own bucket
        assert http.get("/health").status_code == 200  # health is never limited
        time.sleep(int(limited.headers["retry-after"]))
        assert http.get("/reports", headers=alice).status_code == 200


@contextmanager
def _api_servers(
    settings: Settings, session: Session, sender: Any, server_thread: Any, count: int
) -> Iterator[list[str]]:
    """``count`` live APIs on ``settings`` (keys required), each with its own rate limiter."""
    with ExitStack() as stack:
        urls = []
        for _ in range(count):
            app = create_app(settings, sender)
            app.dependency_overrides[get_session] = lambda: session
            urls.append(stack.enter_context(server_thread(app)))
        yield urls


def test_api_processes_on_redis_share_one_bucket_per_key(
    settings: Settings, session: Session, sender: Any, server_thread: Any, redis_url: str
) -> None:
    shared = settings.model_copy(
        update={"broker_url": redis_url, "rate_limit_per_minute": 60, "rate_limit_burst": 5}
    )
    _, alice = keys.create_key(session, "alice")
    headers = {"Authorization": f"Bearer {alice}"}
    with _api_servers(shared, session, sender, server_thread, 2) as urls:
        # 8 quick requests, alternating between the two APIs: one bucket of 5 between them
        # (two buckets of their own would have let all 8 through).
        codes = [
            httpx.get(f"{urls[n % 2]}/reports", headers=headers, timeout=30 * SLOWNESS).status_code
            for n in range(8)
        ]
    assert codes[:5] == [200] * 5
    assert 429 in codes[5:]


def test_with_redis_away_each_api_process_limits_on_its_own_without_delay(
    settings: Settings, session: Session, sender: Any, server_thread: Any
) -> None:
    nobody = settings.model_copy(
        update={
            "broker_url": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            "rate_limit_per_minute": 60,
            "rate_limit_burst": 5,
        }
    )
    _, alice = keys.create_key(session, "alice")
    headers = {"Authorization": f"Bearer {alice}"}
    with _api_servers(nobody, session, sender, server_thread, 1) as (url,):
        started = time.monotonic()
        codes = [
            httpx.get(f"{url}/reports", headers=headers, timeout=30 * SLOWNESS).status_code
            for _ in range(8)
        ]
        elapsed = time.monotonic() - started
    assert codes[:5] == [200] * 5
    assert 429 in codes[5:]
    # One short connect timeout, not one per request: 3 s on the development machine, most of
    # it this machine's work for 8 requests, so it scales.
    assert elapsed < 3.0 * SLOWNESS


@pytest.mark.parametrize(
    ("mode", "host", "embedded", "required"),
    [
        ("auto", "127.0.0.1", True, False),
        ("auto", "::1", True, False),
        ("auto", "localhost", True, False),
        ("auto", "0.0.0.0", True, True),
        ("auto", "127.0.0.1", False, True),
        ("required", "127.0.0.1", True, True),
        ("off", "127.0.0.1", False, False),
    ],
)
def test_keys_may_be_off_only_on_loopback(
    tmp_path: Path, mode: str, host: str, embedded: bool, required: bool
) -> None:
    fleet = {} if embedded else {"database_url": "postgresql+psycopg://db/x"}
    settings = Settings(data_dir=tmp_path, api_keys=mode, **fleet)
    assert keys_required(settings, host) is required


def test_keys_off_on_a_public_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only on a loopback address"):
        keys_required(Settings(data_dir=tmp_path, api_keys="off"), "0.0.0.0")


def test_serve_says_at_start_that_keys_are_off(tmp_path: Path) -> None:
    env = {**os.environ, "VERIFIER_DATA_DIR": str(tmp_path), "VERIFIER_REQUEUE_INTERVAL_S": "0"}
    for name in ("VERIFIER_DATABASE_URL", "VERIFIER_BROKER_URL", "VERIFIER_API_KEYS"):
        env.pop(name, None)
    command = service_command("serve", "--port", str(free_port()), "--log-level", "warning")
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
    finally:
        process.terminate()
        process.wait(timeout=20 * SLOWNESS)
        if process.stdout is not None:
            process.stdout.close()
    assert "API keys are off" in first and "127.0.0.1" in first
    refused = subprocess.run(
        service_command("serve", "--host", "0.0.0.0", "--port", str(free_port())),
        env={**env, "VERIFIER_API_KEYS": "off"},
        capture_output=True,
        text=True,
        timeout=60 * SLOWNESS,
    )
    assert refused.returncode == 2
    assert "only on a loopback address" in refused.stderr
