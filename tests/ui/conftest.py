"""A live API with real reports, and a headless Chromium to look at its pages.

The site is made once per module: a migrated database, two API keys (alice and bob), jobs
submitted over HTTP, and every check run by the real core through the worker's execution
code (the in-memory sender stands in for the broker, which is not what these tests are
about). The browser is Debian's ``chromium``: missing, the tests skip here and fail in CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chromium_driver import Chromium, find_chromium
from servers import ServerThread
from slowness import SLOWNESS
from ui_site import (
    BOB_CHECK,
    FLOAT32_CHECK,
    HOSTILE_LABEL,
    SEED_CHECK,
    SINE_CHECK,
    SQUARE_CHECK,
    Site,
)

from verifier.api import create_app
from verifier.config import Settings
from verifier.delivery.execution import execute_check
from verifier.delivery.sender import InMemorySender
from verifier.store import keys, migrate
from verifier.store.engine import make_engine, make_session_factory
from workers.tasks import core_check

IN_CI = os.environ.get("CI") == "true"


def _submit(http: httpx.Client, key: str, body: dict[str, Any]) -> str:
    answer = http.post("/jobs", json=body, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A live API (keys required) with finished jobs of alice and bob."""
    folder = tmp_path_factory.mktemp("ui")
    url = f"sqlite:///{folder / 'ui.sqlite3'}"
    migrate.upgrade(url)
    settings = Settings(
        data_dir=folder / "data",
        database_url=url,
        requeue_interval_s=0,
        api_keys="required",
        parse_processes=0,
        rate_limit_per_minute=6000,
        rate_limit_burst=1000,
    )
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        _, alice = keys.create_key(session, "alice")
        _, bob = keys.create_key(session, "bob")
        session.commit()
    sender = InMemorySender()
    app = create_app(settings, sender)
    try:
        with ServerThread(app) as base, httpx.Client(base_url=base, timeout=60 * SLOWNESS) as http:
            found = Site(url=base, alice=alice, bob=bob)
            found.jobs["float32"] = _submit(
                http, alice, {"label": HOSTILE_LABEL, "checks": [FLOAT32_CHECK, SEED_CHECK]}
            )
            found.jobs["sine"] = _submit(
                http, alice, {"label": "sine sweep", "checks": [SINE_CHECK, SQUARE_CHECK]}
            )
            found.jobs["bob"] = _submit(http, bob, {"label": "bob's job", "checks": [BOB_CHECK]})
            for check_id in sender.check_ids:
                assert execute_check(sessions, check_id, core_check) is not None
            yield found
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """A headless Chromium with one page."""
    executable = find_chromium()
    if executable is None:
        message = "chromium is not installed (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(message)
    chromium = Chromium(executable, tmp_path_factory.mktemp("profile"))
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/screenshots with DERIVCHECK_SCREENSHOTS=1 (to refresh the
    README's), else this test's folder."""
    if os.environ.get("DERIVCHECK_SCREENSHOTS") == "1":
        return Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    return tmp_path
