"""Log lines of the service: plain text for a terminal (the default), or one JSON object per
line for a log collector (``VERIFIER_LOG_FORMAT=json``).

A JSON line has ``time``, ``level``, ``logger``, ``message``, ``event`` (a name such as
``job_accepted``, ``check_claimed``, ``check_finished``, ``check_retry``, ``reconcile``;
``log`` for a line that names none) and every ``extra`` the call passed (``verdict``,
``duration_s`` ...). ``job_id`` and ``check_id`` come from the call's ``extra`` or, for every
line logged inside :func:`log_context` (a worker's task), from that context, so lines of code
that never heard of the ids carry them too. docs/metrics.md lists the events.

uvicorn configures its loggers when it starts, before the application does:
:func:`uvicorn_log_config` is the configuration ``derivcheck serve`` hands it, so that its
first lines are JSON too. uvicorn's ``color_message`` (its message again, with terminal colour
codes) is left out of every JSON line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_CONTEXT: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "derivcheck_log_context", default=None
)
_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
"""Attributes every LogRecord has: anything else on a record came from ``extra``."""

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

LEFT_OUT_FIELDS = frozenset({"color_message"})
"""Fields of a record that no JSON line carries: uvicorn's ``color_message`` is its message
again, with ANSI colour codes."""


@contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Within the block, every log line of this thread (or task) carries ``ids``."""
    token = _CONTEXT.set(_merged(ids))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**ids: str | None) -> None:
    """Add ``ids`` to the current :func:`log_context`."""
    _CONTEXT.set(_merged(ids))


def _merged(ids: Mapping[str, str | None]) -> dict[str, str]:
    known = dict(_CONTEXT.get() or {})
    known.update({name: value for name, value in ids.items() if value is not None})
    return known


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": "log",
            "message": record.getMessage(),
        }
        line.update(_CONTEXT.get() or {})
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and name not in LEFT_OUT_FIELDS and name[0] != "_":
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def json_handler(stream: Any = None) -> logging.Handler:
    """A handler that writes JSON lines to ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration (``logging.config.dictConfig``) for JSON lines: its
    loggers, and the root logger, write :class:`JsonFormatter` lines to stderr from the first
    line on, at ``level`` (uvicorn's level names: ``info``, ``warning`` ...)."""
    formatter = {"()": f"{JsonFormatter.__module__}.{JsonFormatter.__qualname__}"}
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    uvicorn_level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # uvicorn sets use_colors on formatters of these names when asked; JSON has none.
        "formatters": {name: dict(formatter) for name in ("json", "default", "access")},
        "handlers": {"json": handler},
        "loggers": {
            name: {"handlers": ["json"], "level": uvicorn_level, "propagate": False}
            for name in UVICORN_LOGGERS
        },
        "root": {"handlers": ["json"], "level": uvicorn_level},
    }


def use_json_logs(level: int = logging.INFO, stream: Any = None) -> logging.Handler:
    """Send every log line of the process, uvicorn's included, as JSON to ``stream``: the
    root logger gets one JSON handler in place of its handlers; uvicorn's loggers, which keep
    handlers of their own, get it too."""
    handler = json_handler(stream)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.handlers:
            logger.handlers = [handler]
    return handler
