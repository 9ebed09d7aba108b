"""A per-key rate limit: a token bucket per caller, answered with 429 and ``Retry-After``.

Each key (or, while keys are off, each client address) may send ``rate_limit_burst``
requests at once and ``rate_limit_per_minute`` on average. Requests that fail to
authenticate (no key, an unknown or a revoked one) draw on a bucket of their client address
(verifier/api/auth.py says what an address is: every loopback address is one, and a
forwarding header buys no new one unless ``VERIFIER_TRUSTED_PROXIES`` names the proxy), so a
client guessing keys gets 429 too; a valid key never draws on its address's bucket.

With keys off (the embedded defaults on a loopback address) no caller is authenticated, and
every loopback client is one address: one local script hammering the API once rate-limited
every other local program, the user's browser included. So, with keys off, each client of an
address has a bucket of its own: the one its ``X-Client-Id`` header names, else the one of its
``User-Agent``; and all clients of the address together draw on one more bucket,
``rate_limit_clients_per_address`` times as large. This fairness is between cooperating
programs: a local program may send any name, so a program that means to can still use up the
address's bucket (it cannot go past it); only keys make callers distinct for sure.

Where the broker is Redis, the buckets live there (:class:`SharedRateLimiter`, one atomic
script per request), so a fleet of API processes draws on one bucket per key; if Redis does
not answer, each process falls back to buckets of its own for a while rather than fail or
slow every request. On the embedded defaults (one API process, no Redis) the buckets live in
the process (:class:`RateLimiter`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Annotated, Protocol

import redis
from fastapi import Depends, Request

from verifier.api.auth import Caller, client_address, identify, presented_key
from verifier.api.deps import SessionDep
from verifier.api.metrics import count_refusal
from verifier.config import Settings
from verifier.errors import RateLimitedError, UnauthorizedError

logger = logging.getLogger(__name__)

MAX_BUCKETS = 10_000
REDIS_KEY_PREFIX = "derivcheck:rate:"
REDIS_TIMEOUT_S = 0.25
REDIS_RETRY_AFTER_S = 10.0
CLIENT_ID_HEADER = "X-Client-Id"
"""With keys off, the header a client names itself with, for a rate bucket of its own."""
CLIENT_NAME_DIGEST_CHARS = 16
"""Hex characters of the digest that stands for a client's name in a bucket's name (whatever
its length, a name costs a bucket name of fixed size)."""
METRICS_BUCKET = "metrics:token"

# KEYS[1]: the bucket; ARGV: tokens per second, burst. Redis's own clock, so that API
# processes on different hosts agree. Returns the seconds to wait, "0" when allowed.
TOKEN_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then
    tokens = tokens - 1
else
    wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class Limiter(Protocol):
    def wait_s(self, bucket: str) -> float:
        """Take one token from ``bucket``: 0 if allowed, else seconds until the next token."""

    def close(self) -> None:
        """Release what the limiter holds."""


class RateLimiter:
    """Token buckets keyed by caller; thread-safe (sync routes run in a thread pool)."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.rate_per_s = per_minute / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, bucket: str) -> float:
        """Take one token from ``bucket``: 0 if allowed, else seconds until the next token."""
        if self.rate_per_s <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.get(bucket, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate_per_s)
            if tokens >= 1.0:
                self._store(bucket, tokens - 1.0, now)
                return 0.0
            self._store(bucket, tokens, now)
            return (1.0 - tokens) / self.rate_per_s

    def close(self) -> None:
        """Nothing to release: the buckets are in memory."""

    def _store(self, bucket: str, tokens: float, now: float) -> None:
        if bucket not in self._buckets and len(self._buckets) >= MAX_BUCKETS:
            # Forget the callers that have been quiet long enough to have a full bucket.
            refill_s = self.burst / self.rate_per_s
            self._buckets = {
                name: value for name, value in self._buckets.items() if now - value[1] < refill_s
            }
        self._buckets[bucket] = (tokens, now)


