"""Dependencies of the routes, as annotated aliases (``SessionDep``, ``SettingsDep``, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from verifier.config import Settings
from verifier.delivery.sender import Sender


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A database session for one request, closed afterwards."""
    with request.app.state.sessions() as session:
        yield session


def get_sender(request: Request) -> Sender:
    """The broker client that sends checks to workers."""
    sender: Sender = request.app.state.sender
    return sender


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
SenderDep = Annotated[Sender, Depends(get_sender)]
