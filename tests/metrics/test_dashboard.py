"""deploy/grafana/derivcheck.json, the Grafana dashboard of the fleet: every metric one of its
queries reads is one the service exports (the API's ``/metrics`` as a scrape shows it, the
workers' metrics as workers/metrics.py defines them), so that no panel stays empty because a
name drifted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import ServerThread
from slowness import SLOWNESS

from verifier.api import create_app
from verifier.config import Settings
from verifier.delivery.sender import InMemorySender

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "derivcheck.json"
PROMETHEUS_OWN = {"up"}
"""Series Prometheus writes itself for every target it scrapes (its documentation, "Jobs and
instances": ``up`` is 1 when the target answered)."""
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip
"""PromQL's keywords (Prometheus' documentation, "Operators")."""
SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
}
"""The series each type of family is exported as (prometheus_client's text format)."""

WORKER_FAMILIES = """
import json, os, tempfile
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
from verifier.config import Settings
from workers import metrics
made = metrics.enable(Settings(worker_metrics_port=1, worker_metrics_dir=tempfile.mkdtemp()))
print(json.dumps([
    [family.name, family.type]
    for metric in vars(made).values()
    for family in metric.describe()
]))
"""


def _queries(dashboard: dict[str, Any]) -> list[str]:
    found = []
    for panel in dashboard["panels"]:
        found.extend(target["expr"] for target in panel.get("targets", []))
        for inner in panel.get("panels", []):
            found.extend(target["expr"] for target in inner.get("targets", []))
    return found


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or name.lower() in PROMQL_WORDS:
            continue  # a function or an aggregation
        names.add(name)
    return names


def test_metric_names_are_read_from_promql() -> None:
    expression = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{job="x",route=~"/j.*"}'
        "[$__rate_interval]))) / on (route) group_left b_total"
    )
    assert metric_names(expression) == {"a_bucket", "b_total"}


def _series(families: list[tuple[str, str]]) -> set[str]:
    return {name + suffix for name, kind in families for suffix in SAMPLE_SUFFIXES.get(kind, ("",))}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series the API's scrape and the workers' metrics export."""
    from verifier.store import migrate

    folder = tmp_path_factory.mktemp("dashboard")
    database_url = f"sqlite:///{folder / 'derivcheck.sqlite3'}"
    migrate.upgrade(database_url)
    settings = Settings(data_dir=folder, requeue_interval_s=0, database_url=database_url)
    app = create_app(settings, InMemorySender(), keys_required=False)
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
        http.get("/health")
        scraped = http.get("/metrics").text
    api = [(family.name, family.type) for family in text_string_to_metric_families(scraped)]
    worker = subprocess.run(
        [sys.executable, "-c", WORKER_FAMILIES],
        capture_output=True,
        text=True,
        timeout=60 * SLOWNESS,
        check=True,
    )
    workers = [tuple(pair) for pair in json.loads(worker.stdout)]
    return _series(api) | _series(workers)  # type: ignore[arg-type]


def test_every_metric_the_dashboard_reads_is_exported(exported: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = _queries(dashboard)
    assert queries
    read = set().union(*(metric_names(query) for query in queries))
    unknown = sorted(read - exported - PROMETHEUS_OWN)
    assert not unknown, f"the dashboard reads metrics nobody exports: {unknown}"


def test_the_dashboard_shows_the_fleet(exported: set[str]) -> None:
    read = set().union(
        *(metric_names(query) for query in _queries(json.loads(DASHBOARD.read_text())))
    )
    # Queue depth, checks by verdict, request rate and latency, worker liveness, versions.
    for name in (
        "derivcheck_queue_depth",
        "derivcheck_checks_finished_total",
        "derivcheck_http_requests_total",
        "derivcheck_http_request_duration_seconds_bucket",
        "up",
        "derivcheck_worker_checks_total",
        "derivcheck_build_info",
    ):
        assert name in read, name
