"""A bounded load on loopback: concurrent clients (one API key each) submit and poll against
the real API and two real workers on PostgreSQL and Redis, then the fleet drains; calm, and
with a worker killed (SIGKILL) every few seconds. No 5xx, every accepted job finished, no
duplicate report.

CI (``CI=true``) runs docs/reliability.md's 50 clients, for 15 s calm and 30 s with a worker
killed every 10 s (about a minute in all); elsewhere a shorter version runs. The full run, 60 s
of each, is the benchmark's (``benchmarks/reliability.py`` prints its figures): a longer run
takes no other path, it only repeats the same submissions, polls and kills.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from benchmark_scripts import load_benchmark
from slowness import SLOWNESS

pytestmark = pytest.mark.slow

FULL = os.environ.get("CI") == "true"
CLIENTS = 50 if FULL else 10
# How long the load lasts: the size of the test, not waits.
CALM_S = 15.0 if FULL else 6.0
KILLING_S = 30.0 if FULL else 12.0
KILL_EVERY_S = 10.0 if FULL else 3.0
DRAIN_TIMEOUT_S = 120.0 * SLOWNESS


def _assert_held(load: Any) -> None:
    assert load.server_errors == 0, load.status_counts
    assert load.transport_errors == 0
    assert len(load.accepted) > 0
    assert load.lost == 0, (
        f"{load.lost} of {len(load.accepted)} accepted jobs never finished: {load.unfinished}"
    )
    assert load.duplicates == 0


def test_load_with_and_without_worker_kills_loses_nothing(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    reliability = load_benchmark("reliability")
    with reliability.running_fleet(tmp_path, postgres_url, redis_url) as fleet:
        calm = reliability.run_load(
            fleet, clients=CLIENTS, seconds=CALM_S, drain_timeout_s=DRAIN_TIMEOUT_S
        )
        _assert_held(calm)
        killing = reliability.run_load(
            fleet,
            clients=CLIENTS,
            seconds=KILLING_S,
            kill_every_s=KILL_EVERY_S,
            drain_timeout_s=DRAIN_TIMEOUT_S,
            seed=1000,
        )
        _assert_held(killing)
        assert killing.kills >= KILLING_S // KILL_EVERY_S - 1
