"""An API server in a thread, answering over real HTTP, on a per-test rolled-back session.

The broker is replaced by a recorder (the queue is not what these tests are about; the
end-to-end tests use real brokers).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session

from verifier.api import create_app
from verifier.api.deps import get_session
from verifier.config import Settings
from verifier.delivery.sender import InMemorySender

SERVER_START_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerThread:
    """A uvicorn server for ``app`` in a background thread."""

    def __init__(self, app: object):
        self.port = _free_port()
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


@pytest.fixture
def server_thread() -> type[ServerThread]:
    """The class that serves an app in a thread: ``with server_thread(app) as url: ...``."""
    return ServerThread


@pytest.fixture
def sender() -> InMemorySender:
    return InMemorySender()


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    # Keys off: these tests are about the routes; tests/api/test_access.py turns them on.
    return settings.model_copy(
        update={"max_checks_per_job": 5, "max_body_bytes": 4096, "api_keys": "off"}
    )


@pytest.fixture
def client(
    api_settings: Settings, session: Session, sender: InMemorySender
) -> Iterator[httpx.Client]:
    """An HTTP client of a live API whose database work is rolled back after the test."""
    app = create_app(api_settings, sender)
    app.dependency_overrides[get_session] = lambda: session
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http
