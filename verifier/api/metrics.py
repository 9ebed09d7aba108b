"""The API's Prometheus metrics (docs/metrics.md), through the official ``prometheus_client``.

Two kinds. What the database knows is read at each scrape by :class:`FleetCollector`, so it
is the same from every API process and survives their restarts: jobs and checks submitted,
checks finished by verdict, unfinished checks per queue (the queue's depth), and check
durations by dtype and device. What only this process sees is counted here:
``RATE_LIMITED`` (refusals, by kind of caller) and the reconciler's re-publications
(``verifier.delivery.reconciler.REPUBLISHED``). Each app has a registry of its own
(:func:`make_registry`), so apps made by tests do not share collectors.

:class:`AcceptedJobLog` writes the API's ``job_accepted`` event line (verifier/delivery/logs.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from verifier.delivery.reconciler import REPUBLISHED
from verifier.service.pages import fleet_counts
from verifier.store.models import CheckStatus

logger = logging.getLogger(__name__)

DURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Upper bounds of the check-duration histogram's buckets, in seconds (a check's hard limit
defaults to 600 s)."""

RATE_LIMITED = Counter(
    "derivcheck_rate_limited_requests",
    "Requests refused with 429 by this API process, by caller kind (key, address while keys "
    "are off, unauthenticated)",
    ["caller"],
    registry=None,
)


def count_refusal(bucket: str) -> None:
    """Count one refusal of the rate-limit bucket ``bucket`` (``kind:...``)."""
    RATE_LIMITED.labels(caller=bucket.split(":", 1)[0]).inc()


class FleetCollector(Collector):
    """Reads the fleet's counts from the database at each scrape."""

    def __init__(self, sessions: sessionmaker[Session], queues: Iterable[str]):
        self._sessions = sessions
        self._queues = tuple(queues)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "derivcheck_metrics_database_up",
            "1 when this scrape could read the database, else 0 (the database's metrics are "
            "then absent)",
        )
        try:
            with self._sessions() as session:
                counts = fleet_counts(session, list(DURATION_BUCKETS_S))
        except SQLAlchemyError as error:
            logger.warning("metrics: the database cannot be read (%s)", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield CounterMetricFamily(
            "derivcheck_jobs_submitted", "Jobs submitted (stored) in all", value=counts.jobs
        )
        checks = CounterMetricFamily(
            "derivcheck_checks_submitted", "Checks submitted in all, by dtype", labels=["dtype"]
        )
        for dtype, count in sorted(counts.checks_by_dtype.items()):
            checks.add_metric([dtype], count)
        yield checks
        finished = CounterMetricFamily(
            "derivcheck_checks_finished",
            "Checks finished (with a stored report), by the report's verdict",
            labels=["verdict"],
        )
        for verdict, count in sorted(counts.finished_by_verdict.items()):
            finished.add_metric([verdict], count)
        yield finished
        depth = GaugeMetricFamily(
            "derivcheck_queue_depth",
            "Checks queued and not yet claimed by a worker, per queue (from the database)",
            labels=["queue"],
        )
        running = GaugeMetricFamily(
            "derivcheck_checks_running", "Checks claimed by a worker, per queue", labels=["queue"]
        )
        queues = sorted({*self._queues, *(queue for queue, _ in counts.unfinished)})
        for queue in queues:
            depth.add_metric([queue], counts.unfinished.get((queue, CheckStatus.QUEUED), 0))
            running.add_metric([queue], counts.unfinished.get((queue, CheckStatus.RUNNING), 0))
        yield depth
        yield running
        durations = HistogramMetricFamily(
            "derivcheck_check_duration_seconds",
            "Total time of finished checks (the report's timings.total), by dtype and the "
            "device they ran on",
            labels=["dtype", "device"],
        )
        for row in counts.durations:
            buckets = [
                (f"{bound:g}", count)
                for bound, count in zip(DURATION_BUCKETS_S, row.at_most, strict=True)
            ]
            buckets.append(("+Inf", row.count))
            durations.add_metric([row.dtype, row.device], buckets, row.total_s)
        yield durations


def make_registry(sessions: sessionmaker[Session], queues: Iterable[str]) -> CollectorRegistry:
    """The registry that ``GET /metrics`` of one app exports (reads nothing until scraped)."""
    registry = CollectorRegistry()
    registry.register(FleetCollector(sessions, queues))
    registry.register(RATE_LIMITED)
    registry.register(REPUBLISHED)
    return registry


class AcceptedJobLog:
    """ASGI middleware that logs one ``job_accepted`` line per job the API accepts (the
    answer to ``POST /jobs`` is 202, or 200 for a replayed submission, with the job's
    ``Location``), with the job's id."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/jobs":
            await self.app(scope, receive, send)
            return

        async def observed(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 202):
                headers = {name.lower(): value for name, value in message.get("headers", [])}
                location = headers.get(b"location", b"").decode("latin-1")
                job_id = location.rsplit("/", 1)[-1] if location.startswith("/jobs/") else None
                logger.info(
                    "job %s accepted%s",
                    job_id,
                    " (a replayed submission)" if message["status"] == 200 else "",
                    extra={
                        "event": "job_accepted",
                        "job_id": job_id,
                        "replayed": message["status"] == 200,
                    },
                )
            await send(message)

        await self.app(scope, receive, observed)
