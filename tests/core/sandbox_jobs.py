"""Jobs for tests/core/test_isolation.py that run in a sandbox's child process (the
``sandbox_jobs`` fixture of tests/core/conftest.py puts this folder on the child's path).

Each marks its start with a file ``started-PID`` in ``folder``, so the test knows which child
took the job and when.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

from slowness import SLOWNESS

RELEASE_WAIT_S = 120.0 * SLOWNESS

Progress = Callable[[str], None]


def _mark(folder: str) -> None:
    (Path(folder) / f"started-{os.getpid()}").touch()


def wait_for_release(folder: str, *, progress: Progress) -> int:
    """Finish stage "first", then wait for the test's go-ahead; this process's id."""
    progress("first")
    _mark(folder)
    give_up = time.monotonic() + RELEASE_WAIT_S
    while not (Path(folder) / "release").exists() and time.monotonic() < give_up:
        time.sleep(0.01)
    return os.getpid()


def exceed_cpu_limit(folder: str, *, progress: Progress) -> None:
    """Spin past a CPU rlimit set one second above what this process has used."""
    _mark(folder)
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(used.ru_utime + used.ru_stime) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))
    while True:
        pass


def exit_with_status_3(folder: str, *, progress: Progress) -> None:
    """Exit at once with status 3, as a crash of the child's own would."""
    _mark(folder)
    os._exit(3)
