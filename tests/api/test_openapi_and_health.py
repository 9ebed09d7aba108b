"""The application as a whole: OpenAPI, docs, health, and no torch in the API process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from slowness import SLOWNESS

from verifier.api import create_app
from verifier.cli.processes import free_port
from verifier.config import Settings


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
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


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
