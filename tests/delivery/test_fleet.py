"""Which queues the workers serve (verifier/delivery/fleet.py): announcements as Redis keys
that expire with the window, or files beside the embedded broker's file; a job with CUDA checks
refused with a 503 and Retry-After while no worker serves the gpu queue; a job's status saying
what its queued checks wait for; /health counting the workers of each queue. A real worker
announcing its queues is in tests/faults/test_served_queues.py."""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path

import httpx
import pytest
import redis
from servers import ServerThread
from slowness import SLOWNESS
from sqlalchemy.orm import Session

from verifier.api.app import create_app
from verifier.config import Settings
from verifier.delivery import fleet as fleet_module
from verifier.delivery.fleet import REDIS_KEY_PREFIX, Fleet, fleet_for, served_folder
from verifier.delivery.sender import InMemorySender
from verifier.errors import BusyError
from verifier.service import jobs
from verifier.service.schemas import JobIn
from verifier.store import migrate

WINDOW_S = 0.5 * SLOWNESS
"""A short window, scaled: an announcement must still be inside it when it is read."""
GPU_CHECK = {"expression": "x**2", "points": [{"x": 2}], "device": "cuda"}
CPU_CHECK = {"expression": "x**2", "points": [{"x": 2}]}


@pytest.fixture(autouse=True)
def _fresh_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test reads the fleet anew (one Fleet per broker and window in a process)."""
    fleet_module._fleet.cache_clear()
    monkeypatch.setattr(fleet_module, "READ_CACHE_S", 0.0)


def test_a_queue_is_served_on_redis_while_its_key_lives_and_not_after(redis_url: str) -> None:
    fleet = Fleet(redis_url, WINDOW_S)
    assert fleet.served("gpu") is False  # nobody ever announced it
    fleet.announce(["cpu", "gpu"], worker="host-a")
    client = redis.Redis.from_url(redis_url)
    try:
        ttl_ms = client.pttl(REDIS_KEY_PREFIX + "gpu:host-a")
        assert 0 < ttl_ms <= math.ceil(WINDOW_S * 1000)  # it expires with the window (ms)
        assert fleet.served("gpu") is True and fleet.served("cpu") is True
        time.sleep(WINDOW_S * 1.5)
        assert fleet.served("gpu") is False
    finally:
        client.close()


def test_a_queue_is_served_on_the_embedded_broker_while_its_file_is_young(
    settings: Settings,
) -> None:
    fleet = Fleet(settings.broker_url, WINDOW_S)
    folder = served_folder(settings.broker_url)
    assert folder is not None and folder.parent == settings.data_dir  # beside broker.sqlite3
    assert fleet.served("gpu") is False
    fleet.announce(["gpu"], worker="host-a")
    assert (folder / "gpu@host-a").is_file() and fleet.served("gpu") is True
    time.sleep(WINDOW_S * 1.5)
    assert fleet.served("gpu") is False


def test_two_workers_announcing_on_redis_count_two_until_their_keys_expire(
    redis_url: str,
) -> None:
    fleet = Fleet(redis_url, WINDOW_S)
    assert fleet.workers("gpu") == 0
    fleet.announce(["cpu", "gpu"], worker="host-a")
    fleet.announce(["gpu"], worker="host-b")
    fleet.announce(["gpu"], worker="host-b")  # announcing again is still one worker
    assert fleet.workers("gpu") == 2 and fleet.workers("cpu") == 1
    assert fleet.workers("gp") == 0  # a queue whose name starts another's counts apart
    time.sleep(WINDOW_S * 1.5)  # past the keys' TTL (the window)
    assert fleet.workers("gpu") == 0 and fleet.served("gpu") is False


def test_two_workers_announcing_on_the_embedded_broker_count_two_until_their_files_age(
    settings: Settings,
) -> None:
    fleet = Fleet(settings.broker_url, WINDOW_S)
    assert fleet.workers("gpu") == 0
    fleet.announce(["gpu"], worker="host-a")
    fleet.announce(["gpu"], worker="host-b")
    assert fleet.workers("gpu") == 2 and fleet.workers("cpu") == 0
    time.sleep(WINDOW_S * 1.5)
    assert fleet.workers("gpu") == 0 and fleet.served("gpu") is False


def test_a_worker_announcing_without_a_name_is_named_by_its_host_and_process(
    redis_url: str,
) -> None:
    fleet = Fleet(redis_url, WINDOW_S)
    fleet.announce(["gpu"])
    client = redis.Redis.from_url(redis_url)
    try:
        expected = f"{REDIS_KEY_PREFIX}gpu:{socket.gethostname()}.{os.getpid()}"
        assert client.exists(expected) == 1
    finally:
        client.close()


def test_the_health_answer_counts_the_workers_of_each_queue_and_stays_200_with_none(
    redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        broker_url=redis_url,
        requeue_interval_s=0,
        parse_processes=0,
        queue_served_window_s=WINDOW_S,
    )
    migrate.upgrade(settings.database_url)
    app = create_app(settings, InMemorySender(), keys_required=False)
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        nobody = http.get("/health")
        assert nobody.status_code == 200, nobody.text  # no worker is not the API's failure
        assert nobody.json()["workers"] == {"cpu": 0, "gpu": 0}
        fleet_for(settings).announce(["cpu"], worker="host-a")
        fleet_for(settings).announce(["cpu", "gpu"], worker="host-b")
        counted = http.get("/health")
        assert counted.status_code == 200
        assert counted.json()["workers"] == {"cpu": 2, "gpu": 1}


def test_the_health_answer_says_none_where_the_broker_cannot_tell(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        broker_url="amqp://127.0.0.1//",
        requeue_interval_s=0,
        parse_processes=0,
    )
    migrate.upgrade(settings.database_url)
    app = create_app(settings, InMemorySender(), keys_required=False)
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        answer = http.get("/health")
        assert answer.status_code == 200, answer.text
        assert answer.json()["workers"] == {"cpu": None, "gpu": None}


def test_a_broker_the_fleet_cannot_read_refuses_nothing() -> None:
    fleet = Fleet("amqp://127.0.0.1//", WINDOW_S)
    assert fleet.served("gpu") is None and fleet.workers("gpu") is None
    time.sleep(WINDOW_S)
    assert not fleet.unserved("gpu")


def test_a_cuda_job_is_accepted_within_the_first_window_then_refused_while_nobody_serves_gpu(
    session: Session, settings: Settings
) -> None:
    watched = settings.model_copy(update={"queue_served_window_s": WINDOW_S})
    body = JobIn.model_validate({"checks": [CPU_CHECK, GPU_CHECK]})
    # Just started: the API has not watched a whole window (a fleet may be starting with it).
    early = jobs.submit_job(session, body, watched)
    status = jobs.job_status(session, early.id, settings=watched)
    assert status.waiting == "waiting: no worker serves the cpu queue and the gpu queue"
    time.sleep(WINDOW_S)
    with pytest.raises(BusyError) as refused:
        jobs.submit_job(session, body, watched)
    assert "no worker serves the gpu queue" in str(refused.value)
    assert "checks 1 need a CUDA device" in str(refused.value)
    # A worker's announcement interval: a quarter of the window (fleet.ANNOUNCEMENTS_PER_WINDOW).
    assert refused.value.retry_after_s == max(1, round(WINDOW_S / 4 + 0.5))
    jobs.submit_job(session, JobIn.model_validate({"checks": [CPU_CHECK]}), watched)  # cpu only
    fleet_for(watched).announce(["cpu", "gpu"])  # a GPU worker starts
    assert jobs.job_status(session, early.id, settings=watched).waiting is None
    jobs.submit_job(session, body, watched)


def test_the_api_answers_503_with_retry_after_and_the_status_says_what_a_job_waits_for(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        requeue_interval_s=0,
        parse_processes=0,
        queue_served_window_s=WINDOW_S,
    )
    migrate.upgrade(settings.database_url)
    app = create_app(settings, InMemorySender(), keys_required=False)
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        accepted = http.post("/jobs", json={"checks": [GPU_CHECK]})
        assert accepted.status_code == 202  # the API has not watched a whole window yet
        time.sleep(WINDOW_S)
        fleet_for(settings).announce(["cpu"])  # a CPU worker, no GPU worker
        refused = http.post("/jobs", json={"checks": [CPU_CHECK, GPU_CHECK]})
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert "no worker serves the gpu queue" in refused.text
        job = http.get(accepted.headers["Location"]).json()
        assert job["status"] == "queued"
        assert job["waiting"] == "waiting: no worker serves the gpu queue"
