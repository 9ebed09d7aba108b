"""API keys: made at random, shown once, stored only as a hash, revoked by name or prefix;
and the sign-ins of the report pages made from them.

A key is ``dck_`` followed by 43 URL-safe characters (32 random bytes). With that much
entropy a plain SHA-256 is the right hash: a slow password hash only protects guessable
secrets, and a lookup by hash must stay fast because every request makes one. The first
characters (``prefix``) are kept in the clear so an operator can tell keys apart.

A browser that signs in to ``/ui/`` with a key gets a UI session instead of keeping the key:
a token of the same kind (``dcs_`` and 32 random bytes) whose SHA-256 is stored with the key's
id and an expiry (``ui_sessions``). It ends at sign-out (:func:`close_ui_session`), at its
expiry, or when its key is revoked (:func:`ui_session_key` finds no live key); a key holds at
most ``MAX_UI_SESSIONS_PER_KEY`` of them, the oldest ending first (docs/pages.md).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.orm import Session

from verifier.errors import NotFoundError
from verifier.store import repository
from verifier.store.models import (
    KEY_PREFIX_CHARS,
    MAX_KEY_NAME_CHARS,
    ApiKey,
    UiSession,
    utc_now,
)

KEY_MARKER = "dck_"
KEY_RANDOM_BYTES = 32
UI_SESSION_MARKER = "dcs_"
MAX_UI_SESSIONS_PER_KEY = 50
"""Live sign-ins of one key at most: signing in again ends the oldest beyond them, so a key
cannot grow the table without bound."""


def hash_key(secret: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(session: Session, name: str) -> tuple[ApiKey, str]:
    """A new key named ``name``, committed; returns the row and the key itself (shown once)."""
    name = name.strip()
    if not name or len(name) > MAX_KEY_NAME_CHARS or not name.isprintable():
        raise ValueError(f"a key name is 1 to {MAX_KEY_NAME_CHARS} printable characters")
    secret = KEY_MARKER + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    key = ApiKey(name=name, prefix=secret[:KEY_PREFIX_CHARS], key_hash=hash_key(secret))
    repository.add_api_key(session, key)
    session.commit()
    return key, secret


def list_keys(session: Session) -> Sequence[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return repository.list_api_keys(session)


def revoke_key(session: Session, name_or_prefix: str) -> int:
    """Revoke the live keys with this name or prefix; NotFoundError if there is none."""
    count = repository.revoke_api_keys(session, name_or_prefix, utc_now())
    if not count:
        raise NotFoundError(f"no live API key named or starting with {name_or_prefix!r}")
    revoked = select(ApiKey.id).where(ApiKey.revoked_at.is_not(None))
    session.execute(delete(UiSession).where(UiSession.api_key_id.in_(revoked)))
    session.commit()
    return count


_LIVE_KEY = select(ApiKey.id).where(
    ApiKey.key_hash == bindparam("hash"), ApiKey.revoked_at.is_(None)
)


def well_formed(secret: str) -> bool:
    """Whether ``secret`` could be a key at all (marker and length), before any lookup."""
    return secret.startswith(KEY_MARKER) and len(secret) <= 2 * KEY_RANDOM_BYTES + len(KEY_MARKER)


def live_key_id(connection: Connection | Session, secret: str) -> uuid.UUID | None:
    """The id of the live key ``secret`` is, or None (unknown, revoked or malformed): one
    statement built once, on a connection or session of the caller's (an autocommit
    connection reads it without a transaction)."""
    if not well_formed(secret):
        return None
    found = connection.execute(_LIVE_KEY, {"hash": hash_key(secret)}).scalar_one_or_none()
    return None if found is None else uuid.UUID(str(found))


def authenticate(session: Session, secret: str) -> ApiKey | None:
    """The live key ``secret`` is, or None (unknown, revoked or malformed)."""
    if not well_formed(secret):
        return None
    key = repository.api_key_by_hash(session, hash_key(secret))
    if key is None or key.revoked_at is not None:
        return None
    return key


def open_ui_session(session: Session, key_id: uuid.UUID, lifetime_s: int) -> str:
    """A new sign-in of key ``key_id`` for ``lifetime_s`` seconds, committed; returns its
    token (only its hash is stored). Ends every expired sign-in, and this key's oldest beyond
    ``MAX_UI_SESSIONS_PER_KEY``."""
    now = utc_now()
    token = UI_SESSION_MARKER + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    session.execute(delete(UiSession).where(UiSession.expires_at <= now))
    session.add(
        UiSession(
            token_hash=hash_key(token),
            api_key_id=key_id,
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime_s),
        )
    )
    session.flush()
    kept = (
        select(UiSession.token_hash)
        .where(UiSession.api_key_id == key_id)
        .order_by(UiSession.created_at.desc(), UiSession.token_hash)
        .limit(MAX_UI_SESSIONS_PER_KEY)
    )
    session.execute(
        delete(UiSession).where(
            UiSession.api_key_id == key_id,
            UiSession.token_hash.not_in(select(kept.subquery().c.token_hash)),
        )
    )
    session.commit()
    return token


def ui_session_key(session: Session, token: str) -> ApiKey | None:
    """The live key the sign-in ``token`` acts as, or None (unknown, ended, expired, its key
    revoked, or malformed)."""
    if not token.startswith(UI_SESSION_MARKER) or len(token) > 2 * KEY_RANDOM_BYTES + len(
        UI_SESSION_MARKER
    ):
        return None
    query = (
        select(ApiKey)
        .join(UiSession, UiSession.api_key_id == ApiKey.id)
        .where(
            UiSession.token_hash == hash_key(token),
            UiSession.expires_at > utc_now(),
            ApiKey.revoked_at.is_(None),
        )
    )
    return session.scalars(query).first()


def close_ui_session(session: Session, token: str) -> None:
    """End the sign-in ``token`` (nothing if there is none), committed."""
    session.execute(delete(UiSession).where(UiSession.token_hash == hash_key(token)))
    session.commit()
