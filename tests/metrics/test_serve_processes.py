"""``derivcheck serve --processes 2`` as a process: every scrape, whichever process answers it,
has the requests of both processes, and the CPU and memory of each, labelled by its pid.

Before, each process kept its own counters and a scrape answered with those of the process it
reached, so a counter went up and down from one scrape to the next.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from slowness import SLOWNESS

from verifier.cli.processes import ChildProcess, free_port, service_command
from verifier.cli.server import API_METRICS_DIR_PREFIX
from verifier.store import migrate

PROCESSES = 2
REQUESTS = 20
"""Requests sent before scraping: on new connections, so both processes take some."""
SCRAPES = 6
START_TIMEOUT_S = 60.0 * SLOWNESS
METRICS_FOLDERS = f"{API_METRICS_DIR_PREFIX}*"
HEALTH = (("method", "GET"), ("route", "/health"), ("status", "200"))


def _wait_for_answers(url: str, child: ChildProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert child.running(), child.log_tail()
        try:
            httpx.get(f"{url}/metrics", timeout=5 * SLOWNESS)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"serve --processes {PROCESSES} did not answer within {START_TIMEOUT_S} s")


def _serve(tmp_path: Path) -> tuple[str, ChildProcess]:
    database_url = f"sqlite:///{tmp_path / 'derivcheck.sqlite3'}"
    migrate.upgrade(database_url)
    port = free_port()
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("VERIFIER_")},
        "TMPDIR": str(tmp_path),  # where serve makes its metrics folder
        "VERIFIER_DATA_DIR": str(tmp_path / "data"),
        "VERIFIER_DATABASE_URL": database_url,
        "VERIFIER_REQUEUE_INTERVAL_S": "0",
        "VERIFIER_METRICS_CACHE_S": "0",
        "PYTHONUNBUFFERED": "1",
    }
    child = ChildProcess(
        "API",
        service_command("serve", "--port", str(port), "--processes", str(PROCESSES)),
        env=env,
        log_path=tmp_path / "api.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_answers(url, child)
    except BaseException:
        child.stop()
        raise
    return url, child


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(f"{url}/metrics", timeout=30 * SLOWNESS).text
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_every_scrape_of_several_processes_counts_the_requests_of_all(tmp_path: Path) -> None:
    url, child = _serve(tmp_path)
    try:
        for _ in range(REQUESTS):
            httpx.get(f"{url}/health", timeout=30 * SLOWNESS)  # a new connection each time
        counts = []
        for _ in range(SCRAPES):
            scraped = _scrape(url)
            health = [
                value
                for labels, value in scraped["derivcheck_http_requests_total"]
                if tuple(sorted(labels.items())) == HEALTH
            ]
            counts.append(sum(health))
            pids = {labels["pid"] for labels, _ in scraped["process_resident_memory_bytes"]}
            assert len(pids) == PROCESSES, scraped["process_resident_memory_bytes"]
            assert [value for _, value in scraped["derivcheck_api_processes"]] == [PROCESSES]
        assert list(tmp_path.glob(METRICS_FOLDERS))
    finally:
        stopped = child.stop()
    # The same count from whichever process a scrape reaches.
    assert counts == [REQUESTS] * SCRAPES
    assert stopped == 0, child.log_path.read_text()
    # serve made the folder in the temporary folder and removed it when it stopped.
    assert not list(tmp_path.glob(METRICS_FOLDERS))
