"""Who is calling: the API key of a request, and whether keys are required at all.

With keys required, every route except ``/health``, ``/docs`` and ``/openapi.json`` needs
``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``); the caller sees only the jobs and
reports of its own key, and another key's job is "not found" (404), never "forbidden", so ids
reveal nothing. Keys may be off only on a loopback address: ``auto`` (the default) turns them
off for the embedded defaults (SQLite database and broker) served on 127.0.0.1, and on
otherwise; ``off`` on any other address refuses to start. Where a request comes from (for
the rate limits of callers without a key, verifier/api/ratelimit.py) is the peer's address,
or the client a trusted proxy names (``VERIFIER_TRUSTED_PROXIES``); see :func:`client_address`.

The report pages (``/ui/``) authenticate by a UI session instead of a header: a browser signs
in once with its key and keeps only a random session token (:func:`identify_ui_session`,
verifier/store/keys.py). Their forms are accepted only from this site's own origin
(:func:`site_origin`).
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from verifier.config import Settings
from verifier.errors import UnauthorizedError
from verifier.store.keys import live_key_id, ui_session_key

bearer = HTTPBearer(auto_error=False, description="an API key from `derivcheck keys create`")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = "loopback"
FORWARDED = "forwarded"
UNKNOWN = "unknown"
IPV6_CLIENT_PREFIX_BITS = 64


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


def client_address(request: Request, trusted: Sequence[Network]) -> str:
    """Who sent the request, as a rate bucket's address: ``loopback`` for any loopback
    address, an IPv6 client's /64 network, ``forwarded`` for a request whose address a
    forwarding header may have replaced, ``unknown`` when there is none.

    X-Forwarded-For is believed only from the ``trusted`` proxies: its hops are read from the
    right, past every trusted proxy, to the first other one. Trusting no proxy, the header is
    never believed, and since the server in front of the app (uvicorn believes it from loopback
    peers by default) may already have replaced the peer's address with the header's claim,
    every request that carries it counts as one client, ``forwarded``: a new header value
    never buys a new bucket.
    """
    peer = request.client.host if request.client else None
    hops = [
        hop.strip()
        for value in request.headers.getlist("x-forwarded-for")
        for hop in value.split(",")
        if hop.strip()
    ]
    if not trusted:
        return FORWARDED if hops else _address_key(peer)
    peer_ip = _ip(peer)
    if peer_ip is None or not _within(peer_ip, trusted):
        return _address_key(peer)
    for hop in reversed(hops):
        hop_ip = _ip(hop)
        if hop_ip is None or not _within(hop_ip, trusted):
            return _address_key(hop)
    return _address_key(hops[0] if hops else peer)


def _ip(host: str | None) -> IPAddress | None:
    """The IP address in ``host`` (``[v6]``, ``[v6]:port`` and ``v4:port`` included)."""
    if not host:
        return None
    text = host.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: IPAddress, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def _address_key(host: str | None) -> str:
    address = _ip(host)
    if address is None:
        return UNKNOWN
    if address.is_loopback:
        return LOOPBACK
    if address.version == 6:
        # One host usually holds a whole /64: its addresses are one client.
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX_BITS}", strict=False))
    return str(address)


async def presented_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> str | None:
    """The API key the request presents (``Authorization: Bearer`` first), or None."""
    secret = credentials.credentials if credentials is not None else header_key
    return secret or None


def identify(request: Request, session: Session, secret: str | None, address: str) -> Caller:
    """The caller presenting ``secret`` from ``address``; UnauthorizedError when a key is
    required and ``secret`` is not a valid one."""
    if not request.app.state.keys_required:
        return Caller(key_id=None, bucket=f"address:{address}")
    if not secret:
        raise UnauthorizedError(
            "an API key is required: send 'Authorization: Bearer <key>' "
            "(make one with `derivcheck keys create NAME`)"
        )
    key_id = lookup_key(request, session, secret)
    if key_id is None:
        raise UnauthorizedError("the API key is not valid (unknown or revoked)")
    return Caller(key_id=key_id, bucket=f"key:{key_id}")


def lookup_key(request: Request, session: Session, secret: str) -> uuid.UUID | None:
    """The id of the live key ``secret`` is, or None. On a server database the key is read on
    an autocommit connection (``app.state.key_lookup``): one statement, no transaction, so a
    route's own work is the request's only transaction; on SQLite, where every transaction
    takes the write lock, in ``session``'s, ended at once."""
    lookup = getattr(request.app.state, "key_lookup", None)
    if lookup is not None:
        with lookup.connect() as connection:
            return live_key_id(connection, secret)
    key_id = live_key_id(session, secret)
    session.commit()  # end the lookup's transaction before the route's own work
    return key_id


def identify_ui_session(
    request: Request, session: Session, token: str | None, address: str
) -> Caller:
    """The caller of a report page signed in with the UI session ``token``; UnauthorizedError
    when keys are required and ``token`` is no live session of a live key."""
    if not request.app.state.keys_required:
        return Caller(key_id=None, bucket=f"address:{address}")
    if not token:
        raise UnauthorizedError("the report pages need a sign-in: sign in at /ui/login")
    key = ui_session_key(session, token)
    session.commit()  # end the lookup's transaction before the route's own work
    if key is None:
        raise UnauthorizedError(
            "the sign-in has ended (signed out, expired, or its API key revoked): "
            "sign in again at /ui/login"
        )
    return Caller(key_id=key.id, bucket=f"key:{key.id}")


def site_origin(request: Request, trusted: Sequence[Network]) -> str:
    """This site's origin as a browser names it (``scheme://host[:port]``): the scheme of the
    request, or the ``X-Forwarded-Proto`` of a trusted proxy in front (one that ends TLS), and
    the ``Host`` the browser sent."""
    scheme = request.url.scheme
    peer = _ip(request.client.host if request.client else None)
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if forwarded in ("http", "https") and peer is not None and _within(peer, trusted):
        scheme = forwarded
    return f"{scheme}://{request.url.netloc}".lower()
