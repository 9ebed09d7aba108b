"""The workers' Prometheus metrics, kept in prometheus_client's multiprocess mode, so that
the several processes of one host (``derivcheck worker --concurrency N`` runs N) add up.

With ``worker_metrics_port`` set, every worker process writes its counts into the host's
``worker_metrics_dir`` and one of them, whichever binds the port first (the others try again
every ``SERVE_RETRY_S``, so another takes over when it exits), serves the sum of all of them.
With the port at 0 (the default), workers keep no metrics. docs/metrics.md lists them.

prometheus_client chooses its storage when a metric is created, from the environment variable
``PROMETHEUS_MULTIPROC_DIR``: :func:`enable` sets it and makes the metrics, so nothing here is
created before that.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verifier.config import Settings

logger = logging.getLogger(__name__)

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
SERVE_RETRY_S = 10.0
METRICS_DIR_NAME = "worker-metrics"
DURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""The same buckets as the API's check-duration histogram (verifier/api/metrics.py)."""


@dataclass
class WorkerMetrics:
    """The counters and histogram one worker process updates."""

    checks: Any
    errors: Any
    task_failures: Any
    symbolic_timeouts: Any
    sandbox_restarts: Any
    durations: Any

    def observe(
        self, verdict: str | None, document: Mapping[str, Any] | None, seconds: float
    ) -> None:
        """Count one run of the check task: its verdict (None: not run here, another execution
        held it), the report it wrote (None when the core crashed) and its wall time."""
        if verdict is None:
            return
        dtype = str((document or {}).get("dtype") or "unknown")
        device = str((document or {}).get("device") or "unknown")
        self.checks.labels(verdict=verdict, dtype=dtype, device=device).inc()
        self.durations.labels(dtype=dtype, device=device).observe(seconds)
        if verdict == "error":
            reason = str((document or {}).get("reason") or "internal error")
            self.errors.labels(reason=_reason_kind(reason)).inc()
            if reason == "symbolic timeout":
                self.symbolic_timeouts.inc()


def _reason_kind(reason: str) -> str:
    """A bounded label for an error's reason (the reason itself may quote user input)."""
    for kind in ("symbolic timeout", "reference timeout", "invalid input", "resource limit"):
        if reason.startswith(kind):
            return kind
    if reason.startswith("gave up"):
        return "gave up"
    if "sandbox" in reason or "died" in reason or "killed" in reason:
        return "sandbox crash"
    return "other"


_metrics: WorkerMetrics | None = None
_lock = threading.Lock()


def metrics_dir(settings: Settings) -> Path:
    """Where this host's worker processes keep their metrics."""
    return settings.worker_metrics_dir or settings.data_dir / METRICS_DIR_NAME


def enable(settings: Settings) -> WorkerMetrics | None:
    """This process's metrics in the host's multiprocess folder (None while the port is 0)."""
    global _metrics
    if settings.worker_metrics_port == 0:
        return None
    with _lock:
        if _metrics is not None:
            return _metrics
        folder = metrics_dir(settings)
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[MULTIPROCESS_DIR_VARIABLE] = str(folder)
        from prometheus_client import Counter, Histogram, values

        # Chosen when prometheus_client was first imported; choose again now that the
        # variable is set, in case something imported it earlier in this process.
        values.ValueClass = values.get_value_class()
        _metrics = WorkerMetrics(
            checks=Counter(
                "derivcheck_worker_checks",
                "Checks run to a report by this host's workers, by verdict, dtype and device",
                ["verdict", "dtype", "device"],
            ),
            errors=Counter(
                "derivcheck_worker_check_errors",
                "Checks that ended as an error report, by kind of reason",
                ["reason"],
            ),
            task_failures=Counter(
                "derivcheck_worker_task_failures",
                "Runs of the check task that raised (a database error: the task is retried)",
            ),
            symbolic_timeouts=Counter(
                "derivcheck_worker_symbolic_timeouts",
                "Checks whose SymPy derivatives ran past symbolic_timeout_s",
            ),
            sandbox_restarts=Counter(
                "derivcheck_worker_sandbox_restarts",
                "Times a check ended the SymPy sandbox process (a timeout or a crash), so that "
                "the next check starts a new one",
            ),
            durations=Histogram(
                "derivcheck_worker_check_duration_seconds",
                "Wall time of the check task, claim to report, by dtype and device",
                ["dtype", "device"],
                buckets=DURATION_BUCKETS_S,
            ),
        )
        return _metrics


def current() -> WorkerMetrics | None:
    """The metrics :func:`enable` made in this process, if any."""
    return _metrics


def serve(settings: Settings) -> threading.Thread | None:
    """Serve the host's summed metrics on ``worker_metrics_port`` from this process, now or as
    soon as the port is free (a daemon thread keeps trying); None while the port is 0."""
    if enable(settings) is None:
        return None
    thread = threading.Thread(
        target=_serve_when_free, args=(settings,), name="derivcheck-metrics", daemon=True
    )
    thread.start()
    return thread


def _serve_when_free(settings: Settings) -> None:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir(settings)))
    stop = threading.Event()
    while not stop.is_set():
        try:
            start_http_server(
                settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=registry
            )
        except OSError:
            # Another worker process of this host serves them; take over if it goes.
            stop.wait(SERVE_RETRY_S)
            continue
        logger.info(
            "serving the workers' metrics on %s:%d",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
        )
        return
