"""The hard time limit of a check: past it, the worker process exits.

Celery enforces its own time limits only in a forking pool, and torch rules that out
(workers/app.py). A thread cannot be stopped from outside, and a check stuck in a torch kernel
or a runaway computation must not hold its worker for ever, so the limit ends the process: its
message is re-delivered or re-published (docs/delivery.md) and the attempt cap turns a
check that always overruns into an ``error`` report. The supervisor of ``derivcheck worker``
(verifier/cli/processes.py) starts a new worker process; compose's ``restart`` covers the
supervisor.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

EXIT_TIME_LIMIT = 70


def _expire(what: str, seconds: float) -> None:
    logger.critical("%s ran past its hard time limit of %g s; the worker exits", what, seconds)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_TIME_LIMIT)


@contextmanager
def hard_time_limit(seconds: float, what: str) -> Iterator[None]:
    """Exit the process if the block is still running after ``seconds``."""
    timer = threading.Timer(seconds, _expire, args=(what, seconds))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
