"""Engines and sessions: ``make_engine(url)`` and ``make_session_factory(engine)``.

SQLite gets WAL (readers never block the writer), a busy timeout (writers wait for each other
instead of failing) and foreign keys. Python's sqlite3 module opens transactions lazily and on
its own terms, which breaks savepoints and lets a read transaction fail when it later tries to
write (``database is locked`` without waiting); so, following SQLAlchemy's documented recipe, the
driver's transaction handling is turned off and every transaction starts with ``BEGIN
IMMEDIATE``, which takes the write lock up front and so waits its turn under the busy timeout.

Server databases get a pool that pings a connection only when it comes back after
``PING_AFTER_IDLE_S`` unused, instead of at every checkout (``pool_pre_ping`` cost a round trip
per transaction, three per POST /jobs), and that replaces connections older than
``POOL_RECYCLE_S``. A connection that broke while in use raises once (the API answers 503, a
worker's task retries) and SQLAlchemy then discards every connection of the pool.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
PING_AFTER_IDLE_S = 10.0
"""A pooled connection unused this long is pinged before it is handed out (a database
restarted meanwhile would otherwise fail the first request after a quiet spell)."""
POOL_RECYCLE_S = 1800
"""Pooled connections are replaced after this long (server-side idle timeouts, failovers)."""
_IDLE_SINCE = "derivcheck_idle_since"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and the pragmas above."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, **{"pool_recycle": POOL_RECYCLE_S, **kwargs})
        _ping_after_idle(engine)
        return engine
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    _configure_sqlite(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Ping a connection at checkout only if it was idle PING_AFTER_IDLE_S or longer
    (SQLAlchemy's recipe of pessimistic disconnect handling, limited to idle connections)."""

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # any failure: the pool reconnects (DisconnectionError)
            raise exc.DisconnectionError() from error
        if not alive:
            raise exc.DisconnectionError()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine`` that keep loaded values after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)
