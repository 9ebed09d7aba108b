"""Dependencies of the routes, as annotated aliases (``SessionDep``, ``SettingsDep``, ...).

Those that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in its thread
pool, a hand-off per dependency and request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from verifier.config import Settings
from verifier.delivery.sender import Sender


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A database session for one request, closed afterwards (in the thread pool only if it
    still holds a transaction, whose rollback talks to the database; a session that committed
    closes without I/O). Making it does no I/O: it connects at its first statement."""
    session: Session = request.app.state.sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


async def get_sender(request: Request) -> Sender:
    """The broker client that sends checks to workers."""
    sender: Sender = request.app.state.sender
    return sender


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
SenderDep = Annotated[Sender, Depends(get_sender)]
