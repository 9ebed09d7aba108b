"""The parser pool shared fairly (verifier/core/guard.py): a request waits for a process at
most ``wait_s`` whatever its size, then is answered busy; one caller has at most
``per_caller`` requests in the pool, so another caller is not starved: its next request waits
its turn within ``wait_s``, and is answered 429 past it.

The pool's processes are held by the test itself (taken from the pool's free queue), which is
what a flood of slow requests does, without depending on how long any expression takes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from slowness import SLOWNESS

from verifier.core.exact.sandbox import Sandbox
from verifier.core.guard import CheckedExpression, ParserPool
from verifier.errors import BusyError, RateLimitedError

WAIT_S = 0.5 * SLOWNESS


@pytest.fixture
def pool() -> Iterator[ParserPool]:
    parsers = ParserPool(1, timeout_s=30.0 * SLOWNESS, wait_s=WAIT_S, per_caller=1)
    try:
        yield parsers
    finally:
        parsers.close()


@contextmanager
def held(pool: ParserPool) -> Iterator[list[Sandbox]]:
    """Every process of ``pool`` taken, as if other requests were parsing; given back after."""
    taken = [pool._free.get() for _ in range(pool.processes)]
    try:
        yield taken
    finally:
        for sandbox in taken:
            pool._free.put(sandbox)


def test_a_request_that_finds_no_free_process_is_busy_after_the_wait(pool: ParserPool) -> None:
    with held(pool):
        started = time.monotonic()
        with pytest.raises(BusyError, match="every parser process is busy") as busy:
            pool.parse(["x + 1"])
        waited = time.monotonic() - started
    assert WAIT_S <= waited < WAIT_S + 5 * SLOWNESS
    assert busy.value.retry_after_s >= 1


def test_the_wait_does_not_grow_with_the_number_of_expressions(pool: ParserPool) -> None:
    # Before, a request of n expressions waited n times the parse bound for a process.
    texts = [f"x + {i}" for i in range(1000)]
    with held(pool):
        started = time.monotonic()
        with pytest.raises(BusyError):
            pool.parse(texts)
        waited = time.monotonic() - started
    assert waited < WAIT_S + 5 * SLOWNESS


def test_a_callers_request_that_finds_no_turn_in_time_is_a_429_and_another_is_served(
    pool: ParserPool,
) -> None:
    results: dict[str, object] = {}

    def first_of_alice() -> None:
        try:
            results["alice"] = pool.parse(["x + 1"], caller="alice")
        except BusyError as error:  # pragma: no cover  (the process is given back in time)
            results["alice"] = error

    pool.wait_s = 30.0 * SLOWNESS  # alice's first request waits for the held process
    with held(pool):
        waiting = threading.Thread(target=first_of_alice)
        waiting.start()
        deadline = time.monotonic() + 10 * SLOWNESS
        while not pool._callers.get("alice") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool._callers.get("alice") == 1
        pool.wait_s = WAIT_S  # alice's second request waits this long for her turn
        started = time.monotonic()
        with pytest.raises(RateLimitedError, match="already has 1 request"):
            pool.parse(["y + 1"], caller="alice")
        waited = time.monotonic() - started
        assert WAIT_S <= waited < WAIT_S + 5 * SLOWNESS
    waiting.join(timeout=60 * SLOWNESS)
    (parsed,) = pool.parse(["y + 1"], caller="bob")
    assert isinstance(parsed, CheckedExpression) and parsed.variables == ("y",)
    (alices,) = results["alice"]  # type: ignore[misc]
    assert isinstance(alices, CheckedExpression)
    assert not pool._callers  # every share given back


def test_a_callers_requests_sent_together_are_parsed_one_after_another(pool: ParserPool) -> None:
    # A client that sends its submissions from several threads at once is served in turn,
    # not refused: each waits for the one before it (milliseconds each).
    pool.wait_s = 30.0 * SLOWNESS
    results: list[object] = []

    def submit(index: int) -> None:
        results.extend(pool.parse([f"x + {index}"], caller="alice"))

    threads = [threading.Thread(target=submit, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60 * SLOWNESS)
    assert len(results) == 8
    assert all(isinstance(parsed, CheckedExpression) for parsed in results)
    assert not pool._callers and not pool._waiting


def test_requests_without_a_caller_share_the_bounded_wait_only(pool: ParserPool) -> None:
    # Callers without a key (keys off, the embedded defaults) are not counted per caller:
    # two of them in a row are both parsed.
    first, second = pool.parse(["x"]), pool.parse(["y"])
    assert isinstance(first[0], CheckedExpression) and isinstance(second[0], CheckedExpression)
