"""The API's HTTP request metrics: a count and a latency histogram of every answered request,
by method, route template and status (docs/metrics.md).

An ASGI middleware, outermost, so that it sees every answer (a 413 of the body limit, a 401,
a 429 and a 500 included). Every label is bounded whatever a client sends: the route is the
template of the route that answered (``/jobs/{job_id}``, as the router records it in the
request's scope), ``unmatched`` for a request no route took (a path no route takes, an id
with a trailing slash, a body refused by the size limit before routing), the method one of
:data:`KNOWN_METHODS` or ``other``. prometheus-fastapi-instrumentator (8.1) does not fit here:
it labels a path that a trailing-slash redirect would serve with the path itself
(``/jobs/<id>/``: one new series per id sent) and counts any method under its own name, so a
client could grow the API's memory and every scrape without bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds of the request-latency histogram's buckets, in seconds (prometheus_client's
defaults, with 30 s for the longest waits of ``POST /jobs``)."""

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted by name; any other is counted as ``other``."""

UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route took (a 404, a redirect to a trailing slash, a body
refused before routing)."""

ERROR_STATUS = 500
"""The status counted for a request whose handler raised before answering (the server then
answers 500)."""


@dataclass(frozen=True)
class HttpMetrics:
    """The request counter and latency histogram one API process updates."""

    requests: Counter
    latency: Histogram

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        labels = {"method": method, "route": route, "status": str(status)}
        self.requests.labels(**labels).inc()
        self.latency.labels(**labels).observe(seconds)


def make_http_metrics(registry: CollectorRegistry | None) -> HttpMetrics:
    """The request metrics, registered in ``registry`` (None: in none, for prometheus_client's
    multiprocess mode, where the scrape reads every process's files instead)."""
    labels = ["method", "route", "status"]
    return HttpMetrics(
        requests=Counter(
            "derivcheck_http_requests",
            "HTTP requests answered by the API, by method, route template and status",
            labels,
            registry=registry,
        ),
        latency=Histogram(
            "derivcheck_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by method, route "
            "template and status",
            labels,
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
    )


def route_template(scope: dict[str, Any]) -> str:
    """The template of the route that answered the request of ``scope`` (the router records
    it in the scope: ``/jobs/{job_id}``), or :data:`UNMATCHED_ROUTE` when none did."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestMetrics:
    """ASGI middleware that observes every HTTP request into :class:`HttpMetrics`."""

    def __init__(self, app: Any, *, metrics: HttpMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = ERROR_STATUS

        async def observed(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            self.metrics.observe(
                method, route_template(scope), status, time.perf_counter() - started
            )
