"""A real Celery worker (``derivcheck worker``'s app and arguments) whose core is a stub that
can misbehave on purpose, for the fault tests: run as ``python fault_worker.py``.

Expressions steer it: one containing ``poison`` kills its own worker process (SIGKILL), one
containing ``slow`` sleeps ``FAULT_SLOW_S`` seconds first, one containing ``nap`` sleeps
``FAULT_NAP_S``, one containing ``hog`` allocates ``FAULT_HOG_BYTES``; every other check
passes at once. ``FAULT_SLOTS=N`` runs N slots the way a
supervised ``derivcheck worker --concurrency N`` does (one process per check, each restarted
alone).
``FAULT_VISIBILITY_TIMEOUT_S`` sets the broker's visibility timeout past the checks of
``Settings`` (which refuses one shorter than a check may run), to make Redis hand out the
message of a check that is still running.
The real core is tested in tests/core and end to end in tests/e2e; here the delivery is.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

from verifier.cli.processes import Slots
from verifier.config import Settings
from workers.app import create_celery, limit_memory, worker_arguments


def fault_core(expression: str, **options: Any) -> dict[str, Any]:
    """A report that passes, after killing the worker or sleeping when the expression says so."""
    if "poison" in expression:
        os.kill(os.getpid(), signal.SIGKILL)
    if "slow" in expression:
        time.sleep(float(os.environ.get("FAULT_SLOW_S", "2")))
    if "nap" in expression:
        time.sleep(float(os.environ.get("FAULT_NAP_S", "1")))
    if "hog" in expression:
        hoard = bytearray(int(os.environ.get("FAULT_HOG_BYTES", str(2**31))))
        del hoard
    return {
        "expression": expression,
        "variables": ["x"],
        "dtype": options.get("dtype", "float64"),
        "device": "cpu",
        "verdict": "pass",
        "reason": None,
        "entries": [],
        "worst": {"abs_error": 0.0, "rel_error": 0.0, "ulp_error": 0.0},
        "versions": {"torch": "stub", "sympy": "stub"},
        "timings": {"total": 0.0, "pid": os.getpid()},
    }


def main() -> None:
    slots = int(os.environ.get("FAULT_SLOTS", "1"))
    if slots > 1 and "FAULT_SLOT" not in os.environ:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s/supervisor %(message)s")
        commands = [[sys.executable, __file__] for _ in range(slots)]
        runner = Slots("fault worker", commands, env={**os.environ, "FAULT_SLOT": "any"})
        signal.signal(signal.SIGTERM, runner.stop)
        sys.exit(runner.run())
    settings = Settings()
    if "FAULT_VISIBILITY_TIMEOUT_S" in os.environ:
        # model_copy does not validate: the out-of-order windows are the fault under test.
        visibility_s = int(os.environ["FAULT_VISIBILITY_TIMEOUT_S"])
        settings = settings.model_copy(update={"broker_visibility_timeout_s": visibility_s})
    limit_memory(settings)
    app = create_celery(settings, core=fault_core)
    try:
        hostname = f"fault-{os.getpid()}@%h"
        app.worker_main(
            worker_arguments(
                settings, queues=[settings.cpu_queue], concurrency=1, hostname=hostname
            )
        )
    finally:
        app.dispose()


if __name__ == "__main__":
    main()
