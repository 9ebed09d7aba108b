"""Faults of the embedded defaults (SQLite database, kombu's SQLite broker), injected into the
real processes: ``derivcheck serve`` and ``derivcheck worker`` as children, real HTTP.

- A locked broker file: a submission answers within the publish timeout, the job is stored,
  and the reconciler publishes its check once the lock is gone (docs/hostile-load.md: a locked
  broker file once made a submission wait 44-90 s with a publish timeout of 1 s).
- An API killed between its commit and its answer: the client's retry with the same
  ``Idempotency-Key`` gets the stored job, not a second one.
- Broker errors in the worker (its writes failing, as on a full disk): the worker reconnects
  and runs the check once it can write again (docs/hostile-load.md: it once exited for good
  about 35 s later).
- A worker that dies is started again by ``derivcheck worker``'s supervisor, and runs checks.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from slowness import SLOWNESS
from sqlalchemy import select

from verifier.cli.processes import (
    ChildProcess,
    Supervisor,
    free_port,
    service_command,
    wait_until_healthy,
)
from verifier.config import BROKER_FILE_NAME, Settings
from verifier.store import migrate
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import Check, Job

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT_S = 60.0 * SLOWNESS
PUBLISH_TIMEOUT_S = Settings.model_fields["publish_timeout_s"].default
ANSWER_BOUND_S = PUBLISH_TIMEOUT_S + 1.0 * SLOWNESS
"""The publish timeout (1 s, Settings' default: the guarantee, not scaled) plus the rest of a
submission with slack (this machine's work: scaled)."""
RECONCILE_TIMEOUT_S = 20.0 * SLOWNESS
JOB_TIMEOUT_S = 120.0 * SLOWNESS
WORKER_READY_TIMEOUT_S = 60.0 * SLOWNESS
COMMIT_TIMEOUT_S = 8.0 * SLOWNESS
RECONNECTS_TIMEOUT_S = 30.0 * SLOWNESS
RESTART_SEEN_TIMEOUT_S = 10.0 * SLOWNESS
RECONNECTS_PAST_THE_POOL = 50
"""Reconnects the worker must get through: with a pooled broker engine (SQLAlchemy's default
pool, 5 + 10 overflow, each reconnect keeping its connections) it stalled after about 35,
waiting for a free connection, and the pool's TimeoutError ended it 30 s later (measured on
the development machine, as the full disk in docs/hostile-load.md did); unpooled, it
reconnects about six times a second."""
CHECK = {"expression": "x**2 + 2*x", "points": [{"x": 2}]}
RESTART_LINE = re.compile(r"exited unexpectedly with (?P<how>.+) after .* in (?P<wait>[\d.]+) s")


def _env(data: Path, **overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "VERIFIER_DATA_DIR": str(data),
        "VERIFIER_REQUEUE_INTERVAL_S": "0",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("VERIFIER_DATABASE_URL", "VERIFIER_BROKER_URL"):
        env.pop(name, None)
    return {**env, **overrides}


@contextmanager
def _api(tmp_path: Path, name: str, **overrides: str) -> Iterator[tuple[str, ChildProcess]]:
    data = tmp_path / "data"
    migrate.upgrade(Settings(data_dir=data).database_url)
    port = free_port()
    api = ChildProcess(
        name,
        service_command("serve", "--port", str(port), "--log-level", "warning"),
        env=_env(data, **overrides),
        log_path=tmp_path / "logs" / f"{name}.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, [api], STARTUP_TIMEOUT_S)
        yield url, api
    except BaseException:
        print(f"--- {name} log ---\n{api.log_tail()}")
        raise
    finally:
        api.stop()


@contextmanager
def _locked(broker_file: Path) -> Iterator[None]:
    """Hold the broker file's exclusive lock (no other connection reads or writes it)."""
    connection = sqlite3.connect(broker_file, isolation_level=None, timeout=10 * SLOWNESS)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def _database(tmp_path: Path) -> Any:
    engine = make_engine(Settings(data_dir=tmp_path / "data").database_url)
    return engine, make_session_factory(engine)


def _messages(broker_file: Path) -> int:
    connection = sqlite3.connect(broker_file, timeout=10 * SLOWNESS)
    try:
        (count,) = connection.execute("SELECT count(*) FROM kombu_message").fetchone()
        return int(count)
    finally:
        connection.close()


def test_a_locked_broker_file_delays_the_checks_not_the_answer(tmp_path: Path) -> None:
    broker_file = tmp_path / "data" / BROKER_FILE_NAME
    with _api(tmp_path, "api", VERIFIER_REQUEUE_INTERVAL_S="1") as (url, _):
        with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
            assert http.post("/jobs", json={"checks": [CHECK]}).status_code == 202
            # The broker file exists, with its tables. The reconciler (every second) may publish
            # the check again before the submission marks it sent: a check sent twice runs once.
            assert _messages(broker_file) >= 1
            with _locked(broker_file):
                started = time.monotonic()
                accepted = http.post("/jobs", json={"checks": [CHECK]})
                answered_s = time.monotonic() - started
                assert accepted.status_code == 202, accepted.text
                assert answered_s < ANSWER_BOUND_S, f"answered after {answered_s:.1f} s"
                job_id = uuid.UUID(accepted.json()["id"])
                assert http.get(f"/jobs/{job_id}").json()["status"] == "queued"
                time.sleep(ANSWER_BOUND_S)  # the reconciler's passes meet the lock too
        engine, sessions = _database(tmp_path)
        try:
            deadline = time.monotonic() + RECONCILE_TIMEOUT_S
            while True:
                with sessions() as session:
                    check = session.scalars(select(Check).where(Check.job_id == job_id)).one()
                if check.enqueued_at is not None:
                    break
                assert time.monotonic() < deadline, "the reconciler never published the check"
                time.sleep(0.25)
        finally:
            engine.dispose()
    # The reconciler's message, and perhaps a late one of the publish that gave up: a check
    # sent twice runs once (docs/delivery.md, point 2).
    assert _messages(broker_file) >= 2


def test_a_retry_after_the_api_died_mid_submission_gets_the_stored_job(tmp_path: Path) -> None:
    broker_file = tmp_path / "data" / BROKER_FILE_NAME
    key = str(uuid.uuid4())
    body = {"checks": [CHECK], "label": "retried"}
    # The longest publish timeout Settings allows: the API waits on the locked broker after
    # its commit, long enough to be killed there.
    with _api(tmp_path, "first-api", VERIFIER_PUBLISH_TIMEOUT_S="10") as (url, api):
        with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
            assert http.post("/jobs", json={"checks": [CHECK]}).status_code == 202
        engine, sessions = _database(tmp_path)
        try:
            with _locked(broker_file):
                lost: list[BaseException] = []

                def submit() -> None:
                    try:
                        with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
                            http.post("/jobs", json=body, headers={"Idempotency-Key": key})
                    except httpx.HTTPError as error:
                        lost.append(error)

                client = threading.Thread(target=submit)
                client.start()
                deadline = time.monotonic() + COMMIT_TIMEOUT_S
                while True:
                    with sessions() as session:
                        stored = session.scalars(select(Job).where(Job.label == "retried")).all()
                    if stored:
                        break
                    assert time.monotonic() < deadline, "the API never committed the job"
                    time.sleep(0.05)
                api.process.kill()  # after the commit, before the answer
                client.join(timeout=30 * SLOWNESS)
            assert lost, "the client got an answer although the API was killed first"
        finally:
            engine.dispose()
    with _api(tmp_path, "second-api") as (url, _):
        with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
            retried = http.post("/jobs", json=body, headers={"Idempotency-Key": key})
    assert retried.status_code == 200, retried.text  # a retry (verifier/api/routes/jobs.py)
    assert retried.json()["id"] == str(stored[0].id)
    engine, sessions = _database(tmp_path)
    try:
        with sessions() as session:
            assert len(session.scalars(select(Job).where(Job.label == "retried")).all()) == 1
            check = session.scalars(select(Check).where(Check.job_id == stored[0].id)).one()
            assert check.enqueued_at is not None  # the retry sent what the first left unsent
    finally:
        engine.dispose()


class _Output:
    """A child's output read through a pipe (file size limits do not apply to a pipe)."""

    def __init__(self, process: subprocess.Popen[str]):
        self.lines: list[str] = []
        self._process = process
        assert process.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)

    def close(self) -> None:
        """Read to the end (the child has exited) and close the pipe."""
        self._thread.join(timeout=10 * SLOWNESS)
        assert self._process.stdout is not None
        self._process.stdout.close()

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def wait_for(self, text: str, times: int, timeout_s: float, process: Any) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count(text) < times:
            assert process.poll() is None, f"the worker exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"{text!r} {times} times: no\n{self.tail()}"
            time.sleep(0.1)

    def tail(self) -> str:
        return "".join(self.lines[-40:])


def _submit(url: str) -> str:
    """Submit one check through the API, which stores and publishes it."""
    with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        accepted = http.post("/jobs", json={"checks": [CHECK]})
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["id"])


def _wait_for_job(url: str, job_id: str, process: Any, output: Any) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        while True:
            job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
            if job["status"] in ("done", "error"):
                return job
            assert process.poll() is None, f"the worker exited:\n{output.tail()}"
            assert time.monotonic() < deadline, f"job not finished:\n{output.tail()}"
            time.sleep(0.25)


@contextmanager
def _worker(settings: Settings, *arguments: str) -> Iterator[tuple[subprocess.Popen[str], Any]]:
    process = subprocess.Popen(
        service_command("worker", "--queues", settings.cpu_queue, *arguments),
        env=_env(settings.data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    output = _Output(process)
    try:
        yield process, output
    except BaseException:
        print(f"--- worker output ---\n{output.tail()}")
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30 * SLOWNESS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10 * SLOWNESS)
        output.close()


def test_a_worker_whose_broker_writes_fail_reconnects_and_runs_the_check_later(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data", requeue_interval_s=0)
    with _api(tmp_path, "api") as (url, _), _worker(settings, "--no-supervise") as worker:
        process, output = worker
        output.wait_for("ready.", 1, WORKER_READY_TIMEOUT_S, process)
        # As on a full disk: every write of the worker fails (its output is a pipe, no file).
        _, hard = resource.prlimit(process.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (1, hard))
        job_id = _submit(url)  # the API may write; the worker's claim of the message may not
        output.wait_for(
            "Connection to broker lost", RECONNECTS_PAST_THE_POOL, RECONNECTS_TIMEOUT_S, process
        )
        resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (hard, hard))  # room again
        job = _wait_for_job(url, job_id, process, output)
    assert job["verdict"] == "pass"  # f'(2) = 2*2 + 2 = 6, exact in float64 (by hand)


def test_derivcheck_worker_starts_its_worker_again_after_it_was_killed(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", requeue_interval_s=0)
    with _api(tmp_path, "api") as (url, _), _worker(settings) as (process, output):
        output.wait_for("ready.", 1, WORKER_READY_TIMEOUT_S, process)
        (started,) = [line for line in output.lines if "started the worker (process" in line]
        child = int(started.rsplit("process ", 1)[1].split(")")[0])
        os.kill(child, signal.SIGKILL)
        output.wait_for(
            "exited unexpectedly with signal SIGKILL", 1, RESTART_SEEN_TIMEOUT_S, process
        )
        output.wait_for("ready.", 2, WORKER_READY_TIMEOUT_S, process)
        job = _wait_for_job(url, _submit(url), process, output)
        assert job["verdict"] == "pass"  # f'(2) = 6 (by hand)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30 * SLOWNESS) == 0  # a warm stop of the worker, passed on
    assert "stopped with status 0" in output.tail()


def test_the_supervisor_backs_off_doubling_and_stops_on_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A child that exits at once with status 3, over and over; stopped after 1 s (scaled: four
    # restarts must fit, each a Python start besides its wait).
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    supervisor = Supervisor(
        "child", command, backoff_start_s=0.05, backoff_max_s=0.2, stable_after_s=60.0
    )
    timer = threading.Timer(1.0 * SLOWNESS, supervisor.stop)
    timer.start()
    with caplog.at_level("INFO", logger="verifier.cli.processes"):
        status = supervisor.run()
    timer.cancel()
    # The stop lands between two runs (the last run's status, 3) or while a child runs, which
    # it stops with SIGTERM (128 + 15).
    assert status in (3, 128 + signal.SIGTERM)
    restarts = [
        RESTART_LINE.search(record.getMessage())
        for record in caplog.records
        if "restarting it" in record.getMessage()
    ]
    assert all(restart is not None for restart in restarts)
    waits = [float(restart["wait"]) for restart in restarts if restart is not None]
    # 0.05, 0.1, 0.2, then capped at 0.2 (the doubling of Supervisor's docstring).
    assert waits[:4] == [0.05, 0.1, 0.2, 0.2]
    assert {restart["how"] for restart in restarts if restart is not None} == {"status 3"}
    assert supervisor.restarts == len(waits)
