"""A per-key rate limit: a token bucket per caller, answered with 429 and ``Retry-After``.

Each key (or, while keys are off, each client address) may send ``rate_limit_burst``
requests at once and ``rate_limit_per_minute`` on average. The buckets live in the API
process, so a fleet of N API processes allows up to N times the rate; that bounds the damage
of one client without a shared store in the request path.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from verifier.api.auth import Caller, get_caller
from verifier.errors import RateLimitedError

MAX_BUCKETS = 10_000


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

    def _store(self, bucket: str, tokens: float, now: float) -> None:
        if bucket not in self._buckets and len(self._buckets) >= MAX_BUCKETS:
            # Forget the callers that have been quiet long enough to have a full bucket.
            refill_s = self.burst / self.rate_per_s
            self._buckets = {
                name: value for name, value in self._buckets.items() if now - value[1] < refill_s
            }
        self._buckets[bucket] = (tokens, now)


def limited_caller(request: Request, caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    """The caller, once its rate limit allows this request; RateLimitedError otherwise."""
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.wait_s(caller.bucket)
    if wait > 0:
        raise RateLimitedError(max(1, math.ceil(wait)))
    return caller


CallerDep = Annotated[Caller, Depends(limited_caller)]