class SharedRateLimiter:
    """Token buckets in Redis, shared by every API process; ``fallback`` while it is away."""

    def __init__(self, url: str, per_minute: int, burst: int, fallback: RateLimiter):
        self.rate_per_s = per_minute / 60.0
        self.burst = burst
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
        )
        self._script = self._client.register_script(TOKEN_BUCKET_SCRIPT)
        self._fallback = fallback
        self._local_until = 0.0

    def wait_s(self, bucket: str) -> float:
        """Take one token from ``bucket``: 0 if allowed, else seconds until the next token."""
        if self.rate_per_s <= 0:
            return 0.0
        if time.monotonic() < self._local_until:
            return self._fallback.wait_s(bucket)
        try:
            answer = self._script(
                keys=[REDIS_KEY_PREFIX + bucket], args=[self.rate_per_s, self.burst]
            )
        except redis.RedisError as error:
            self._local_until = time.monotonic() + REDIS_RETRY_AFTER_S
            logger.warning(
                "rate limits are per process for %g s: Redis did not answer (%s)",
                REDIS_RETRY_AFTER_S,
                error,
            )
            return self._fallback.wait_s(bucket)
        return float(answer)

    def close(self) -> None:
        """Close the connections to Redis."""
        self._client.close()


def make_rate_limiter(settings: Settings, scale: int = 1) -> Limiter:
    """Shared buckets in the broker's Redis when there is one, else buckets in the process;
    ``scale`` times the rate and the burst of one caller (the buckets of all clients of an
    address take ``rate_limit_clients_per_address``)."""
    per_minute = settings.rate_limit_per_minute * scale
    burst = settings.rate_limit_burst * scale
    local = RateLimiter(per_minute, burst)
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return local
    return SharedRateLimiter(settings.broker_url, per_minute, burst, local)


def client_name(request: Request) -> str:
    """Which client of its address a request is, with keys off: the name in its
    ``X-Client-Id``, else its ``User-Agent`` (a digest of either)."""
    given = request.headers.get(CLIENT_ID_HEADER)
    kind, name = ("id", given) if given else ("agent", request.headers.get("user-agent", ""))
    digest = hashlib.sha256(name.encode("utf-8", "backslashreplace")).hexdigest()
    return f"{kind}:{digest[:CLIENT_NAME_DIGEST_CHARS]}"


def limited_caller(
    request: Request,
    session: SessionDep,
    secret: Annotated[str | None, Depends(presented_key)],
) -> Caller:
    """The caller, once its rate limit allows this request; RateLimitedError otherwise, also
    in place of UnauthorizedError once its address has failed to authenticate too often."""
    limiter: Limiter = request.app.state.rate_limiter
    settings: Settings = request.app.state.settings
    address = client_address(request, settings.trusted_proxy_networks)
    try:
        caller = identify(request, session, secret, address)
    except UnauthorizedError:
        _take(limiter, f"unauthenticated:{address}")
        raise
    if caller.key_id is not None:
        _take(limiter, caller.bucket)
        return caller
    # Keys off: the client's own bucket first, so that a refused request costs the address
    # nothing, then the bucket of the address's clients together.
    _take(limiter, f"{caller.bucket}:client:{client_name(request)}")
    _take(request.app.state.address_limiter, caller.bucket)
    return caller


def metrics_caller(
    request: Request,
    session: SessionDep,
    secret: Annotated[str | None, Depends(presented_key)],
) -> Caller:
    """The caller of ``GET /metrics``, once its rate limit allows it: with ``metrics_token``
    set, the caller presenting it (and no other); else as any route's caller
    (:func:`limited_caller`)."""
    settings: Settings = request.app.state.settings
    if not settings.metrics_token:
        return limited_caller(request, session, secret)
    limiter: Limiter = request.app.state.rate_limiter
    if secret is None or not hmac.compare_digest(
        secret.encode("utf-8", "backslashreplace"), settings.metrics_token.encode("utf-8")
    ):
        address = client_address(request, settings.trusted_proxy_networks)
        _take(limiter, f"unauthenticated:{address}")
        raise UnauthorizedError(
            "GET /metrics needs the metrics token: send 'Authorization: Bearer <token>' with "
            "the API's VERIFIER_METRICS_TOKEN"
        )
    _take(limiter, METRICS_BUCKET)
    return Caller(key_id=None, bucket=METRICS_BUCKET)


def _take(limiter: Limiter, bucket: str) -> None:
    wait = limiter.wait_s(bucket)
    if wait > 0:
        count_refusal(bucket)
        logger.info(
            "rate limit: refused a request of %s",
            bucket.split(":", 1)[0],
            extra={"event": "rate_limited", "retry_after_s": wait},
        )
        raise RateLimitedError(max(1, math.ceil(wait)))


CallerDep = Annotated[Caller, Depends(limited_caller)]
MetricsCallerDep = Annotated[Caller, Depends(metrics_caller)]
