"""The task a worker runs: take a check id, run it through the core, write its report.

The task is thin; what it does is :func:`verifier.delivery.execution.execute_check`, under the hard
time limit of workers/watchdog.py. Torch is imported inside the task, so importing this module
(as the worker app does) loads no torch.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import OperationalError

from verifier.delivery.celery import RUN_CHECK_TASK
from verifier.delivery.execution import ClaimPolicy, CoreCheck, execute_check
from workers.watchdog import hard_time_limit

if TYPE_CHECKING:
    from workers.app import WorkerApp

logger = logging.getLogger(__name__)

DATABASE_RETRIES = 5
RETRY_BACKOFF_S = 1
RETRY_BACKOFF_MAX_S = 60


def core_check(expression: str, **options: Any) -> Mapping[str, Any]:
    """The core's report for one check, as a dict (imports torch on first use)."""
    from verifier.core.check import check

    report = check(expression, **options)
    result: Mapping[str, Any] = report.to_dict()
    return result


def register_tasks(app: WorkerApp, core: CoreCheck = core_check) -> None:
    """Register the check task on ``app`` under its shared name, running ``core``."""

    @app.task(name=RUN_CHECK_TASK, bind=True, max_retries=DATABASE_RETRIES, ignore_result=True)
    def run_check(task: Any, check_id: str, takes_over: str | None = None) -> str | None:
        """Run the stored check ``check_id`` and write its report.

        ``takes_over`` is set on a retry: the token of the execution that failed on a
        database error, whose claim this one takes back at once.
        """
        settings = app.settings
        policy = ClaimPolicy(max_attempts=settings.max_attempts)
        # A token per execution: a redelivered message (its worker died, or the broker's
        # visibility timeout ran out while the check still runs) waits for the claim's lease.
        claim_token = str(uuid.uuid4())
        with hard_time_limit(settings.check_time_limit_s, f"check {check_id}"):
            # Budgets within the hard limit: a slow check ends as a clean `error: ... timeout`.
            budgeted = functools.partial(
                core,
                symbolic_timeout_s=settings.symbolic_timeout_s,
                reference_timeout_s=settings.reference_timeout_s,
            )
            try:
                verdict = execute_check(
                    app.sessions,
                    uuid.UUID(check_id),
                    budgeted,
                    policy,
                    claim_token=claim_token,
                    takes_over=takes_over,
                    renewer=app.renewer,
                )
            except OperationalError as error:
                # A database that is briefly away: try again later rather than lose the check.
                countdown = get_exponential_backoff_interval(
                    RETRY_BACKOFF_S, task.request.retries, RETRY_BACKOFF_MAX_S, full_jitter=True
                )
                logger.warning("check %s: database error, retrying in %s s", check_id, countdown)
                raise task.retry(
                    exc=error,
                    countdown=countdown,
                    args=[check_id],
                    kwargs={"takes_over": claim_token},
                ) from error
        logger.info("check %s: %s", check_id, verdict)
        return verdict
