"""``GET /metrics``: the API's metrics in Prometheus' text format (verifier/api/metrics.py,
docs/metrics.md).

No API key: a scraper has none, and the metrics are fleet-wide counts that name no job, key
or expression. Keep the port on the operators' network, or turn the route off with
``VERIFIER_METRICS=false``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def read_metrics(request: Request) -> Response:
    """The metrics of the fleet (from the database) and of this API process."""
    registry: CollectorRegistry = request.app.state.metrics
    # The scrape reads the database: off the event loop.
    body = await run_in_threadpool(generate_latest, registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
