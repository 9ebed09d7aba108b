"""Servers the tests start: the API in a thread of the test process, and the real service
(``serve`` and a ``worker``) as processes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from slowness import SLOWNESS

from verifier.cli.processes import ChildProcess, free_port, service_command, wait_until_healthy
from verifier.store import migrate

SERVER_START_TIMEOUT_S = 10.0 * SLOWNESS
STARTUP_TIMEOUT_S = 90.0 * SLOWNESS


class ServerThread:
    """A uvicorn server for ``app`` in a background thread."""

    def __init__(self, app: object):
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test API server did not start")
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=SERVER_START_TIMEOUT_S)


@contextmanager
def running_service(
    tmp_path: Path,
    env_overrides: dict[str, str],
    queues: str = "cpu",
    api_log_level: str = "warning",
) -> Iterator[str]:
    """Migrate, start the API server and one worker on ``queues``; yield the API's URL; stop
    both. Logs are in ``tmp_path / "logs"``."""
    port = free_port()
    env = {
        **os.environ,
        "VERIFIER_DATA_DIR": str(tmp_path / "data"),
        "VERIFIER_REQUEUE_INTERVAL_S": "0",
        "PYTHONUNBUFFERED": "1",
        **env_overrides,
    }
    for name in ("VERIFIER_DATABASE_URL", "VERIFIER_BROKER_URL"):
        if name not in env_overrides:
            env.pop(name, None)
    database_url = env_overrides.get(
        "VERIFIER_DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'derivcheck.sqlite3'}"
    )
    migrate.upgrade(database_url)
    logs = tmp_path / "logs"
    children = [
        ChildProcess(
            "API",
            service_command("serve", "--port", str(port), "--log-level", api_log_level),
            env=env,
            log_path=logs / "api.log",
        ),
        ChildProcess(
            "worker",
            service_command("worker", "--queues", queues, "--concurrency", "1"),
            env=env,
            log_path=logs / "worker.log",
        ),
    ]
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, children, STARTUP_TIMEOUT_S)
        yield url
    except BaseException:
        for child in children:
            print(f"--- {child.name} log ---\n{child.log_tail()}")
        raise
    finally:
        for child in reversed(children):
            child.stop()
