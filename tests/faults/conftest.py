"""Fixtures of the fault tests: a private Redis server the test may stop and start, real
worker processes (tests/faults/fault_worker.py), and a migrated PostgreSQL database.

Delivery times are short so that a redelivery takes seconds (docs/delivery.md explains
the ordering): a check may run 3 s, a stopping worker waits 4 s for it, Redis gives back an
unacknowledged message after 5 s, and a claim lapses 2 s after its last renewal. Each of them,
and each wait of the fault tests, is multiplied by the slowness factor (tests/slowness.py), the
order kept: a slow machine stretches the windows, it does not reorder them.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from slowness import SLOWNESS
from sqlalchemy.engine import make_url

from verifier.cli.processes import ChildProcess, free_port
from verifier.config import Settings
from verifier.store import migrate

FAULT_WORKER = Path(__file__).with_name("fault_worker.py")
ROOT = FAULT_WORKER.parent.parent.parent
REDIS_START_TIMEOUT_S = 10.0 * SLOWNESS
WORKER_READY_TIMEOUT_S = 60.0 * SLOWNESS
SLOW_CHECK_S = 2.0 * SLOWNESS
"""How long a ``slow`` check of the fault worker sleeps (``FAULT_SLOW_S``): within the time
limit of ``fault_settings``."""


class PrivateRedis:
    """A redis-server on a free loopback port, without persistence, that tests stop and start."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        try:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.folder),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except FileNotFoundError as error:
            if os.environ.get("CI") == "true":
                pytest.fail(f"redis-server is not installed ({error}); CI=true requires it")
            pytest.skip(f"redis-server is not installed ({error})")
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the private redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10 * SLOWNESS)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1 * SLOWNESS)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_settings(tmp_path: Path, postgres_url: str, private_redis: PrivateRedis) -> Settings:
    migrate.upgrade(postgres_url)
    return Settings(
        data_dir=tmp_path / "data",
        database_url=postgres_url,
        broker_url=private_redis.url,
        requeue_interval_s=0,
        max_attempts=2,
        symbolic_timeout_s=1 * SLOWNESS,
        check_time_limit_s=3 * SLOWNESS,
        worker_soft_shutdown_s=4 * SLOWNESS,
        broker_visibility_timeout_s=math.ceil(5 * SLOWNESS),
        claim_lease_s=2 * SLOWNESS,
    )


StartWorker = Callable[..., ChildProcess]


@pytest.fixture
def start_worker(tmp_path: Path, fault_settings: Settings) -> Iterator[StartWorker]:
    """``start_worker(name, wait=True, database_url=None, slow_s=None, extra_env=None)``: a fault
    worker process on ``fault_settings`` (ready, unless ``wait`` is false), stopped at the
    end; ``extra_env`` adds to or overrides its environment."""
    started: list[ChildProcess] = []
    env = {
        **os.environ,
        "VERIFIER_DATA_DIR": str(fault_settings.data_dir),
        "VERIFIER_DATABASE_URL": fault_settings.database_url,
        "VERIFIER_BROKER_URL": fault_settings.broker_url,
        "VERIFIER_MAX_ATTEMPTS": str(fault_settings.max_attempts),
        "VERIFIER_CHECK_TIME_LIMIT_S": str(fault_settings.check_time_limit_s),
        "VERIFIER_SYMBOLIC_TIMEOUT_S": str(fault_settings.symbolic_timeout_s),
        "VERIFIER_WORKER_SOFT_SHUTDOWN_S": str(fault_settings.worker_soft_shutdown_s),
        "VERIFIER_BROKER_VISIBILITY_TIMEOUT_S": str(fault_settings.broker_visibility_timeout_s),
        "VERIFIER_CLAIM_LEASE_S": str(fault_settings.claim_lease_s),
        # A line per delivery and per check (Celery's "Task ... received" among them): the
        # tests read who received what.
        "VERIFIER_WORKER_CHECK_LOG_LEVEL": "info",
        "FAULT_SLOW_S": str(SLOW_CHECK_S),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }

    def start(
        name: str,
        *,
        wait: bool = True,
        database_url: str | None = None,
        slow_s: float | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> ChildProcess:
        log = tmp_path / "logs" / f"{name}.log"
        child_env = {**env, "VERIFIER_DATABASE_URL": database_url or env["VERIFIER_DATABASE_URL"]}
        if slow_s is not None:
            child_env["FAULT_SLOW_S"] = str(slow_s)
        child_env.update(extra_env or {})
        command = [sys.executable, str(FAULT_WORKER)]
        child = ChildProcess(name, command, env=child_env, log_path=log)
        started.append(child)
        if not wait:
            return child
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while "ready." not in log.read_text(errors="replace"):
            assert child.running(), f"{name} exited: {child.log_tail()}"
            assert time.monotonic() < deadline, f"{name} not ready: {child.log_tail()}"
            time.sleep(0.1)
        return child

    try:
        yield start
    finally:
        for child in started:
            child.stop(timeout_s=10 * SLOWNESS)


class CuttableProxy:
    """A TCP proxy on loopback to an upstream port that a test can cut (every connection
    dropped, new ones refused) and resume: a database that is briefly unreachable."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def resume(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown() wakes the accept() blocked in another thread; close() alone
                # would leave the socket listening until that accept() returns.
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(
                    ("127.0.0.1", self.upstream_port), timeout=5 * SLOWNESS
                )
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def database_proxy(fault_settings: Settings) -> Iterator[tuple[CuttableProxy, str]]:
    """A cuttable proxy to the test's PostgreSQL, and the database URL through it."""
    url = make_url(fault_settings.database_url)
    proxy = CuttableProxy(url.port or 5432)
    proxy.resume()
    try:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)
    finally:
        proxy.cut()
