"""The hard time limit (workers/watchdog.py): one watchdog thread per process watches every
check's deadline, and a check past its deadline ends the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

from slowness import SLOWNESS

from workers.watchdog import EXIT_TIME_LIMIT, Watchdog

CHILD_TIMEOUT_S = 60 * SLOWNESS


def _watchdog_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "watchdog")


def test_many_checks_share_one_watchdog_thread() -> None:
    before = _watchdog_threads()
    dog = Watchdog()
    for _ in range(100):
        with dog.limit(60, "a check"):
            pass
    assert _watchdog_threads() == before + 1


def _run_child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )


def test_a_check_past_its_limit_ends_the_process_after_earlier_checks_ended_in_time() -> None:
    child = _run_child(
        """
        import time
        from workers.watchdog import hard_time_limit
        for _ in range(3):
            with hard_time_limit(0.2, "a quick check"):
                pass
        with hard_time_limit(0.3, "check 42"):
            time.sleep(30)
        print("not reached")
        """
    )
    assert child.returncode == EXIT_TIME_LIMIT
    assert "not reached" not in child.stdout
    assert "check 42 ran past its hard time limit of 0.3 s" in child.stderr


def test_a_check_that_ends_in_time_leaves_the_process_running() -> None:
    child = _run_child(
        """
        import time
        from workers.watchdog import hard_time_limit
        with hard_time_limit(0.3, "a quick check"):
            pass
        time.sleep(0.8)
        print("still here")
        """
    )
    assert child.returncode == 0, child.stderr
    assert "still here" in child.stdout
