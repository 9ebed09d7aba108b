"""Who is calling: the API key of a request, and whether keys are required at all.

With keys required, every route except ``/health``, ``/docs`` and ``/openapi.json`` needs
``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``); the caller sees only the jobs and
reports of its own key, and another key's job is "not found" (404), never "forbidden", so ids
reveal nothing. Keys may be off only on a loopback address: ``auto`` (the default) turns them
off for the embedded defaults (SQLite database and broker) served on 127.0.0.1, and on
otherwise; ``off`` on any other address refuses to start.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from verifier.api.deps import SessionDep
from verifier.config import Settings
from verifier.errors import UnauthorizedError
from verifier.keys import authenticate

bearer = HTTPBearer(auto_error=False, description="an API key from `derivcheck keys create`")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key")


@dataclass(frozen=True)
class Caller:
    """The caller of a request: its key's id (None while keys are off) and rate bucket."""

    key_id: uuid.UUID | None
    bucket: str


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def keys_required(settings: Settings, host: str) -> bool:
    """Whether the API served on ``host`` requires keys; ValueError if keys may not be off."""
    if settings.api_keys == "required":
        return True
    if settings.api_keys == "off":
        if not is_loopback(host):
            raise ValueError(
                f"VERIFIER_API_KEYS=off is allowed only on a loopback address, not {host!r}"
            )
        return False
    return not (is_loopback(host) and settings.uses_embedded_defaults)


def get_caller(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> Caller:
    """The authenticated caller; UnauthorizedError when a key is required and not valid."""
    if not request.app.state.keys_required:
        client = request.client.host if request.client else "unknown"
        return Caller(key_id=None, bucket=f"address:{client}")
    secret = credentials.credentials if credentials is not None else header_key
    if not secret:
        raise UnauthorizedError(
            "an API key is required: send 'Authorization: Bearer <key>' "
            "(make one with `derivcheck keys create NAME`)"
        )
    key = authenticate(session, secret)
    session.commit()  # end the lookup's transaction before the route's own work
    if key is None:
        raise UnauthorizedError("the API key is not valid (unknown or revoked)")
    return Caller(key_id=key.id, bucket=f"key:{key.id}")
