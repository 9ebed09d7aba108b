"""The service's configuration: one ``Settings`` class, the only reader of the environment.

Every knob is an environment variable with the prefix ``VERIFIER_`` (``VERIFIER_DATABASE_URL``,
``VERIFIER_BROKER_URL``, ...). With none set, the service runs on embedded defaults: a SQLite
database file and kombu's SQLAlchemy broker on a second SQLite file, both in ``data_dir``.
Tests build ``Settings(...)`` directly.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from verifier.core.exact.sandbox import DEFAULT_SYMBOLIC_TIMEOUT_S
from verifier.core.expression.cost import (
    DEFAULT_MAX_CHECK_COST_UNITS,
    DEFAULT_MAX_JOB_COST_UNITS,
    DEFAULT_MAX_QUEUED_COST_UNITS,
)
from verifier.core.floats.points import MAX_POINTS_PER_CHECK, SERVICE_POINTS_PER_CHECK
from verifier.core.guard import (
    DEFAULT_PARSE_TIMEOUT_S,
    DEFAULT_PARSE_WAIT_S,
    DEFAULT_PARSES_PER_CALLER,
)

DEFAULT_DATA_DIR = Path(".derivcheck")
DATABASE_FILE_NAME = "derivcheck.sqlite3"
BROKER_FILE_NAME = "broker.sqlite3"

REFERENCE_SHARE_OF_LIMIT = 0.75
"""Of what a check's hard limit leaves after the symbolic budget, the share the references get:
the rest is for autograd and the diagnosis, so a check ends as ``error: reference timeout``
rather than by the hard limit."""
WORKER_MEMORY_BYTES = 16 * 1024**3
"""Address space of one worker process (its SymPy sandbox has its own limit of 4 GiB)."""
DEFAULT_CLAIM_LEASE_S = 60.0
"""How long a claim holds unless its worker renews it (docs/delivery.md, point 2)."""
MAX_PAGE_SIZE = 500
"""Reports in one page of ``/reports`` at most; ``max_page_size`` may lower it."""
MAX_VALIDATION_PROBLEMS = 50
"""Problems one 422 answer lists; the rest are counted, so a bad body cannot grow its answer."""
MAX_ECHOED_INPUT_CHARS = 200
"""Characters of an offending value that a problem echoes back (as JSON text) before it is
cut short."""
MAX_REPORT_PAGE_ENTRIES = 10_000
"""Entries in one page of a job's report (``GET /jobs/{id}/report``), the default page size."""
MAX_REPORT_PAGE_CHECKS = 1000
"""Checks in one page of a job's report: the default limit of checks per job fits in one."""
UI_SESSION_S = 12 * 3600
"""Seconds a sign-in to the report pages lasts (a working day), unless signed out first."""
DEFAULT_METRICS_CACHE_S = 15.0
"""Seconds an API process keeps the database's counts for ``/metrics`` (Prometheus' default
scrape interval is 15 s): a scrape's scans of the reports cost about 0.5 s at 300,000 reports."""
DEFAULT_HEALTH_TIMEOUT_S = 2.0
"""Seconds ``/health`` waits for the database's read and rolled-back write."""
DEFAULT_CLIENTS_PER_ADDRESS = 8
"""With keys off, all clients of one address together may send this many times one client's
rate (verifier/api/ratelimit.py)."""
MAX_REPORT_PAGE_DOCUMENT_CHARS = 16_000_000
"""Characters of stored report documents (points, literals, notes: all but the entries) that
one page of a job's report loads; a page always holds at least one check."""


