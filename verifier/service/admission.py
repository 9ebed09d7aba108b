"""Admission control by cost: a job whose checks would cost more than the bounds is refused
at submission, before anything is stored, with the estimate, the bound and how to split it.

The estimate is the core's (:mod:`verifier.core.expression.cost`); the bounds are the Settings
``max_check_cost_units`` and ``max_job_cost_units``. A worker could run any admitted check:
its references are budgeted within the hard limit (``Settings.reference_timeout_s``), so a
check whose real cost outruns its estimate (every point on a singularity) ends as
``error: reference timeout``, not by killing its worker.

With keys required, each key also has a quota of work not yet done
(``max_queued_cost_units_per_key``): a job that would take its key past it is refused with a
429 and Retry-After, so that one key cannot queue hours of work ahead of everyone else.

A job with checks for the GPU queue while no worker serves it is refused with a 503 and
Retry-After (``require_served_queues``), instead of waiting for ever.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from verifier.config import Settings
from verifier.core.expression.cost import SECONDS_PER_UNIT, estimate_shape
from verifier.core.guard import CheckedExpression
from verifier.delivery.fleet import fleet_for
from verifier.errors import BusyError, JobRejectedError, RateLimitedError
from verifier.service.schemas import JobIn
from verifier.store.models import LOWEST_PRIORITY

PRIORITY_FREE_UNITS = 100_000
"""Queued work of a key (about 5 s of one worker) under which its checks go first: another
key's first check waits behind at most this much of a flooding key's work, beside the checks
already running (benchmarks/reliability.py, the flood)."""
MAX_RETRY_AFTER_S = 3600
MAX_CHECKS_NAMED = 10
"""Checks a refusal for an unserved queue names by index; the rest are counted."""
"""The longest Retry-After a refused job is told (a quota frees as its key's checks finish)."""


def admit(request: JobIn, parsed: list[CheckedExpression], settings: Settings) -> list[int]:
    """Each check's estimated cost in units; JobRejectedError naming each check (and the job)
    whose cost is above its bound."""
    problems: list[dict[str, Any]] = []
    costs: list[int] = []
    total = 0
    for index, (check, expression) in enumerate(zip(request.checks, parsed, strict=True)):
        points = len(check.points or []) + (check.samples or 0)
        cost = estimate_shape(expression.shape, points, hessian=check.hessian, nodes=check.nodes)
        total += cost.units
        costs.append(cost.units)
        bound = settings.max_check_cost_units
        if cost.units <= bound:
            continue
        most = cost.points_within(bound)
        advice = (
            f"split it into checks of at most {most} points"
            if most > 0
            else "drop the Hessian or the node gradients, or use fewer variables"
        )
        problems.append(
            {
                "loc": ["body", "checks", index],
                "msg": f"check {index}: estimated cost {cost.units:,} units (about "
                f"{cost.seconds:,.0f} s of worker time) is above the limit of {bound:,} units "
                f"per check; {advice}",
                "type": "check_too_costly",
                "position": None,
            }
        )
    bound = settings.max_job_cost_units
    if total > bound:
        problems.append(
            {
                "loc": ["body", "checks"],
                "msg": f"the job's estimated cost {total:,} units is above the limit of "
                f"{bound:,} units per job; split it into at least {math.ceil(total / bound)} "
                "jobs",
                "type": "job_too_costly",
                "position": None,
            }
        )
    if problems:
        raise JobRejectedError(problems)
    return costs


def require_served_queues(queues: Sequence[str], settings: Settings) -> None:
    """Refuse a job with checks for the GPU queue while no worker serves it.

    ``queues`` holds each check's queue, in order. Only the GPU queue is refused: a fleet
    without GPU workers is a normal fleet, where such checks would wait for ever, while a CPU
    worker is what every deployment runs (a CPU queue left unserved shows in the job's status).

    Raises:
        BusyError: no worker announced the GPU queue within ``queue_served_window_s``
            (verifier/delivery/fleet.py); Retry-After is a worker's announcement interval.
    """
    gpu = settings.gpu_queue
    needing = [index for index, queue in enumerate(queues) if queue == gpu]
    fleet = fleet_for(settings)
    if not needing or not fleet.unserved(gpu):
        return
    shown = ", ".join(str(index) for index in needing[:MAX_CHECKS_NAMED])
    more = f" and {len(needing) - MAX_CHECKS_NAMED} more" if len(needing) > MAX_CHECKS_NAMED else ""
    raise BusyError(
        f"no worker serves the {gpu} queue (none announced it in the last "
        f"{settings.queue_served_window_s:g} s): checks {shown}{more} need a CUDA device and "
        f"would wait until a GPU worker starts (derivcheck worker --queues {gpu}); nothing was "
        "stored",
        math.ceil(fleet.announce_every_s),
    )


def queue_priority(queued_units: int) -> int:
    """The priority of a check published after ``queued_units`` of its key's work: 0 (the
    highest) until ``PRIORITY_FREE_UNITS``, then one step lower for each doubling, down to
    ``LOWEST_PRIORITY``. A key with little queued goes first; a backlog waits behind it.

    >>> [queue_priority(units) for units in (0, 99_999, 100_000, 200_000, 10**12)]
    [0, 0, 1, 2, 9]
    """
    if queued_units < PRIORITY_FREE_UNITS:
        return 0
    return min(LOWEST_PRIORITY, 1 + int(math.log2(queued_units / PRIORITY_FREE_UNITS)))


def check_quota(queued_units: int, job_units: int, settings: Settings) -> None:
    """Refuse a job whose key would have more than its quota of work not yet done.

    Raises:
        RateLimitedError: ``queued_units`` (the key's checks not yet done) and ``job_units``
            together are above ``max_queued_cost_units_per_key``; Retry-After is about the
            worker time the excess takes.
    """
    bound = settings.max_queued_cost_units_per_key
    if queued_units + job_units <= bound:
        return
    excess = queued_units + job_units - bound
    retry_after_s = min(MAX_RETRY_AFTER_S, max(1, math.ceil(excess * SECONDS_PER_UNIT)))
    raise RateLimitedError(
        retry_after_s,
        f"this key has {queued_units:,} units of work queued (about "
        f"{queued_units * SECONDS_PER_UNIT:,.0f} s of worker time); with this job's "
        f"{job_units:,} units that is above its quota of {bound:,} units: wait for its jobs "
        "to finish",
    )
