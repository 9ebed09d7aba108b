"""Two keys share one fleet: while one floods it, the other is served (docs/admission.md).

The real API, two real workers, PostgreSQL and Redis, with the API's default request limits.
One key sends, all at once, 280 KB submissions that the parser must read before admission
refuses them, jobs of the sinc evasion up to its quota, and report reads; the other submits a
one-check job every 2 s. Each of its submissions must be answered 202 within 2 s and each of
its jobs must finish within 30 s (scaled by the machine's slowness). CI runs 20 s of it; the
benchmark (``benchmarks/reliability.py --flood-seconds 60``) prints the figures of longer runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark
from slowness import SLOWNESS

pytestmark = pytest.mark.slow

FLOOD_S = 20.0 if os.environ.get("CI") == "true" else 12.0
"""How long the victim submits under the flood: the size of the test, not a wait."""


def test_a_key_flooding_the_fleet_leaves_another_key_served_within_its_bounds(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    reliability = load_benchmark("reliability")
    with reliability.running_fleet(
        tmp_path, postgres_url, redis_url, overrides=reliability.FLOOD_ENV
    ) as fleet:
        flood = reliability.run_flood(fleet, seconds=FLOOD_S)
    attacks = flood.attacker_statuses
    # The flood was real: the big submissions were parsed and refused (422), the queue was
    # filled until the key's quota or its parser share answered 429/503, or jobs were taken.
    assert attacks[422] > 0 and attacks[202] > 0, attacks
    assert not any(code >= 500 and code != 503 for code in attacks), attacks
    assert len(flood.victim_accept_s) >= FLOOD_S / reliability.FLOOD_VICTIM_EVERY_S - 1
    assert set(flood.victim_statuses) == {202}, flood.victim_statuses
    assert max(flood.victim_accept_s) <= reliability.FLOOD_ACCEPT_WITHIN_S * SLOWNESS
    assert flood.victim_unfinished == 0
    assert max(flood.victim_finish_s) <= reliability.FLOOD_FINISH_WITHIN_S * SLOWNESS
