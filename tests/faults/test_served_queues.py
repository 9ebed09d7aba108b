"""A real worker process announces the queues it consumes (workers/app.py, on ``worker_ready``;
verifier/delivery/fleet.py), and the service reads them: a job with a CUDA check is refused
while only a CPU worker runs, and the CPU worker's queue counts as served."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from slowness import SLOWNESS

from verifier.cli.processes import ChildProcess
from verifier.config import Settings
from verifier.delivery import fleet as fleet_module
from verifier.delivery.fleet import REDIS_KEY_PREFIX, fleet_for
from verifier.errors import BusyError
from verifier.service import jobs
from verifier.service.schemas import JobIn
from verifier.store.engine import make_engine, make_session_factory

pytestmark = pytest.mark.slow

ANNOUNCED_TIMEOUT_S = 10.0 * SLOWNESS
WINDOW_S = 0.5 * SLOWNESS
"""The API side's window here: how long it watches before it refuses (scaled)."""
POLL_S = 0.1  # how often a condition is looked at, not how long anything may take


def test_a_real_worker_announces_its_queue_and_a_cuda_job_is_refused_without_a_gpu_worker(
    fault_settings: Settings,
    start_worker: Callable[..., ChildProcess],
    private_redis: Any,
) -> None:
    fleet_module._fleet.cache_clear()
    start_worker("cpu-worker")
    client = private_redis.client()
    deadline = time.monotonic() + ANNOUNCED_TIMEOUT_S
    announced = f"{REDIS_KEY_PREFIX}{fault_settings.cpu_queue}:*"  # one key per worker
    while not (keys := client.keys(announced)):
        assert time.monotonic() < deadline, "the worker did not announce its queue"
        time.sleep(POLL_S)
    # The worker's window is Settings' default (120 s): its key lives at most that long.
    window_ms = Settings.model_fields["queue_served_window_s"].default * 1000
    assert len(keys) == 1 and 0 < client.pttl(keys[0]) <= window_ms
    assert not client.keys(f"{REDIS_KEY_PREFIX}{fault_settings.gpu_queue}:*")

    api = fault_settings.model_copy(update={"queue_served_window_s": WINDOW_S})
    fleet = fleet_for(api)
    assert fleet.served(api.cpu_queue) is True and fleet.served(api.gpu_queue) is False
    time.sleep(WINDOW_S)  # the API has watched a whole window
    engine = make_engine(api.database_url)
    try:
        with make_session_factory(engine)() as session:
            cuda = {"expression": "x", "points": [{"x": 1}], "device": "cuda"}
            with pytest.raises(BusyError, match="no worker serves the gpu queue"):
                jobs.submit_job(session, JobIn.model_validate({"checks": [cuda]}), api)
            cpu = {"expression": "x", "points": [{"x": 1}]}
            job = jobs.submit_job(session, JobIn.model_validate({"checks": [cpu]}), api)
            assert jobs.job_status(session, job.id, settings=api).waiting is None
    finally:
        engine.dispose()
