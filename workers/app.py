"""``create_celery(settings)``: the worker's Celery app, with its queues and its one task.

Pools: torch and ``fork`` do not mix. A child forked after torch has started its OpenMP or
CUDA state can hang on its first parallel operation (and CUDA refuses to initialise in a forked
child at all), and Celery's default prefork pool forks its children, and forks again to replace
them. So a worker never forks: with one slot it runs tasks in its own process (``solo``); with
more it runs them in threads of that process (``threads``), which share one torch runtime.
Torch releases the GIL inside its kernels, so threads do overlap on the numeric part of a check.
But a check past its hard time limit ends its process, and threads' checks with it: so
``derivcheck worker --concurrency N`` (supervised, the default) runs N solo processes instead,
one check each (verifier/cli/processes.py, ``Slots``).

Events: on a Redis broker a worker sends heartbeats, so ``celery --app workers.app:app inspect
ping`` and Flower (docs/metrics.md) see the fleet; Celery's task events (task-received,
-started, -succeeded: about 0.6 ms of CPU per check) only with ``worker_task_events``, for
Flower's task views. On the embedded SQLite broker both stay off: kombu's SQLAlchemy transport
has no fanout exchange, so remote control (``inspect``, ``ping``) and Flower's worker list
cannot work there at all, and every event and heartbeat would be a row in the same SQLite file
the checks' messages wait in, contending for its lock and piling up with no consumer to take
them. Gossip and mingle stay off everywhere: a worker neither needs its peers' state nor should
wait for them at start. Celery's own INFO lines per task (received, succeeded) follow
``worker_check_log_level`` like the worker's own lines per check.

Queues: once ready, a worker announces the queues it consumes, on every broker, through
verifier/delivery/fleet.py (a Redis key with a time to live, or a file beside the broker's
SQLite file), so the API can tell a queue that no worker serves.

``app`` (``workers.app:app``) is the worker app for the environment's settings, made when the
Celery command line first asks for it.
"""

from __future__ import annotations

import logging
import os
import resource
from typing import Any

from celery import Celery, signals
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from verifier.config import Settings
from verifier.core.expression import registry
from verifier.delivery.celery import make_celery
from verifier.delivery.execution import CoreCheck, LeaseRenewer
from verifier.delivery.fleet import Announcer, fleet_for
from verifier.delivery.logs import json_handler
from verifier.store.engine import make_engine, make_session_factory
from workers import metrics
from workers.tasks import core_check, register_tasks

logger = logging.getLogger(__name__)


class WorkerApp(Celery):
    """A Celery app that also holds the worker's settings, its database engine and the
    heartbeat of its claims."""

    settings: Settings
    _engine: Engine | None = None
    _sessions: sessionmaker[Session] | None = None
    _renewer: LeaseRenewer | None = None
    _announcer: Announcer | None = None

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Database sessions, on an engine made on first use (after any fork, in the worker)."""
        if self._sessions is None:
            self._engine = make_engine(self.settings.database_url)
            self._sessions = make_session_factory(self._engine)
        return self._sessions

    @property
    def renewer(self) -> LeaseRenewer:
        """The heartbeat of the claims this worker holds (docs/delivery.md, point 2)."""
        if self._renewer is None:
            self._renewer = LeaseRenewer(self.sessions, self.settings.claim_lease_s)
        return self._renewer

    def announce(self, queues: list[str]) -> None:
        """Announce that this worker serves ``queues``, now and until it is disposed of."""
        if self._announcer is None:
            self._announcer = Announcer(fleet_for(self.settings), queues)
            self._announcer.start()
            logger.info("announcing the queues %s", ", ".join(queues))

    def dispose(self) -> None:
        """Stop announcing queues and renewing claims, and close the database engine, if they
        were started."""
        if self._announcer is not None:
            self._announcer.stop()
        self._announcer = None
        if self._renewer is not None:
            self._renewer.close()
        self._renewer = None
        if self._engine is not None:
            self._engine.dispose()
        self._engine = None
        self._sessions = None


def create_celery(settings: Settings, core: CoreCheck = core_check) -> WorkerApp:
    """The worker app for ``settings``, with the check task registered (running ``core``)."""
    app = make_celery(settings, WorkerApp)
    app.settings = settings
    app.conf.worker_send_task_events = sends_events(settings) and settings.worker_task_events
    register_tasks(app, core)
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="derivcheck-init")
    signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="derivcheck-ready")
    if settings.log_format == "json":
        signals.setup_logging.connect(
            _json_logging, weak=False, dispatch_uid="derivcheck-json-logs"
        )
    return app


def sends_events(settings: Settings) -> bool:
    """Whether workers send heartbeats (and task events, if ``worker_task_events``): on
    Redis, not on the embedded broker (see the module docstring)."""
    return not settings.uses_embedded_broker


def _json_logging(loglevel: Any = None, **_: Any) -> None:
    """Celery's ``setup_logging``: with a receiver, Celery leaves logging to it."""
    root = logging.getLogger()
    root.handlers = [json_handler()]
    level = loglevel if loglevel is not None else logging.INFO
    root.setLevel(logging.getLevelName(level) if isinstance(level, str) else level)


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    """At a worker's start: load the plugins' functions, serve the host's metrics if
    ``worker_metrics_port`` is set."""
    load_plugins()
    app = getattr(sender, "app", None)
    if isinstance(app, WorkerApp):
        quiet_task_lines(app.settings)
        metrics.serve(app.settings)


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    """Once a worker consumes: announce its queues until it stops (verifier/delivery/fleet.py),
    so that the API can tell a queue that no worker serves."""
    app = getattr(sender, "app", None)
    if isinstance(app, WorkerApp):
        app.announce(sorted(app.amqp.queues.consume_from or [app.settings.cpu_queue]))


