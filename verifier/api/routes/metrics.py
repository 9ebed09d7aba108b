"""``GET /metrics``: the API's metrics in Prometheus' text format (verifier/api/metrics.py,
docs/metrics.md).

The route is an API route like the others: with ``VERIFIER_METRICS_TOKEN`` set it needs that
token (``Authorization: Bearer <token>``, Prometheus' ``authorization`` setting), and nothing
else opens it; without one, any valid API key while keys are required, none while they are
off. Each caller is rate-limited like any other (verifier/api/ratelimit.py), and the database's
counts are read at most once per ``metrics_cache_s``, however many scrapers ask. Turn the route
off with ``VERIFIER_METRICS=false``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from verifier.api.ratelimit import MetricsCallerDep

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}},
        401: {"description": "no metrics token or API key, or not a valid one"},
        429: {"description": "rate-limited"},
    },
)
async def read_metrics(request: Request, _caller: MetricsCallerDep) -> Response:
    """The metrics of the fleet (from the database, at most ``metrics_cache_s`` old) and of
    this API process."""
    registry: CollectorRegistry = request.app.state.metrics
    # A scrape may read the database: off the event loop.
    body = await run_in_threadpool(generate_latest, registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
