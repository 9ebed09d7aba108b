"""``GET /metrics`` of one API process over real HTTP: requests by method, route template and
status, the process's CPU and memory, the versions it runs, and no ``_created`` series.

Before, a scrape held the database's counts and two counters of the process only: no request
counts, no ``process_*`` series, no versions, and the reconciler's counter came with a
``derivcheck_reconciler_republished_checks_created`` gauge.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import uuid
from importlib.metadata import version

import httpx
from prometheus_client.parser import text_string_to_metric_families
from servers import ServerThread
from slowness import SLOWNESS

from verifier.api import create_app
from verifier.api.instrumentation import UNMATCHED_ROUTE
from verifier.config import Settings
from verifier.delivery.sender import InMemorySender

Labels = tuple[tuple[str, str], ...]


def _samples(text: str) -> dict[tuple[str, Labels], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape_after(settings: Settings, requests: list[tuple[str, str]]) -> str:
    """Send ``requests`` (method, path) to a fresh API with keys off, then scrape it."""
    app = create_app(settings, InMemorySender(), keys_required=False)
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        for method, path in requests:
            http.request(method, path)
        return http.get("/metrics").text


def _requests_of(samples: dict[tuple[str, Labels], float]) -> dict[Labels, float]:
    return {
        labels: value
        for (name, labels), value in samples.items()
        if name == "derivcheck_http_requests_total"
    }


def test_requests_are_counted_by_method_route_template_and_status(
    settings: Settings, fresh_sqlite_url: str
) -> None:
    secret = uuid.uuid4().hex
    scraped = _scrape_after(
        settings.model_copy(update={"database_url": fresh_sqlite_url}),
        [
            ("GET", "/health"),
            ("GET", "/health"),
            ("GET", f"/jobs/{uuid.uuid4()}"),  # no such job: 404
            ("GET", f"/nowhere/{secret}"),
            ("GET", f"/jobs/{secret}/"),  # only a trailing-slash redirect would serve it
            ("BREW", "/health"),
        ],
    )
    samples = _samples(scraped)
    counted = _requests_of(samples)
    assert counted[(("method", "GET"), ("route", "/health"), ("status", "200"))] == 2
    job_404 = [labels for labels in counted if ("status", "404") in labels]
    assert (("method", "GET"), ("route", "/jobs/{job_id}"), ("status", "404")) in job_404
    unmatched = sum(
        value for labels, value in counted.items() if ("route", UNMATCHED_ROUTE) in labels
    )
    assert unmatched == 2
    assert any(("method", "other") in labels for labels in counted)
    # However a client spells a path or a method, no label echoes it.
    assert secret not in scraped
    assert "BREW" not in scraped
    latency = "derivcheck_http_request_duration_seconds_count"
    assert samples[(latency, (("method", "GET"), ("route", "/health"), ("status", "200")))] == 2


def test_a_scrape_has_the_process_and_the_versions_it_runs(
    settings: Settings, fresh_sqlite_url: str
) -> None:
    samples = _samples(
        _scrape_after(settings.model_copy(update={"database_url": fresh_sqlite_url}), [])
    )
    names = {name for name, _ in samples}
    # prometheus_client's process collector (Linux /proc), as its README lists them.
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
    assert "process_start_time_seconds" in names
    (build,) = [labels for name, labels in samples if name == "derivcheck_build_info"]
    assert dict(build) == {
        "derivcheck": version("derivcheck"),
        "torch": version("torch"),
        "sympy": version("sympy"),
        "python": platform.python_version(),
    }
    assert samples[("derivcheck_api_processes", ())] == 1


def test_a_scrape_has_no_created_series(settings: Settings, fresh_sqlite_url: str) -> None:
    scraped = _scrape_after(
        settings.model_copy(update={"database_url": fresh_sqlite_url}), [("GET", "/health")]
    )
    assert "_created" not in scraped


def test_the_versions_are_read_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from verifier.api.metrics import BuildInfo\n"
        "list(BuildInfo().collect())\n"
        "print('torch' in sys.modules)\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60 * SLOWNESS
    )
    assert answer.stdout.strip() == "False", answer.stderr
