"""The Celery side shared by the API and the workers: configuration, task name, sending.

The API sends checks by task name (``send_task``), so it never imports the task code or torch;
the worker app in ``workers/`` registers the task under the same name with the same settings.

Sending is bounded by the publish timeout (docs/delivery.md, point 8) whatever the broker
does: each send runs in one of the sender's publishing threads (started as needed, at most
``MAX_WAITING_PUBLISHES``, and kept) through a producer of the app's pool, and the caller stops
waiting at the deadline, so a broker that hangs (a locked SQLite broker file, a Redis that
accepts and never answers) delays the checks, not the submission. A publish that gives up may
still land later; a check sent twice runs once (docs/delivery.md, point 2).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from celery import Celery
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from verifier.config import Settings
from verifier.delivery.inventory import MESSAGE_TABLE, Held, redis_held, table_held
from verifier.delivery.sender import Delivery
from verifier.store.models import LOWEST_PRIORITY

logger = logging.getLogger(__name__)

AppT = TypeVar("AppT", bound=Celery)

RUN_CHECK_TASK = "derivcheck.run_check"
BROKER_CONNECT_TIMEOUT_S = 3.0
EMBEDDED_BROKER_LOCK_TIMEOUT_S = 30.0
MAX_WAITING_PUBLISHES = 8
"""Sends of one sender that may wait on the broker at once; past them, a send takes nothing
at once instead of starting another thread that would wait too."""


PUBLISH_RETRIES = 1


def celery_delivery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings of points 1, 5, 6 and 8 above."""
    return {
        "task_acks_late": settings.task_acks_late,
        "task_reject_on_worker_lost": settings.task_reject_on_worker_lost,
        "worker_prefetch_multiplier": settings.worker_prefetch_multiplier,
        "worker_soft_shutdown_timeout": settings.worker_soft_shutdown_s,
        "broker_connection_timeout": settings.publish_timeout_s,
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": PUBLISH_RETRIES,
            "interval_start": 0,
            "interval_step": settings.publish_timeout_s / 4,
            "interval_max": settings.publish_timeout_s / 4,
        },
    }


