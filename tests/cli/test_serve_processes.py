"""``derivcheck serve --processes N`` serves one port from N API processes, each built from the
environment with the keys decision the command made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from slowness import SLOWNESS

from verifier.cli.processes import ChildProcess, free_port, service_command, wait_until_healthy

STARTUP_TIMEOUT_S = 90.0 * SLOWNESS


def test_two_api_processes_answer_on_one_port(tmp_path: Path) -> None:
    env = {**os.environ, "VERIFIER_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    for name in ("VERIFIER_DATABASE_URL", "VERIFIER_BROKER_URL", "VERIFIER_API_KEYS"):
        env.pop(name, None)
    upgrade = [sys.executable, "-m", "verifier", "db", "upgrade"]
    assert (
        subprocess.run(upgrade, env=env, capture_output=True, timeout=120 * SLOWNESS).returncode
        == 0
    )
    port = free_port()
    api = ChildProcess(
        "API",
        service_command("serve", "--port", str(port), "--processes", "2"),
        env=env,
        log_path=tmp_path / "api.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, [api], STARTUP_TIMEOUT_S)
        with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
            body = {"checks": [{"expression": "x**2", "points": [{"x": 3}]}]}
            accepted = [http.post("/jobs", json=body) for _ in range(6)]
            assert [answer.status_code for answer in accepted] == [202] * 6
            for answer in accepted:  # every process reads what any process stored
                assert http.get(f"/jobs/{answer.json()['id']}").status_code == 200
    finally:
        api.stop(timeout_s=20 * SLOWNESS)
    log = (tmp_path / "api.log").read_text()
    assert log.count("Started server process") == 2, log[-2000:]
