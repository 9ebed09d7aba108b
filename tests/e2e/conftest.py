"""Starting the real service for end-to-end tests: migrations, ``serve`` and ``worker``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from verifier.cli.processes import ChildProcess, free_port, service_command, wait_until_healthy
from verifier.store import migrate

STARTUP_TIMEOUT_S = 90.0


@contextmanager
def running_service(
    tmp_path: Path, env_overrides: dict[str, str], queues: str = "cpu"
) -> Iterator[str]:
    """Migrate, start the API server and one worker on ``queues``; yield the API's URL; stop
    both."""
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
            service_command("serve", "--port", str(port), "--log-level", "warning"),
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


@pytest.fixture
def start_service() -> Callable[[Path, dict[str, str]], AbstractContextManager[str]]:
    """``with start_service(tmp_path, env) as url``: a running API and worker."""
    return running_service
