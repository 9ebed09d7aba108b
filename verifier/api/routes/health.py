"""``/health``: whether the database can be read and written, whether the broker answers, and
how many workers serve the cpu and gpu queues (verifier/delivery/fleet.py, read at most every
2 s; 0 workers leaves the answer 200: the API itself is well, but nothing runs those checks).

A database that answers reads but refuses writes (PostgreSQL set read-only, a standby, a
read-only SQLite file) once passed for healthy while every submission failed. The database's
check is one transaction, rolled back: a read, then a write that leaves nothing behind
(:data:`WRITE_PROBES`: on SQLite its header's ``user_version`` written again as it was, on
PostgreSQL Alembic's one-row ``alembic_version`` rewritten as it was); no row is added, so
probes grow no table. A write that only fails when it reaches the disk (a full disk) is not
seen: the rolled-back write never does.

The check runs in a thread of its own and is answered within ``health_timeout_s`` whatever
the database does (PostgreSQL's statement and lock timeouts end it there too); a check past
it is left to finish, and at most :data:`MAX_PROBES_IN_FLIGHT` run at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from verifier.api.deps import SenderDep
from verifier.config import Settings
from verifier.delivery.fleet import fleet_for
from verifier.service.schemas import Health

router = APIRouter(tags=["health"])

MAX_PROBES_IN_FLIGHT = 2
"""Database checks running at once; past it a check is refused at once (503), so a database
that never answers holds at most this many threads and connections."""


def _sqlite_write(session: Session) -> None:
    version = session.execute(text("PRAGMA user_version")).scalar_one()
    session.execute(text(f"PRAGMA user_version = {int(version)}"))


def _postgresql_write(session: Session) -> None:
    session.execute(text("UPDATE alembic_version SET version_num = version_num"))


WRITE_PROBES: dict[str, Callable[[Session], None]] = {
    "sqlite": _sqlite_write,
    "postgresql": _postgresql_write,
}
"""The write of each database dialect (any other: PostgreSQL's)."""


class DatabaseProbe:
    """Checks the database within ``timeout_s``: ``"ok"``, or what failed."""

    def __init__(self, sessions: sessionmaker[Session], timeout_s: float):
        self._sessions = sessions
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(MAX_PROBES_IN_FLIGHT)

    def check(self) -> str:
        """``"ok"`` when a read and a write both succeed within ``timeout_s``, else why not."""
        if not self._slots.acquire(blocking=False):
            return (
                f"no answer: {MAX_PROBES_IN_FLIGHT} earlier checks are still waiting for the "
                "database"
            )
        outcome: list[str] = []
        done = threading.Event()

        def run() -> None:
            try:
                outcome.append(self._probe())
            except Exception as error:  # e.g. the rollback on a lost connection: unreachable
                outcome.append(f"unreachable: {_describe(error)}")
            finally:
                self._slots.release()
                done.set()

        threading.Thread(target=run, name="health-database-probe", daemon=True).start()
        if not done.wait(self.timeout_s):
            return f"no answer within {self.timeout_s:g} s"
        return outcome[0]

    def _probe(self) -> str:
        with self._sessions() as session:
            dialect = session.get_bind().dialect.name
            try:
                if dialect == "postgresql":
                    bound_ms = max(1, round(self.timeout_s * 1000))
                    session.execute(text(f"SET LOCAL statement_timeout = {bound_ms}"))
                    session.execute(text(f"SET LOCAL lock_timeout = {bound_ms}"))
                session.execute(text("SELECT 1"))
            except Exception as error:  # any failure means "not reachable"; the text says which
                return f"unreachable: {_describe(error)}"
            try:
                WRITE_PROBES.get(dialect, _postgresql_write)(session)
            except Exception as error:  # any failure of the write: the text says which
                return f"not writable: {_describe(error)}"
            finally:
                session.rollback()
        return "ok"


@router.get(
    "/health",
    response_model=Health,
    responses={
        503: {
            "model": Health,
            "description": "database unreachable or not writable, or broker unreachable",
        }
    },
)
def read_health(request: Request, sender: SenderDep, response: Response) -> Health:
    """200 when the database can be read and written and the broker answers, else 503 naming
    what failed; ``workers`` counts the workers of each queue either way."""
    probe: DatabaseProbe = request.app.state.health_probe
    database = probe.check()
    broker = "ok"
    try:
        sender.ping()
    except Exception as error:
        broker = f"unreachable: {_describe(error)}"
    healthy = database == "ok" and broker == "ok"
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    settings: Settings = request.app.state.settings
    fleet = fleet_for(settings)
    workers = {queue: fleet.workers(queue) for queue in (settings.cpu_queue, settings.gpu_queue)}
    return Health(
        status="ok" if healthy else "unavailable",
        database=database,
        broker=broker,
        workers=workers,
    )


def _describe(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"
