"""The API's Prometheus metrics (docs/metrics.md), through the official ``prometheus_client``.

Two kinds. What the database knows is read by :class:`FleetCollector`, so it is the same from
every API process and survives their restarts: jobs and checks submitted, checks finished by
verdict, unfinished checks per queue (the queue's depth), and check durations by dtype and
device. Those scans cost about half a second at 300,000 reports, so they run at most once per
``metrics_cache_s`` in each API process (:class:`CachedCounts`): concurrent scrapes wait for
the one that reads and share its answer. What only this process sees is counted here:
``RATE_LIMITED`` (refusals, by kind of caller), the reconciler's re-publications
(``verifier.delivery.reconciler.REPUBLISHED``) and the HTTP requests
(verifier/api/instrumentation.py), with the process's own CPU, memory and file descriptors
and :class:`BuildInfo`, the versions it runs. Each app has a registry of its own
(:func:`make_registry`), so apps made by tests do not share collectors.

Under ``derivcheck serve --processes N`` the N processes count into one folder in
prometheus_client's multiprocess mode (``serve`` sets it up), and whichever process a scrape
reaches answers with the sum of all of them, and with each live process's CPU and memory
labelled by its ``pid`` (:class:`ApiProcessesCollector`). prometheus_client's ``_created``
series are turned off: the text format has no type for them, so they came out as gauges.

:class:`AcceptedJobLog` writes the API's ``job_accepted`` event line (verifier/delivery/logs.py).
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    disable_created_metrics,
    multiprocess,
    values,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from verifier.api.instrumentation import HttpMetrics, make_http_metrics
from verifier.delivery.reconciler import REPUBLISHED
from verifier.service.pages import FleetCounts, fleet_counts
from verifier.store.models import CheckStatus

logger = logging.getLogger(__name__)

DURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Upper bounds of the check-duration histogram's buckets, in seconds (a check's hard limit
defaults to 600 s)."""

RATE_LIMITED = Counter(
    "derivcheck_rate_limited_requests",
    "Requests refused with 429 by this API process, by caller kind (key, address while keys "
    "are off, metrics token, unauthenticated)",
    ["caller"],
    registry=None,
)


def count_refusal(bucket: str) -> None:
    """Count one refusal of the rate-limit bucket ``bucket`` (``kind:...``)."""
    RATE_LIMITED.labels(caller=bucket.split(":", 1)[0]).inc()


class CachedCounts:
    """The fleet's counts, read from the database at most once per ``max_age_s``.

    The first scrape after the counts grow old reads them, holding a lock; scrapes that arrive
    meanwhile wait for it and take its answer (a failed read is kept as long, so a database
    that does not answer is not asked again by every scraper). ``max_age_s`` 0 reads at every
    scrape. The age counts from the start of a read, so reads start at most once per
    ``max_age_s``.
    """

    def __init__(
        self,
        read: Callable[[], FleetCounts],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._read = read
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value: FleetCounts | None = None
        self._read_at = -float("inf")

    def get(self) -> FleetCounts | None:
        """The counts, fresh within ``max_age_s``; None when the database could not be read."""
        with self._lock:
            if self.max_age_s > 0 and self._clock() - self._read_at < self.max_age_s:
                return self._value
            self._read_at = self._clock()
            try:
                self._value = self._read()
            except SQLAlchemyError as error:
                logger.warning("metrics: the database cannot be read (%s)", error)
                self._value = None
            return self._value


class FleetCollector(Collector):
    """Reads the fleet's counts from the database, through one :class:`CachedCounts`."""

    def __init__(self, sessions: sessionmaker[Session], queues: Iterable[str], cache_s: float):
        self._sessions = sessions
        self._queues = tuple(queues)
        self.counts = CachedCounts(self._read, cache_s)

    def _read(self) -> FleetCounts:
        with self._sessions() as session:
            return fleet_counts(session, list(DURATION_BUCKETS_S))

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "derivcheck_metrics_database_up",
            "1 when the database could be read (at most metrics_cache_s ago), else 0 (the "
            "database's metrics are then absent)",
        )
        counts = self.counts.get()
        if counts is None:
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


MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own switch to its multiprocess mode: the folder its processes count
into (``derivcheck serve --processes N`` sets it for its processes)."""

BUILD_PACKAGES = ("derivcheck", "torch", "sympy")
"""The distributions whose versions ``derivcheck_build_info`` names (with Python's)."""

NOT_INSTALLED = "none"
"""The version label of a distribution that is not installed (an API image without torch)."""

_LIVE_FILE = re.compile(r"^gauge_livesum_(\d+)\.db$")
"""A file of a live process's ``derivcheck_api_processes`` in the multiprocess folder."""


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution``, from its package metadata (never imported:
    the API does not load torch), or :data:`NOT_INSTALLED`."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return NOT_INSTALLED


class BuildInfo(Collector):
    """``derivcheck_build_info``: 1, labelled with the versions this process runs."""

    def __init__(self) -> None:
        self._labels = {name: installed_version(name) for name in BUILD_PACKAGES}
        self._labels["python"] = platform.python_version()

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "derivcheck_build_info",
            "1, labelled with the versions of derivcheck, torch, sympy and Python this API "
            "process runs (read from the packages' metadata)",
            labels=list(self._labels),
        )
        info.add_metric(list(self._labels.values()), 1)
        yield info


class ApiProcessesCollector(Collector):
    """The CPU, memory and file descriptors of every live API process sharing a multiprocess
    folder, each labelled with its ``pid`` (prometheus_client's process collector, asked
    once per process). The processes are those whose ``derivcheck_api_processes`` file is
    in the folder and that are still running."""

    def __init__(self, folder: Path, proc: Path = Path("/proc")):
        self._folder = folder
        self._proc = proc

    def pids(self) -> list[int]:
        """The live API processes of the folder."""
        found = []
        for path in self._folder.iterdir():
            match = _LIVE_FILE.match(path.name)
            if match and (self._proc / match.group(1)).exists():
                found.append(int(match.group(1)))
        return sorted(found)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in self.pids():
            collector = ProcessCollector(
                pid=functools.partial(int, pid), proc=str(self._proc), registry=None
            )
            for family in collector.collect():
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from families.values()


def in_multiprocess_mode() -> bool:
    """Whether this process's metrics count into prometheus_client's multiprocess folder
    (chosen when prometheus_client was imported, from :data:`MULTIPROCESS_DIR_VARIABLE`)."""
    return values.ValueClass is not values.MutexValue


def multiprocess_dir() -> Path:
    """The multiprocess folder prometheus_client counts into (in multiprocess mode)."""
    # prometheus_client's own variable, read by it too; not one of the service's settings.
    return Path(os.environ[MULTIPROCESS_DIR_VARIABLE])


def make_registry(
    sessions: sessionmaker[Session], queues: Iterable[str], cache_s: float
) -> tuple[CollectorRegistry, HttpMetrics]:
    """The registry that ``GET /metrics`` of one app exports (reads nothing until scraped)
    and the HTTP request metrics its middleware updates; the database's counts are read at
    most once per ``cache_s``."""
    disable_created_metrics()
    registry = CollectorRegistry()
    registry.register(FleetCollector(sessions, queues, cache_s))
    registry.register(BuildInfo())
    processes = Gauge(
        "derivcheck_api_processes",
        "API processes serving (each counts 1 while it runs)",
        multiprocess_mode="livesum",
        registry=None,
    )
    processes.set(1)
    if in_multiprocess_mode():
        folder = multiprocess_dir()
        multiprocess.MultiProcessCollector(registry, path=str(folder))
        registry.register(ApiProcessesCollector(folder))
        return registry, make_http_metrics(None)
    registry.register(processes)
    registry.register(RATE_LIMITED)
    registry.register(REPUBLISHED)
    registry.register(ProcessCollector(registry=None))
    registry.register(GC_COLLECTOR)
    return registry, make_http_metrics(registry)


def forget_this_process() -> None:
    """In multiprocess mode, drop this process's live gauges from the folder (at exit)."""
    if in_multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid(), str(multiprocess_dir()))


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