CELERY_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")
"""Celery's loggers of a line per task received and per task succeeded."""


def quiet_task_lines(settings: Settings) -> None:
    """Celery's lines per task at WARNING unless ``worker_check_log_level`` is info (its
    strategy decides once, when the worker starts consuming, whether to log them at all)."""
    if settings.worker_check_log_level != "info":
        for name in CELERY_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def load_plugins() -> dict[str, str]:
    """Import every plugin function's torch implementation (docs/custom-functions.md) and log
    those that could not be used; returns them (name -> why). A broken plugin does not stop
    the worker: only the checks that call its functions end as ``error``, with the reason."""
    for problem in registry.plugin_problems():
        logger.error("plugin %s could not be declared: %s", problem.entry_point, problem.reason)
    problems = registry.load_implementations()
    for name, reason in problems.items():
        logger.error("plugin function %s is unavailable in this worker: %s", name, reason)
    loaded = [d.name for d in registry.declarations() if d.name not in problems]
    if loaded:
        logger.info("plugin functions loaded: %s", ", ".join(loaded))
    return problems


def __getattr__(name: str) -> Any:
    # ``celery --app workers.app:app ...`` (inspect, flower): the app for the environment.
    if name == "app":
        return create_celery(Settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def limit_memory(settings: Settings) -> None:
    """Bound this worker process's address space (``worker_memory_bytes``; 0 leaves it).

    A check that needs more gets a MemoryError (or torch's allocation error) and ends as an
    ``error``; the worker goes on with the next one.
    """
    if settings.worker_memory_bytes <= 0:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = settings.worker_memory_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def lower_priority(settings: Settings) -> None:
    """Lower this worker process's CPU priority by ``worker_nice`` (its children, the
    symbolic process among them, inherit it)."""
    if settings.worker_nice > 0:
        os.nice(settings.worker_nice)


def pool_for(concurrency: int) -> str:
    """The Celery pool for ``concurrency`` slots; never one that forks (see module docstring)."""
    return "solo" if concurrency <= 1 else "threads"


def worker_arguments(
    settings: Settings,
    *,
    queues: list[str],
    concurrency: int,
    loglevel: str = "INFO",
    hostname: str | None = None,
) -> list[str]:
    """The ``celery worker`` command line for these queues and slots (and node name)."""
    arguments: list[Any] = [
        "worker",
        f"--queues={','.join(queues)}",
        f"--pool={pool_for(concurrency)}",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]
    if not sends_events(settings):
        arguments.append("--without-heartbeat")
    if hostname is not None:
        arguments.append(f"--hostname={hostname}")
    return [str(argument) for argument in arguments]
