"""``create_app(settings)``: the FastAPI application with its routes, limits and error handlers.

Every 422 lists at most ``max_validation_problems`` problems, then one that counts the rest,
and echoes at most ``max_echoed_input_chars`` of an offending value, so that the answer to a
bad request stays small whatever the request (a body of 400 KB once drew 411 MB).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from celery import Celery
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from verifier.api.instrumentation import RequestMetrics
from verifier.api.limits import BodySizeLimitMiddleware
from verifier.api.metrics import AcceptedJobLog, forget_this_process, make_registry
from verifier.api.ratelimit import make_rate_limiter
from verifier.api.routes import health, jobs, metrics, reports, ui
from verifier.api.routes.docs import add_docs
from verifier.config import Settings
from verifier.core.guard import ParserPool
from verifier.delivery.celery import CelerySender, make_celery
from verifier.delivery.logs import use_json_logs
from verifier.delivery.reconciler import Reconciler
from verifier.delivery.sender import Sender
from verifier.errors import (
    BusyError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    ServiceError,
    UnauthorizedError,
    UnavailableError,
)
from verifier.store.engine import make_engine, make_session_factory

logger = logging.getLogger(__name__)

STATUS_OF_ERROR: tuple[tuple[type[ServiceError], int], ...] = (
    (RequestRejectedError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (UnauthorizedError, status.HTTP_401_UNAUTHORIZED),
    (RateLimitedError, status.HTTP_429_TOO_MANY_REQUESTS),
    (BusyError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (UnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE),
)
"""The HTTP status of each service error (the first class that matches); any other: 500."""

DESCRIPTION = (
    "Checks PyTorch autograd's first and second derivatives against SymPy's exact "
    "derivatives. Submit jobs of checks, follow them, and query the stored reports."
)


def create_app(
    settings: Settings, sender: Sender | None = None, *, keys_required: bool | None = None
) -> FastAPI:
    """The API application for ``settings``; connects to nothing until it serves.

    ``sender`` hands checks to the broker; by default a Celery sender for ``settings``.

    ``keys_required`` defaults to ``settings.api_keys != "off"``: only the caller that knows
    the address (``derivcheck serve``, through :func:`verifier.api.auth.keys_required`) may
    resolve ``auto`` to off.
    """
    engine = make_engine(settings.database_url)
    broker: Sender = (
        sender
        if sender is not None
        else CelerySender(make_celery(settings, Celery, main="derivcheck-api"))
    )
    rate_limiter = make_rate_limiter(settings)
    address_limiter = make_rate_limiter(settings, scale=settings.rate_limit_clients_per_address)
    parser = ParserPool(
        settings.parse_processes,
        settings.parse_timeout_s,
        wait_s=settings.parse_wait_s,
        per_caller=settings.parses_per_key,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.log_format == "json":
            use_json_logs()  # after the server configured its loggers, so theirs too
        parser.start()
        reconciler = None
        if settings.requeue_interval_s > 0:
            reconciler = Reconciler(app.state.sessions, broker, settings)
            reconciler.start()
        try:
            yield
        finally:
            if reconciler is not None:
                reconciler.stop()
            broker.close()
            parser.close()
            rate_limiter.close()
            address_limiter.close()
            engine.dispose()
            forget_this_process()

    # /docs is served with its assets (routes/docs.py); ReDoc would load its script from a CDN.
    app = FastAPI(
        title="derivcheck",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_session_factory(engine)
    # Key lookups read one row outside any transaction (verifier/api/auth.py, lookup_key).
    app.state.key_lookup = (
        None
        if engine.dialect.name == "sqlite"
        else engine.execution_options(isolation_level="AUTOCOMMIT")
    )
    app.state.sender = broker
    app.state.keys_required = settings.api_keys != "off" if keys_required is None else keys_required
    app.state.rate_limiter = rate_limiter
    app.state.address_limiter = address_limiter
    app.state.health_probe = health.DatabaseProbe(app.state.sessions, settings.health_timeout_s)
    app.state.parser = parser
    app.state.metrics, http_metrics = make_registry(
        app.state.sessions, (settings.cpu_queue, settings.gpu_queue), settings.metrics_cache_s
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AcceptedJobLog)
    # Added last, so outermost: it counts every answer, the body limit's 413 included.
    app.add_middleware(RequestMetrics, metrics=http_metrics)
    app.include_router(jobs.router)
    app.include_router(reports.router)
    app.include_router(health.router)
    app.include_router(ui.router)
    add_docs(app)
    if settings.metrics:
        app.include_router(metrics.router)
    _add_error_handlers(app)
    return app


def app_from_environment() -> FastAPI:
    """The app of one of several API processes (``derivcheck serve --processes N``): its
    settings from the environment, where ``serve`` has already decided whether keys are
    required."""
    return create_app(Settings())


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as text (JSON has no such numbers) and bytes decoded
    with replacement characters (a body that is not UTF-8 is echoed as the error's input)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):  # a lone surrogate echoed back is shown escaped, as sent
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    return value


def status_for(error: ServiceError) -> int:
    """The HTTP status that answers ``error`` (``STATUS_OF_ERROR``)."""
    for kind, code in STATUS_OF_ERROR:
        if isinstance(error, kind):
            return code
    return status.HTTP_500_INTERNAL_SERVER_ERROR


def bounded_problems(
    problems: list[dict[str, Any]], *, max_problems: int, max_input_chars: int
) -> list[dict[str, Any]]:
    """The first ``max_problems`` problems, each echoing at most ``max_input_chars`` of its
    input, then one problem that counts those left out."""
    shown = [_short_input(problem, max_input_chars) for problem in problems[:max_problems]]
    hidden = len(problems) - len(shown)
    if hidden > 0:
        first = shown[0].get("loc") or ["body"]
        shown.append(
            {
                "loc": [first[0]],
                "msg": f"and {hidden} more problems, not listed (an answer lists at most "
                f"{max_problems}): fix these and send the request again",
                "type": "too_many_problems",
                "count": hidden,
            }
        )
    return shown


def _short_input(problem: dict[str, Any], max_chars: int) -> dict[str, Any]:
    if "input" not in problem:
        return problem
    text = json.dumps(problem["input"])
    if len(text) <= max_chars:
        return problem
    return {**problem, "input": f"{text[:max_chars]}... ({len(text)} characters in all)"}


def _add_error_handlers(app: FastAPI) -> None:
    settings: Settings = app.state.settings

    def bounded(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return bounded_problems(
            problems,
            max_problems=settings.max_validation_problems,
            max_input_chars=settings.max_echoed_input_chars,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, which fails to encode when it is NaN.
        problems = jsonable_encoder(_json_safe(list(error.errors())))
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and not content_type.startswith("application/json"):
            # FastAPI reads a body as JSON only when its content type says so; say that first.
            sent = repr(content_type) if content_type else "none"
            problems.insert(
                0,
                {
                    "type": "content_type",
                    "loc": ["body"],
                    "msg": f"send the body as JSON with Content-Type: application/json "
                    f"(the content type was {sent})",
                },
            )
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": bounded(problems)}
        )

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, error: ServiceError) -> JSONResponse:
        status_code = status_for(error)
        headers: dict[str, str] = {}
        if isinstance(error, UnauthorizedError):
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(error, RateLimitedError | BusyError):
            headers["Retry-After"] = str(error.retry_after_s)
        detail: Any = _json_safe(
            bounded(error.problems) if isinstance(error, RequestRejectedError) else str(error)
        )
        return JSONResponse(status_code=status_code, content={"detail": detail}, headers=headers)

    @app.exception_handler(OperationalError)
    async def _database_down(_request: Request, error: OperationalError) -> JSONResponse:
        logger.error("database error: %s", error)
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": "the database cannot be reached; try again later"},
        )
