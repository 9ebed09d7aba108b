"""The application as a whole: OpenAPI, docs (every asset served by the API), health (a read
and a rolled-back write of the database, within a timeout), and no torch in the API process."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from slowness import SLOWNESS
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from verifier.api import create_app
from verifier.cli.processes import free_port
from verifier.config import Settings
from verifier.delivery.sender import InMemorySender
from verifier.store import migrate


def test_openapi_and_docs_are_served(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/report", "/reports", "/stats"} <= set(
        schema["paths"]
    )
    assert "/health" in schema["paths"]
    assert client.get("/docs").status_code == 200


def test_health_is_ok_when_database_and_broker_answer(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    # No worker announced a queue on this test's embedded broker (verifier/delivery/fleet.py):
    # 0 each, and still 200.
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "workers": {"cpu": 0, "gpu": 0},
    }


def test_docs_page_loads_every_asset_from_the_api_itself(client: httpx.Client) -> None:
    # A browser offline, or a site that forbids other hosts' scripts, once saw a blank page:
    # FastAPI's page loads Swagger UI from a CDN.
    page = client.get("/docs")
    assert page.status_code == 200
    references = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", page.text)
    assert references, page.text
    assert not [ref for ref in references if re.match(r"(https?:)?//", ref)], references
    assets = [ref for ref in references if ref != "/openapi.json"]
    assert any(ref.endswith(".js") for ref in assets) and any(
        ref.endswith(".css") for ref in assets
    )
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert "SwaggerUIBundle" in client.get(next(a for a in assets if a.endswith(".js"))).text
    assert client.get("/openapi.json").status_code == 200


def test_health_is_503_naming_a_database_that_refuses_writes(
    settings: Settings, postgres_url: str, postgres_admin_url: str, server_thread: Any
) -> None:
    # A database that answers reads but refuses writes once passed for healthy.
    migrate.upgrade(postgres_url)
    on_postgres = settings.model_copy(update={"database_url": postgres_url, "api_keys": "off"})
    with (
        server_thread(create_app(on_postgres, InMemorySender())) as url,
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        assert http.get("/health").json()["database"] == "ok"
    name = make_url(postgres_url).database
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(
                text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            )
    finally:
        admin.dispose()
    with (
        server_thread(create_app(on_postgres, InMemorySender())) as url,
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        started = time.monotonic()
        response = http.get("/health")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["broker"] == "ok"
    assert body["database"].startswith("not writable: ")
    assert "read-only transaction" in body["database"]  # PostgreSQL's own words
    assert elapsed < on_postgres.health_timeout_s + 1.0 * SLOWNESS


def test_health_answers_within_its_timeout_while_the_database_is_locked(
    settings: Settings, fresh_sqlite_url: str, server_thread: Any
) -> None:
    # A writer holding SQLite's lock kept /health waiting for the busy timeout (30 s).
    timeout_s = 0.5
    bounded = settings.model_copy(
        update={"database_url": fresh_sqlite_url, "api_keys": "off", "health_timeout_s": timeout_s}
    )
    holder = sqlite3.connect(make_url(fresh_sqlite_url).database or "", isolation_level=None)
    try:
        with (
            server_thread(create_app(bounded, InMemorySender())) as url,
            httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
        ):
            assert http.get("/health").status_code == 200
            holder.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            response = http.get("/health")
            elapsed = time.monotonic() - started
            holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert response.status_code == 503
    assert response.json()["database"] == f"no answer within {timeout_s:g} s"
    assert elapsed < timeout_s + 1.0 * SLOWNESS


def test_health_is_503_naming_an_unreachable_broker(settings: Settings, server_thread: Any) -> None:
    # Nothing listens on port 1; the real broker client must say so.
    down = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with (
        server_thread(create_app(down)) as url,
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        response = http.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "ok"
    assert body["broker"].startswith("unreachable")


NO_TORCH_SCRIPT = """
import sys
import threading
import time

import httpx
import uvicorn

from verifier.store import migrate
from verifier.api import create_app
from verifier.config import Settings

settings = Settings(data_dir=sys.argv[1], requeue_interval_s=0, api_keys="off")
migrate.upgrade(settings.database_url)
config = uvicorn.Config(create_app(settings), port=int(sys.argv[2]), log_level="warning")
server = uvicorn.Server(config)
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
while not server.started:
    time.sleep(0.01)
check = {"expression": "sinc(x)**2", "points": [{"x": 1}]}
with httpx.Client(base_url=f"http://127.0.0.1:{sys.argv[2]}", timeout=float(sys.argv[3])) as http:
    job = http.post("/jobs", json={"checks": [check]})
    assert job.status_code == 202, job.text
    assert http.post("/jobs", json={"checks": [{"expression": "x +"}]}).status_code == 422
    assert http.get(job.headers["location"] + "/report").status_code == 200
    assert http.get("/reports", params={"function": "sinc"}).status_code == 200
    assert http.get("/stats", params={"group_by": "dtype"}).status_code == 200
    assert http.get("/health").status_code == 200
server.should_exit = True
thread.join()
assert "torch" not in sys.modules, "the API imported torch"
"""


def test_the_api_process_never_imports_torch(tmp_path: Path) -> None:
    # A fresh interpreter: the rest of this test session may well have imported torch.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_TORCH_SCRIPT,
            str(tmp_path),
            str(free_port()),
            str(30 * SLOWNESS),
        ],
        capture_output=True,
        text=True,
        timeout=120 * SLOWNESS,
    )
    assert result.returncode == 0, result.stderr[-2000:]