class Settings(BaseSettings):
    """Configuration of the API, the workers and the service commands of the CLI."""

    model_config = SettingsConfigDict(env_prefix="VERIFIER_", extra="ignore")

    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="folder of the embedded SQLite database and broker files",
    )
    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty: a SQLite file in data_dir"
    )
    broker_url: str = Field(
        default="", description="Celery broker URL; empty: an SQLite broker file in data_dir"
    )
    api_url: str = Field(default="http://127.0.0.1:8000", description="where the CLI finds the API")

    cpu_queue: str = "cpu"
    gpu_queue: str = "gpu"

    max_checks_per_job: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    # The core refuses more than MAX_POINTS_PER_CHECK; these may be raised up to it.
    max_points_per_check: int = Field(
        default=SERVICE_POINTS_PER_CHECK, ge=1, le=MAX_POINTS_PER_CHECK
    )
    max_samples_per_check: int = Field(
        default=SERVICE_POINTS_PER_CHECK, ge=1, le=MAX_POINTS_PER_CHECK
    )
    max_page_size: int = Field(default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    parse_processes: int = Field(
        default=2,
        ge=0,
        description="processes of each API that parse submitted expressions, each expression "
        "within parse_timeout_s (0: parse in the API process, unbounded)",
    )
    parse_timeout_s: float = Field(
        default=DEFAULT_PARSE_TIMEOUT_S,
        gt=0,
        description="wall time one expression may take to parse in the API; past it, a 422",
    )
    parse_wait_s: float = Field(
        default=DEFAULT_PARSE_WAIT_S,
        gt=0,
        description="wall time a submission waits for a free parser process; past it, a 503 "
        "with Retry-After (however many expressions it holds)",
    )
    parses_per_key: int = Field(
        default=DEFAULT_PARSES_PER_CALLER,
        ge=1,
        description="submissions of one API key parsed at once, so that no key holds every "
        "parser process; the next waits its turn within parse_wait_s, then is a 429",
    )

    # Delivery: see docs/delivery.md for what each of these does and why they are ordered.
    worker_prefetch_multiplier: int = Field(default=1, ge=1)
    task_acks_late: bool = True
    task_reject_on_worker_lost: bool = True
    max_attempts: int = Field(
        default=3, ge=1, description="claims of one check before it ends as an error"
    )
    symbolic_timeout_s: float = Field(
        default=DEFAULT_SYMBOLIC_TIMEOUT_S,
        gt=0,
        description="budget of SymPy's derivatives per check; past it the check ends as an error",
    )
    check_time_limit_s: float = Field(
        default=600.0, gt=0, description="hard limit of one check; past it the worker exits"
    )
    max_check_cost_units: int = Field(
        default=DEFAULT_MAX_CHECK_COST_UNITS,
        ge=1,
        description="admission bound on one check's estimated cost "
        "(verifier/core/expression/cost.py)",
    )
    max_job_cost_units: int = Field(
        default=DEFAULT_MAX_JOB_COST_UNITS,
        ge=1,
        description="admission bound on the summed estimated cost of a job's checks",
    )
    max_queued_cost_units_per_key: int = Field(
        default=DEFAULT_MAX_QUEUED_COST_UNITS,
        ge=1,
        description="admission bound on the estimated cost of one API key's checks not yet "
        "done, the new job's included; past it a 429 with Retry-After (keys off: no bound)",
    )
    worker_memory_bytes: int = Field(
        default=WORKER_MEMORY_BYTES,
        ge=0,
        description="address-space limit of each worker process (0: none); a check past it "
        "ends as an error, the worker goes on",
    )
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="how much lower than the API a worker's CPU priority is (Unix niceness, "
        "added at start; its symbolic process inherits it): where workers and the API share "
        "cores, checks take what the API leaves and submissions stay quick; 0 keeps it",
    )
    worker_soft_shutdown_s: float = Field(
        default=660.0, gt=0, description="how long a stopping worker lets its checks finish"
    )
    broker_visibility_timeout_s: int = Field(default=3600, ge=1)
    claim_lease_s: float = Field(
        default=DEFAULT_CLAIM_LEASE_S,
        gt=0,
        description="how long a claim holds unless its worker renews it (every third of it)",
    )
    publish_timeout_s: float = Field(
        default=1.0, gt=0, le=10, description="longest a submission waits for the broker"
    )

    requeue_interval_s: float = Field(
        default=60.0, ge=0, description="how often the API reconciles lost checks; 0: never"
    )
    requeue_after_s: float = Field(
        default=900.0,
        gt=0,
        description="age after which a queued, unclaimed check is re-sent if the broker no "
        "longer holds its message",
    )
    queue_served_window_s: float = Field(
        default=120.0,
        gt=0,
        description="a queue counts as served while a worker announced it within this window "
        "(workers announce every quarter of it); a job with checks for an unserved queue is a "
        "503 with Retry-After (docs/delivery.md)",
    )

    # Access: see verifier/api/auth.py and verifier/api/ratelimit.py.
    api_keys: Literal["auto", "required", "off"] = Field(
        default="auto",
        description="auto: off only for embedded defaults served on a loopback address",
    )
    api_key: str = Field(default="", description="the key the CLI sends to the API")
    ui_session_s: int = Field(
        default=UI_SESSION_S,
        ge=60,
        description="how long a sign-in to the report pages lasts (docs/pages.md)",
    )
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="requests per key per minute; 0: no limit"
    )
    rate_limit_burst: int = Field(default=60, ge=1, description="requests a key may send at once")
    rate_limit_clients_per_address: int = Field(
        default=DEFAULT_CLIENTS_PER_ADDRESS,
        ge=1,
        description="with keys off: the bound on all clients of one address together (every "
        "loopback address is one), in buckets of one client each; each client (an "
        "X-Client-Id, else a User-Agent) has a bucket of its own within it",
    )
    trusted_proxies: str = Field(
        default="",
        description="comma-separated addresses or networks (CIDR) of the reverse proxies in "
        "front of the API, whose X-Forwarded-For is believed; empty: none (the header is never "
        "trusted)",
    )

    # Bounded answers: see verifier/api/app.py and verifier/service/reports.py (job_report_page).
    max_validation_problems: int = Field(
        default=MAX_VALIDATION_PROBLEMS, ge=1, description="problems listed in one 422 answer"
    )
    max_echoed_input_chars: int = Field(
        default=MAX_ECHOED_INPUT_CHARS,
        ge=1,
        description="characters of an offending value that a 422 problem echoes",
    )
    max_report_page_entries: int = Field(
        default=MAX_REPORT_PAGE_ENTRIES, ge=1, description="entries in one page of a job's report"
    )
    max_report_page_checks: int = Field(
        default=MAX_REPORT_PAGE_CHECKS, ge=1, description="checks in one page of a job's report"
    )
    max_report_page_document_chars: int = Field(
        default=MAX_REPORT_PAGE_DOCUMENT_CHARS,
        ge=1,
        description="characters of stored report documents one page of a job's report loads",
    )

    # Watching the fleet: see docs/metrics.md and verifier/delivery/logs.py.
    worker_task_events: bool = Field(
        default=False,
        description="workers send Celery's task events (Flower's task views); worker "
        "heartbeats, which Flower's worker list and inspect ping need, are sent on Redis either "
        "way (about 0.6 ms of CPU per check when on)",
    )
    worker_check_log_level: Literal["debug", "info"] = Field(
        default="debug",
        description="level of a worker's lines per check (check_claimed, check_finished): "
        "debug leaves them out of the default INFO logs and costs nothing",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: lines for a terminal; json: one JSON object a line, with job and "
        "check ids, for a log collector",
    )
    metrics: bool = Field(default=True, description="serve GET /metrics from the API")
    metrics_token: str = Field(
        default="",
        description="the bearer token GET /metrics requires (and nothing else opens it); "
        "empty: any valid API key while keys are required, none while they are off",
    )
    metrics_cache_s: float = Field(
        default=DEFAULT_METRICS_CACHE_S,
        ge=0,
        description="how long each API process keeps the database's counts for /metrics "
        "before reading them again (0: at every scrape)",
    )
    health_timeout_s: float = Field(
        default=DEFAULT_HEALTH_TIMEOUT_S,
        gt=0,
        description="longest GET /health waits for the database's read and write; past it, 503",
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="port where a worker host serves its metrics (one slot serves all the "
        "host's slots); 0: workers keep no metrics",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="interface of the workers' metrics port"
    )
    worker_metrics_dir: Path | None = Field(
        default=None,
        description="folder where a host's worker processes keep their metrics "
        "(prometheus_client's multiprocess mode); empty: data_dir/worker-metrics",
    )

    @property
    def reference_timeout_s(self) -> float:
        """The references' budget within a check's hard limit (``REFERENCE_SHARE_OF_LIMIT``)."""
        return (self.check_time_limit_s - self.symbolic_timeout_s) * REFERENCE_SHARE_OF_LIMIT

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        for item in proxy_items(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {item!r} is not an IP address or network (CIDR)"
                ) from None
        return value

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Self:
        # Absolute, so that the API and worker processes agree whatever their working folder.
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / DATABASE_FILE_NAME}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.data_dir / BROKER_FILE_NAME}"
        if not (
            self.symbolic_timeout_s
            < self.check_time_limit_s
            < self.worker_soft_shutdown_s
            < self.broker_visibility_timeout_s
        ):
            raise ValueError(
                "delivery times must be ordered symbolic_timeout_s < check_time_limit_s < "
                "worker_soft_shutdown_s < broker_visibility_timeout_s, got "
                f"{self.symbolic_timeout_s:g} < {self.check_time_limit_s:g} < "
                f"{self.worker_soft_shutdown_s:g} < {self.broker_visibility_timeout_s:g}"
            )
        return self

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The networks of ``trusted_proxies`` (a bare address is a network of one)."""
        return tuple(
            ipaddress.ip_network(item, strict=False) for item in proxy_items(self.trusted_proxies)
        )

    @property
    def uses_embedded_defaults(self) -> bool:
        """Whether both the database and the broker are the embedded SQLite files."""
        return self.database_url.startswith("sqlite") and self.uses_embedded_broker

    @property
    def uses_embedded_broker(self) -> bool:
        """Whether the broker is kombu's SQLAlchemy transport (no server)."""
        return self.broker_url.startswith("sqla+")


def proxy_items(value: str) -> list[str]:
    """The items of a comma-separated ``trusted_proxies`` value, without blanks."""
    return [item.strip() for item in value.split(",") if item.strip()]
