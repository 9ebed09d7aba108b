"""The tests' slowness factor: how much slower this machine is, as the tests start, than the
development machine on which their waits were set.

Every wait in the tests (a polling deadline, a sleep that lets a fault happen, a subprocess's
timeout, a latency bound that depends on this machine's work) is written as its value on the
development machine times ``SLOWNESS``, so that a slower CPU, or a machine that other processes
load, stretches them all alike and no test waits a fixed number of seconds.

``SLOWNESS`` is the environment variable ``DERIVCHECK_TEST_SLOWNESS`` where it is set (a number
of at least 1, e.g. 4 on an emulated CPU). Otherwise it is measured once per test process, at
import: the median wall time of ``WORKLOAD_RUNS`` runs of a fixed pure-Python loop, divided by
that median on the development machine (``REFERENCE_WORKLOAD_S``, a 2-core x86-64 VM, idle),
and never below 1 (a faster machine keeps the development machine's waits). Wall time, not CPU
time: a machine whose cores other processes hold when the tests start measures slower. pytest's
header shows the factor and where it came from (tests/conftest.py).
"""

from __future__ import annotations

import os
import statistics
import time

ENVIRONMENT_VARIABLE = "DERIVCHECK_TEST_SLOWNESS"
REFERENCE_WORKLOAD_S = 0.022
"""The workload's median on the development machine (22 to 24 ms, five sessions)."""
WORKLOAD_RUNS = 9
WORKLOAD_ITERATIONS = 300_000


def _workload() -> int:
    total = 0
    for i in range(WORKLOAD_ITERATIONS):
        total += i * i % 7
    return total


def measured_slowness() -> float:
    """This machine's median time for the fixed workload over the development machine's,
    at least 1."""
    times = []
    for _ in range(WORKLOAD_RUNS):
        started = time.perf_counter()
        _workload()
        times.append(time.perf_counter() - started)
    return max(1.0, statistics.median(times) / REFERENCE_WORKLOAD_S)


def _slowness() -> tuple[float, str]:
    given = os.environ.get(ENVIRONMENT_VARIABLE)
    if given is None:
        return measured_slowness(), "measured"
    try:
        value = float(given)
    except ValueError:
        value = 0.0
    if not value >= 1:  # also refuses nan
        raise RuntimeError(f"{ENVIRONMENT_VARIABLE}={given!r}: expected a number of at least 1")
    return value, ENVIRONMENT_VARIABLE


SLOWNESS, SLOWNESS_SOURCE = _slowness()
