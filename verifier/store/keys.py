"""API keys: made at random, shown once, stored only as a hash, revoked by name or prefix.

A key is ``dck_`` followed by 43 URL-safe characters (32 random bytes). With that much
entropy a plain SHA-256 is the right hash: a slow password hash only protects guessable
secrets, and a lookup by hash must stay fast because every request makes one. The first
characters (``prefix``) are kept in the clear so an operator can tell keys apart.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy.orm import Session

from verifier.errors import NotFoundError
from verifier.store import repository
from verifier.store.models import KEY_PREFIX_CHARS, MAX_KEY_NAME_CHARS, ApiKey, utc_now

KEY_MARKER = "dck_"
KEY_RANDOM_BYTES = 32


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
    session.commit()
    return count


def authenticate(session: Session, secret: str) -> ApiKey | None:
    """The live key ``secret`` is, or None (unknown, revoked or malformed)."""
    if not secret.startswith(KEY_MARKER) or len(secret) > 2 * KEY_RANDOM_BYTES + len(KEY_MARKER):
        return None
    key = repository.api_key_by_hash(session, hash_key(secret))
    if key is None or key.revoked_at is not None:
        return None
    return key
