"""The hard time limit of a check: past it, the worker process exits.

Celery enforces its own time limits only in a forking pool, and torch rules that out
(workers/app.py). A thread cannot be stopped from outside, and a check stuck in a torch kernel
or a runaway computation must not hold its worker for ever, so the limit ends the process: its
message is re-delivered or re-published (docs/delivery.md) and the attempt cap turns a
check that always overruns into an ``error`` report. The supervisor of ``derivcheck worker``
(verifier/cli/processes.py) starts a new worker process; compose's ``restart`` covers the
supervisor.

One watchdog thread per process (:class:`Watchdog`) watches the deadlines of the checks that
run in it; a check only records its deadline and removes it, so no thread is started per check.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

logger = logging.getLogger(__name__)

EXIT_TIME_LIMIT = 70


def _expire(what: str, seconds: float) -> None:
    logger.critical("%s ran past its hard time limit of %g s; the worker exits", what, seconds)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_TIME_LIMIT)


class Watchdog:
    """The deadlines of the blocks running in this process, watched by one daemon thread,
    started with the first block."""

    def __init__(self) -> None:
        self._deadlines: dict[int, tuple[float, str, float]] = {}
        self._numbers = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextmanager
    def limit(self, seconds: float, what: str) -> Iterator[None]:
        """Exit the process if the block is still running after ``seconds``."""
        number = next(self._numbers)
        with self._changed:
            self._deadlines[number] = (time.monotonic() + seconds, what, seconds)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)
                self._thread.start()
            self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                del self._deadlines[number]

    def _watch(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                overdue = [found for found in self._deadlines.values() if found[0] <= now]
                if overdue:
                    _, what, seconds = overdue[0]
                    _expire(what, seconds)
                nearest = min((found[0] for found in self._deadlines.values()), default=None)
                self._changed.wait(None if nearest is None else nearest - now)


_PROCESS_WATCHDOG = Watchdog()


def hard_time_limit(seconds: float, what: str) -> AbstractContextManager[None]:
    """Exit the process if the block is still running after ``seconds`` (the process's one
    watchdog)."""
    return _PROCESS_WATCHDOG.limit(seconds, what)
