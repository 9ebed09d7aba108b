"""The Celery side shared by the API and the workers: configuration, task name, sending.

The API sends checks by task name (``send_task``), so it never imports the task code or torch;
the worker app in ``workers/`` registers the task under the same name with the same settings.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, TypeVar

from celery import Celery
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from verifier.config import Settings
from verifier.delivery import celery_delivery_config, redis_transport_options

AppT = TypeVar("AppT", bound=Celery)

RUN_CHECK_TASK = "derivcheck.run_check"
BROKER_CONNECT_TIMEOUT_S = 3.0
EMBEDDED_BROKER_LOCK_TIMEOUT_S = 30.0


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings from ``settings``: reliable delivery, no result backend."""
    transport_options: dict[str, Any]
    if settings.uses_embedded_broker:
        # kombu's SQLAlchemy transport passes its options to create_engine(): wait for the
        # SQLite file's lock (the API writes while a worker polls) instead of failing.
        transport_options = {"connect_args": {"timeout": EMBEDDED_BROKER_LOCK_TIMEOUT_S}}
    else:
        transport_options = redis_transport_options(settings)
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        # Reports live in the database; a result backend would be a second, unused copy.
        "result_backend": None,
        "task_ignore_result": True,
        "task_default_queue": settings.cpu_queue,
        "task_create_missing_queues": True,
        # Late acks, prefetch, time windows, bounded publishing: see verifier/delivery.py.
        **celery_delivery_config(settings),
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "enable_utc": True,
    }


def make_celery(settings: Settings, app_class: type[AppT], main: str = "derivcheck") -> AppT:
    """A Celery app (of ``app_class``) configured from ``settings``, with no tasks."""
    if settings.uses_embedded_broker:
        # kombu creates the SQLite file but not its folder.
        database = make_url(embedded_broker_database(settings.broker_url)).database
        if database:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    app = app_class(main, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def embedded_broker_database(broker_url: str) -> str:
    """The SQLAlchemy URL inside an embedded broker URL (``sqla+sqlite:///...``)."""
    return broker_url.removeprefix("sqla+")


class CelerySender:
    """Sends checks to the broker by task name."""

    def __init__(self, app: Celery):
        self.app = app

    def send_check(self, check_id: uuid.UUID, queue: str) -> None:
        """Queue the check ``check_id`` on ``queue``."""
        self.app.send_task(RUN_CHECK_TASK, args=[str(check_id)], queue=queue)

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        url = str(self.app.conf.broker_url)
        if url.startswith("sqla+"):
            # kombu's SQLAlchemy transport connects lazily; ask its database directly.
            engine = create_engine(embedded_broker_database(url))
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            finally:
                engine.dispose()
            return
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_CONNECT_TIMEOUT_S)

    def close(self) -> None:
        """Release the broker connections."""
        self.app.close()
