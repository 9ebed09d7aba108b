"""An API server in a thread, answering over real HTTP, on a per-test rolled-back session.

The broker is replaced by a recorder (the queue is not what these tests are about; the
end-to-end tests use real brokers).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from servers import ServerThread
from slowness import SLOWNESS
from sqlalchemy.orm import Session

from verifier.api import create_app
from verifier.api.deps import get_session
from verifier.config import Settings
from verifier.delivery.sender import InMemorySender


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
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        yield http
