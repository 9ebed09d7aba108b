"""How a check is delivered: at least once by the broker, run to a report exactly once.

This is the one place that explains the delivery settings (all in ``Settings``) and how they
fit together. The broker may lose a message (a Redis restart without persistence, a flush),
deliver it twice (a visibility timeout that expires while the check still runs) or give it to
a worker that dies. None of that may lose a check or write two reports, so the database, not
the broker, decides what runs:

1. **Late acknowledgement** (``task_acks_late``): a message is acknowledged after its task
   returned, so a worker that dies mid-check leaves the message unacknowledged and Redis gives
   it back once ``broker_visibility_timeout_s`` has passed since delivery.
   ``task_reject_on_worker_lost`` re-queues the message where Celery itself sees the worker
   process die, instead of marking it failed. **Prefetch 1**
   (``worker_prefetch_multiplier``): a worker holds one message per slot, so a slow or dying
   check holds up no others.
2. **Claim** (:func:`verifier.claims.claim_check`): a worker runs a check only after a
   conditional update moved it to ``running``, counted the attempt, and made a token of this
   execution its owner, with a lease of ``claim_lease_s``. While the check runs, the worker
   renews the lease every third of it (a heartbeat), so a lease that lapses belongs to a dead
   or frozen worker. A delivery that finds the check done, or running under a live lease,
   does nothing: that is what a redelivered message meets while its check still runs (the
   visibility timeout ran out), so a check never runs twice at once. A retry after a database
   error (the task retries ``OperationalError`` with backoff) names the execution that failed
   and takes its claim back at once.
3. **Attempt cap** (``max_attempts``): a claim that would be attempt ``max_attempts + 1``
   does not run the check: it writes the report ``error: gave up after N attempts``. A check
   that kills its worker every time (a poison check) therefore ends, instead of looping.
4. **Report once** (:func:`verifier.claims.finish_check`): the report is written with an
   insert that ignores a duplicate, in the same transaction as the update that moves the check
   to ``done``, and only while the writer still owns the check (its token is still the
   check's owner). A second execution changes nothing.
5. **Hard time limit** (``check_time_limit_s``): a check that runs past it takes its worker
   process down (``workers/watchdog.py``; Celery's own time limits need a forking pool, which
   torch rules out). Its message comes back or is re-published, and the attempt cap ends it.
6. **Ordering**: ``symbolic_timeout_s < check_time_limit_s < worker_soft_shutdown_s <
   broker_visibility_timeout_s`` (``Settings`` refuses anything else). SymPy's budget per check
   ends a runaway symbolic step as ``error: symbolic timeout`` well before the hard limit.
   A stopping worker (SIGTERM) waits ``worker_soft_shutdown_s`` for its checks, longer than
   any check may run, so a clean stop never cuts one short; and Redis re-delivers an
   unacknowledged message only after both, so it does not hand out the message of a check that
   is still legitimately running (and if it did, point 2 makes that delivery a no-op).
7. **Reconciler** (:mod:`verifier.reconciler`): every ``requeue_interval_s`` it releases
   claims whose lease lapsed and re-publishes checks that are queued but were never sent or
   sent more than ``requeue_after_s`` ago. A lost message, a dead worker or a flushed Redis
   delays a check (a dead worker's by about ``claim_lease_s + requeue_interval_s``); it never
   loses it.
8. **Broker down at submission**: publishing gives up after ``publish_timeout_s`` (short
   connect timeout, bounded retries); the job is already committed, the API answers 202, and
   the reconciler publishes its checks once the broker is back.
"""

from __future__ import annotations

from typing import Any

from verifier.config import Settings

PUBLISH_RETRIES = 1


def celery_delivery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings of points 1, 5, 6 and 8 above."""
    return {
        "task_acks_late": settings.task_acks_late,
        "task_reject_on_worker_lost": settings.task_reject_on_worker_lost,
        "worker_prefetch_multiplier": settings.worker_prefetch_multiplier,
        "worker_soft_shutdown_timeout": settings.worker_soft_shutdown_s,
        "broker_connection_timeout": settings.publish_timeout_s,
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": PUBLISH_RETRIES,
            "interval_start": 0,
            "interval_step": settings.publish_timeout_s / 4,
            "interval_max": settings.publish_timeout_s / 4,
        },
    }


def redis_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's Redis transport options: the visibility timeout and a bounded connect."""
    return {
        "visibility_timeout": settings.broker_visibility_timeout_s,
        "socket_connect_timeout": settings.publish_timeout_s / 2,
        # Look for messages of dead workers once per interval (kombu's default scans every
        # tenth interval); an interval well under the visibility timeout.
        "unacked_restore_interval": max(1, min(10, settings.broker_visibility_timeout_s // 4)),
        "unacked_restore_throttle": 1,
    }
