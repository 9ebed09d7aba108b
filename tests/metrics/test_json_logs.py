"""``derivcheck serve`` with ``VERIFIER_LOG_FORMAT=json`` as a process: every line it writes,
from the first, is one JSON object, with no terminal colour codes in it.

Before, uvicorn configured its loggers as text when it started and the application switched
them to JSON only in its lifespan, so the first lines ("Started server process", "Waiting for
application startup", the keys notice) were text, and uvicorn's ``color_message`` field
carried ANSI escapes into the JSON lines.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from slowness import SLOWNESS

from verifier.cli.processes import ChildProcess, free_port, service_command
from verifier.store import migrate

START_TIMEOUT_S = 60.0 * SLOWNESS
ESCAPE = "\x1b"
"""The first character of every ANSI colour code."""
READY = "Application startup complete."
"""uvicorn's line once the application has started (uvicorn/lifespan/on.py)."""


@pytest.mark.parametrize("processes", [1, 2])
def test_serve_writes_json_from_its_first_line(tmp_path: Path, processes: int) -> None:
    database_url = f"sqlite:///{tmp_path / 'derivcheck.sqlite3'}"
    migrate.upgrade(database_url)
    port = free_port()
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("VERIFIER_")},
        "VERIFIER_DATA_DIR": str(tmp_path / "data"),
        "VERIFIER_DATABASE_URL": database_url,
        "VERIFIER_REQUEUE_INTERVAL_S": "0",
        "VERIFIER_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
        # A terminal's settings, under which uvicorn would colour its text.
        "FORCE_COLOR": "1",
        "TERM": "xterm-256color",
    }
    child = ChildProcess(
        "API",
        service_command(
            "serve", "--port", str(port), "--processes", str(processes), "--log-level", "info"
        ),
        env=env,
        log_path=tmp_path / "api.log",
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while READY not in child.log_path.read_text() and time.monotonic() < deadline:
            assert child.running(), child.log_tail()
            time.sleep(0.2)
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=30 * SLOWNESS)
    finally:
        child.stop()
    text = child.log_path.read_text()
    assert READY in text
    lines = text.splitlines()
    assert ESCAPE not in text
    parsed = []
    for number, line in enumerate(lines, start=1):
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"line {number} of serve's output is not JSON: {line!r}")
    assert all({"time", "level", "logger", "message", "event"} <= set(line) for line in parsed)
    assert not any("color_message" in line for line in parsed)
    # The access line of the request is a JSON line too.
    assert any(line["logger"] == "uvicorn.access" for line in parsed)
