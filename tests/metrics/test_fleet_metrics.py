"""Watching a real fleet: PostgreSQL, a Redis broker, ``derivcheck serve`` and a supervised
``derivcheck worker``, with JSON logs and worker metrics on.

One job of two checks runs end to end; then the API's ``/metrics`` and the worker host's
metrics are scraped and parsed with prometheus_client's own parser, ``celery inspect ping``
and Flower's API are asked about the worker, and the log lines are read as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import running_service
from slowness import SLOWNESS

from verifier.cli.processes import free_port
from verifier.store import keys, migrate
from verifier.store.engine import make_engine, make_session_factory

JOB_TIMEOUT_S = 120.0 * SLOWNESS
METRICS_TOKEN = "the-operators-scraper"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}
FLOWER_TIMEOUT_S = 60.0 * SLOWNESS
CHECKS = [
    # tanh's float32 gradient fails at large |x| (docs/survey-torch-2.13-cpu.md).
    {"expression": "tanh(x)", "dtype": "float32", "samples": 40, "domain": {"x": [8, 10]}},
    # The seed example: 6x + 2y and 2x + 2y at (2, 1) are exact in float64.
    {"expression": "3*x**2 + 2*x*y + y**2", "points": [{"x": 2, "y": 1}]},
]


@dataclass
class Fleet:
    url: str
    key: str
    env: dict[str, str]
    worker_metrics_url: str
    logs: Path


@pytest.fixture
def fleet(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[Fleet]:
    migrate.upgrade(postgres_url)
    engine = make_engine(postgres_url)
    with make_session_factory(engine)() as session:
        _, key = keys.create_key(session, "operator")
        session.commit()
    engine.dispose()
    worker_port = free_port()
    overrides = {
        "VERIFIER_DATABASE_URL": postgres_url,
        "VERIFIER_BROKER_URL": redis_url,
        "VERIFIER_LOG_FORMAT": "json",
        # The worker's lines per check are DEBUG unless asked for (docs/metrics.md).
        "VERIFIER_WORKER_CHECK_LOG_LEVEL": "info",
        "VERIFIER_WORKER_METRICS_PORT": str(worker_port),
        "VERIFIER_METRICS_TOKEN": METRICS_TOKEN,
        # The counts before and after the job, each read when scraped (tests/api/
        # test_metrics_access.py tests the cache).
        "VERIFIER_METRICS_CACHE_S": "0",
    }
    with running_service(tmp_path, overrides, api_log_level="info") as url:
        yield Fleet(
            url,
            key,
            {**os.environ, **overrides},
            f"http://127.0.0.1:{worker_port}/metrics",
            tmp_path / "logs",
        )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def celery_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "celery", "--app", "workers.app:app", *arguments]


def wait_for_job(fleet: Fleet, job_id: str) -> dict[str, object]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    with httpx.Client(base_url=fleet.url, timeout=30 * SLOWNESS) as http:
        while time.monotonic() < deadline:
            job: dict[str, object] = http.get(
                f"/jobs/{job_id}", headers={"Authorization": f"Bearer {fleet.key}"}
            ).json()
            if job["status"] in ("done", "error"):
                return job
            time.sleep(0.5)
    pytest.fail(f"job {job_id} did not finish within {JOB_TIMEOUT_S} s")


def test_metrics_ping_flower_and_json_logs_of_a_redis_fleet(fleet: Fleet) -> None:
    with httpx.Client(base_url=fleet.url, timeout=30 * SLOWNESS) as http:
        assert http.get("/metrics").status_code == 401  # keys are required: the token is
        before = samples(http.get("/metrics", headers=SCRAPER).text)
        answer = http.post(
            "/jobs",
            json={"checks": CHECKS},
            headers={"Authorization": f"Bearer {fleet.key}"},
        )
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        job = wait_for_job(fleet, job_id)
        assert job["verdict"] == "fail"
        scraped = http.get("/metrics", headers=SCRAPER)
    assert scraped.headers["content-type"].startswith("text/plain")
    after = samples(scraped.text)

    # A fresh database: the counts are this test's job alone.
    assert before[("derivcheck_jobs_submitted_total", ())] == 0
    assert after[("derivcheck_jobs_submitted_total", ())] == 1
    assert after[("derivcheck_checks_submitted_total", (("dtype", "float32"),))] == 1
    assert after[("derivcheck_checks_submitted_total", (("dtype", "float64"),))] == 1
    assert after[("derivcheck_checks_finished_total", (("verdict", "fail"),))] == 1
    assert after[("derivcheck_checks_finished_total", (("verdict", "pass"),))] == 1
    assert after[("derivcheck_queue_depth", (("queue", "cpu"),))] == 0
    assert after[("derivcheck_queue_depth", (("queue", "gpu"),))] == 0
    for dtype in ("float32", "float64"):
        labels = (("device", "cpu"), ("dtype", dtype))
        assert after[("derivcheck_check_duration_seconds_count", labels)] == 1
        assert after[("derivcheck_check_duration_seconds_sum", labels)] > 0
        assert after[("derivcheck_check_duration_seconds_bucket", (*labels, ("le", "+Inf")))] == 1
    assert after[("derivcheck_metrics_database_up", ())] == 1

    worker = samples(httpx.get(fleet.worker_metrics_url, timeout=10 * SLOWNESS).text)
    ran = "derivcheck_worker_checks_total"
    assert worker[(ran, (("device", "cpu"), ("dtype", "float32"), ("verdict", "fail")))] == 1
    assert worker[(ran, (("device", "cpu"), ("dtype", "float64"), ("verdict", "pass")))] == 1
    durations = "derivcheck_worker_check_duration_seconds_count"
    assert worker[(durations, (("device", "cpu"), ("dtype", "float32")))] == 1

    ping = subprocess.run(
        celery_command("inspect", "ping", "--timeout", str(5 * SLOWNESS)),
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=60 * SLOWNESS,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "pong" in ping.stdout

    flower_port = free_port()
    flower = subprocess.Popen(
        celery_command("flower", f"--port={flower_port}", "--address=127.0.0.1"),
        env={**fleet.env, "FLOWER_UNAUTHENTICATED_API": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        online = _flower_sees_a_worker(f"http://127.0.0.1:{flower_port}")
    finally:
        flower.terminate()
        flower.wait(timeout=30 * SLOWNESS)
    assert online

    api_events = _events(fleet.logs / "api.log")
    accepted = [line for line in api_events if line["event"] == "job_accepted"]
    assert [line["job_id"] for line in accepted] == [job_id]
    worker_events = _events(fleet.logs / "worker.log")
    finished = [line for line in worker_events if line["event"] == "check_finished"]
    assert sorted(line["verdict"] for line in finished) == ["fail", "pass"]
    assert {line["job_id"] for line in finished} == {job_id}
    assert all(line["duration_s"] > 0 and line["check_id"] for line in finished)
    claimed = [line for line in worker_events if line["event"] == "check_claimed"]
    assert {line["check_id"] for line in claimed} == {line["check_id"] for line in finished}


def _flower_sees_a_worker(url: str) -> bool:
    """Whether Flower lists a worker as online (from its heartbeats) within the timeout."""
    deadline = time.monotonic() + FLOWER_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            status = httpx.get(
                f"{url}/api/workers", params={"status": "true"}, timeout=10 * SLOWNESS
            )
        except httpx.TransportError:
            time.sleep(0.5)
            continue
        if status.status_code == 200 and any(status.json().values()):
            return True
        time.sleep(0.5)
    return False


def _events(path: Path) -> list[dict[str, object]]:
    """The JSON lines of a log (a supervisor's own lines and tracebacks are not JSON)."""
    found = []
    for line in path.read_text().splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "event" in parsed:
            found.append(parsed)
    return found
