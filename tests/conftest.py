"""Shared fixtures: Settings built directly, migrated databases, per-test rollback sessions,
and throwaway PostgreSQL databases and Redis db numbers.

A test that needs PostgreSQL or Redis skips when the service is missing on this machine, and
fails when the environment variable CI is "true" (CI must exercise them for real).

Every wait of the tests derives from one slowness factor, ``SLOWNESS`` (``deadline_s = 30 *
SLOWNESS``): the environment variable DERIVCHECK_TEST_SLOWNESS where it is set, otherwise this
machine's time for a small fixed CPU workload over the development machine's, measured once as
the tests start, at least 1. It lives in tests/slowness.py (test modules import it from there:
no conftest can be imported by name beside the others) and pytest's header shows it.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from slowness import SLOWNESS, SLOWNESS_SOURCE
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from verifier.config import Settings
from verifier.store import migrate
from verifier.store.engine import make_engine

IN_CI = os.environ.get("CI") == "true"
POSTGRES_ADMIN_URL = os.environ.get(
    "DERIVCHECK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# Redis for tests: a db number leased for one test alone (several test runs may share the
# server, and each test empties its db and runs workers that take whatever is queued there).
# DERIVCHECK_TEST_REDIS_URL names one fixed URL instead.
REDIS_SERVER_URL = "redis://127.0.0.1:6379"
REDIS_TEST_URL = os.environ.get("DERIVCHECK_TEST_REDIS_URL")
REDIS_TEST_DBS = range(1, 13)  # not 0 (a local service's), 13-15 (older runs, benchmarks, leases)
REDIS_LEASE_DB = 15
REDIS_LEASE_S = round(1800 * SLOWNESS)
REDIS_LEASE_WAIT_S = 60.0 * SLOWNESS
CONNECT_TIMEOUT_S = 3 * SLOWNESS


def pytest_report_header() -> str:
    """The slowness factor that every wait of this run is multiplied by."""
    return f"slowness factor: {SLOWNESS:.2f} ({SLOWNESS_SOURCE}; tests/slowness.py)"


def service_missing(what: str, error: Exception) -> None:
    """Skip the test on a machine without ``what``; fail it in CI."""
    message = f"{what} is not reachable ({type(error).__name__}: {error})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings in a fresh data folder, with no background re-sending."""
    return Settings(data_dir=tmp_path / "data", requeue_interval_s=0)


@pytest.fixture(scope="session")
def migrated_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database at the latest migration, shared by the session's rollback tests."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'shared.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def sqlite_engine(migrated_sqlite_url: str) -> Iterator[Engine]:
    """An engine on the shared migrated SQLite database."""
    engine = make_engine(migrated_sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(sqlite_engine: Engine) -> Iterator[Session]:
    """A session whose work, commits included, is rolled back after the test."""
    connection = sqlite_engine.connect()
    transaction = connection.begin()
    db = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield db
    finally:
        db.close()
        transaction.rollback()
        connection.close()


@pytest.fixture
def fresh_sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database of this test alone (for code that commits for real)."""
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The URL of a PostgreSQL server's maintenance database; skips (or fails in CI)."""
    engine = create_engine(
        POSTGRES_ADMIN_URL, connect_args={"connect_timeout": math.ceil(CONNECT_TIMEOUT_S)}
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        service_missing(f"PostgreSQL at {POSTGRES_ADMIN_URL}", error)
    finally:
        engine.dispose()
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"derivcheck_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL on a db number of this test's own, emptied before and after the test."""
    import redis

    if REDIS_TEST_URL is not None:
        yield from _emptied(REDIS_TEST_URL)
        return
    leases = redis.Redis.from_url(
        f"{REDIS_SERVER_URL}/{REDIS_LEASE_DB}", socket_connect_timeout=CONNECT_TIMEOUT_S
    )
    try:
        try:
            leases.ping()
        except Exception as error:
            service_missing(f"Redis at {REDIS_SERVER_URL}", error)
        token = uuid.uuid4().hex
        db = _lease_db(leases, token)
        try:
            yield from _emptied(f"{REDIS_SERVER_URL}/{db}")
        finally:
            if leases.get(f"derivcheck-test-db:{db}") == token.encode():
                leases.delete(f"derivcheck-test-db:{db}")
    finally:
        leases.close()


def _lease_db(leases: Any, token: str) -> int:
    deadline = time.monotonic() + REDIS_LEASE_WAIT_S
    while time.monotonic() < deadline:
        for db in REDIS_TEST_DBS:
            if leases.set(f"derivcheck-test-db:{db}", token, nx=True, ex=REDIS_LEASE_S):
                return db
        time.sleep(0.5)
    pytest.fail(f"no free Redis test db among {list(REDIS_TEST_DBS)} after {REDIS_LEASE_WAIT_S} s")


def _emptied(url: str) -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S)
    try:
        try:
            client.ping()
        except Exception as error:
            service_missing(f"Redis at {url}", error)
        client.flushdb()
        yield url
        client.flushdb()
    finally:
        client.close()


ReportDocument = Callable[..., dict[str, Any]]


@pytest.fixture
def make_report_document() -> ReportDocument:
    """Builds report documents in the core's format, where the core is not under test."""
    return report_document


def report_document(
    expression: str,
    verdict: str,
    *,
    dtype: str = "float64",
    device: str = "cpu",
    ulp_error: float | None = 0.5,
    ratio: float | None = None,
    reason: str | None = None,
    fail_on: list[str] | None = None,
    strict: bool = False,
    blame: str | None = None,
    phase: str | None = None,
) -> dict[str, Any]:
    """A minimal report, shaped by the core's own ``Report.to_dict()`` (docs/report-format.md):
    one gradient entry of ``verdict`` (none for ``error``), blaming ``blame`` in ``phase``;
    ``ratio`` defaults to 0.5 for a pass and 4 otherwise (a pass is at most 1)."""
    from verifier.core.judge.report import Entry, Report
    from verifier.core.judge.verdict import fail_on_set

    entry = Entry(
        kind="gradient",
        wrt=("x",),
        node=None,
        point=0,
        autograd=6.0,
        reference=6.0,
        reference_radius=0.0,
        abs_error=0.0,
        rel_error=0.0,
        ulp_error=ulp_error,
        tolerance=1e-13,
        verdict=verdict,
        ratio=ratio if ratio is not None else 0.5 if verdict == "pass" else 4.0,
        condition=1.0,
        correct_bits=53.0,
        blame=blame,
        phase=phase,
    )
    report = Report(
        expression=expression,
        variables=["x"],
        dtype=dtype,
        device=device,
        verdict=verdict,
        points=[{"x": 2.0}],
        entries=[] if verdict == "error" else [entry],
        reason=reason,
        fail_on=sorted(fail_on_set(fail_on, strict=strict)),
        reference_method="test",
        tolerance={"rtol": 1e-14, "atol": 0.0, "ulps": 64.0},
        versions={"torch": "test-torch", "sympy": "test-sympy"},
        timings={"total": 0.25},
    )
    return report.to_dict()
