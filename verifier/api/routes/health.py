"""``/health``: whether the database and the broker answer."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import text

from verifier.api.deps import SenderDep, SessionDep
from verifier.service.schemas import Health

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "database or broker unreachable"}},
)
def read_health(session: SessionDep, sender: SenderDep, response: Response) -> Health:
    """200 when the database and the broker answer, else 503 naming which does not."""
    database = broker = "ok"
    try:
        session.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "not reachable"; the message says which
        database = f"unreachable: {type(error).__name__}: {_first_line(error)}"
    try:
        sender.ping()
    except Exception as error:
        broker = f"unreachable: {type(error).__name__}: {_first_line(error)}"
    healthy = database == "ok" and broker == "ok"
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if healthy else "unavailable", database=database, broker=broker)


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""