def redis_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's Redis transport options: the visibility timeout and a bounded connect."""
    return {
        "visibility_timeout": settings.broker_visibility_timeout_s,
        "socket_connect_timeout": settings.publish_timeout_s / 2,
        # Look for messages of dead workers once per interval (kombu's default scans every
        # tenth interval); an interval well under the visibility timeout.
        "unacked_restore_interval": max(1, min(10, settings.broker_visibility_timeout_s // 4)),
        "unacked_restore_throttle": 1,
        # A list per priority, 0 (the highest) to 9, each drained before the next: a key's
        # backlog published at a lower priority waits behind other keys' first checks.
        "priority_steps": list(range(LOWEST_PRIORITY + 1)),
        "queue_order_strategy": "priority",
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings from ``settings``: reliable delivery, no result backend."""
    transport_options: dict[str, Any]
    if settings.uses_embedded_broker:
        # kombu's SQLAlchemy transport passes its options to create_engine(): wait for the
        # SQLite file's lock (the API writes while a worker polls) instead of failing. No
        # pool: after a broker error (a full disk) the worker's consumer reconnects with new
        # channels whose sessions keep their pooled connections, so a bounded pool runs dry
        # within a minute and its TimeoutError, which is no connection error, ends the worker
        # for good; without a pool each session opens its own connection to the file.
        transport_options = {
            "connect_args": {"timeout": EMBEDDED_BROKER_LOCK_TIMEOUT_S},
            "poolclass": NullPool,
        }
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
        # Late acks, prefetch, time windows, bounded publishing: see docs/delivery.md.
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


class _Publishers:
    """Daemon threads that run publishes, started while none is idle (at most ``size``)
    and kept: a thread stuck on a hung broker must not hold up process exit, and a thread per
    send cost its start each time."""

    def __init__(self, size: int):
        self._size = size
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def run(self, publish: Callable[[], None]) -> None:
        """Hand ``publish`` to a publishing thread."""
        self._work.put(publish)
        with self._lock:
            if self._idle > 0 or self._threads >= self._size:
                return
            self._threads += 1
        threading.Thread(target=self._serve, name="derivcheck-publish", daemon=True).start()

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            publish = self._work.get()
            with self._lock:
                self._idle -= 1
            publish()


class CelerySender:
    """Sends checks to the broker by task name, each send bounded by ``publish_timeout_s``
    (by default the app's, which ``celery_config`` sets from ``Settings.publish_timeout_s``).

    A sender only publishes, so on the embedded broker it waits for the SQLite file's lock at
    most the publish timeout, where a worker, which polls the file, waits longer
    (``EMBEDDED_BROKER_LOCK_TIMEOUT_S``): a publish that gave up does not linger for long.
    """

    def __init__(self, app: Celery, publish_timeout_s: float | None = None):
        self.app = app
        self.publish_timeout_s = float(
            publish_timeout_s
            if publish_timeout_s is not None
            else app.conf.broker_connection_timeout
        )
        if str(app.conf.broker_url).startswith("sqla+"):
            options = dict(app.conf.broker_transport_options or {})
            options["connect_args"] = {
                **options.get("connect_args", {}),
                "timeout": self.publish_timeout_s,
            }
            app.conf.broker_transport_options = options
        self._waiting = threading.BoundedSemaphore(MAX_WAITING_PUBLISHES)
        self._publishers = _Publishers(MAX_WAITING_PUBLISHES)

    def send(self, checks: Sequence[Delivery]) -> int:
        """Queue each check in order through one producer, with its priority; how many the broker
        took. It stops at the first publish that raises, or that made no progress within the
        publish timeout (a publish still in flight then may land too: a check delivered twice
        is run once, docs/delivery.md)."""
        checks = list(checks)
        if not checks:
            return 0
        if not self._waiting.acquire(timeout=self.publish_timeout_s):
            logger.warning(
                "the broker took no message within %g s: %d earlier sends are still waiting "
                "for it; %d checks will be re-sent",
                self.publish_timeout_s,
                MAX_WAITING_PUBLISHES,
                len(checks),
            )
            return 0
        progress = threading.Condition()
        stop = threading.Event()
        state: dict[str, Any] = {"taken": 0, "done": False, "error": None}

        def publish() -> None:
            try:
                with self.app.producer_or_acquire() as producer:
                    for delivery in checks:
                        if stop.is_set():
                            return
                        self.app.send_task(
                            RUN_CHECK_TASK,
                            args=[delivery.argument],
                            queue=delivery.queue,
                            producer=producer,
                            priority=delivery.priority,
                        )
                        with progress:
                            state["taken"] += 1
                            progress.notify_all()
            except BaseException as error:  # handed to the caller, who may have stopped waiting
                state["error"] = error
            finally:
                with progress:
                    state["done"] = True
                    progress.notify_all()
                self._waiting.release()

        self._publishers.run(publish)
        with progress:
            while not state["done"]:
                before = state["taken"]
                progress.wait(timeout=self.publish_timeout_s)
                if not state["done"] and state["taken"] == before:
                    stop.set()
                    break
            taken = int(state["taken"])
        if taken < len(checks):
            reason = state["error"] or f"no publish within {self.publish_timeout_s:g} s"
            logger.warning(
                "the broker took %d of %d checks (%s); the rest will be re-sent",
                taken,
                len(checks),
                reason,
            )
        return taken

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

    def held(self, queues: Sequence[str], limit: int) -> Held | None:
        """The checks whose messages wait in ``queues`` or are taken by a worker, reading at
        most ``limit`` messages (verifier/delivery/inventory.py); None when the broker cannot
        be read (it is logged)."""
        url = str(self.app.conf.broker_url)
        try:
            if url.startswith("sqla+"):
                options = self.app.conf.broker_transport_options or {}
                if options.get("message_tablename", MESSAGE_TABLE) != MESSAGE_TABLE:
                    return None  # tables of another name: not read here
                waits = {"timeout": self.publish_timeout_s} if "sqlite" in url else {}
                engine = create_engine(
                    embedded_broker_database(url), poolclass=NullPool, connect_args=waits
                )
                try:
                    return table_held(engine, queues, limit)
                finally:
                    engine.dispose()
            with self.app.connection_for_read() as connection:
                channel: Any = connection.default_channel
                return redis_held(
                    channel.client,
                    queues,
                    separator=channel.sep,
                    priority_steps=channel.priority_steps,
                    unacked_key=channel.unacked_key,
                    limit=limit,
                )
        except Exception:  # a broker that cannot be read: the caller re-sends as before
            logger.warning("could not read what the broker holds in %s", queues, exc_info=True)
            return None

    def close(self) -> None:
        """Release the broker connections."""
        self.app.close()
