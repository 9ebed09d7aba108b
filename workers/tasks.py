"""The task a worker runs: take a check id, run it through the core, write its report.

The task is thin; what it does is :func:`verifier.delivery.execution.execute_check`, under the hard
time limit of workers/watchdog.py. Torch is imported inside the task, so importing this module
(as the worker app does) loads no torch.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celery.exceptions import Retry
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import OperationalError

from verifier.delivery.celery import RUN_CHECK_TASK
from verifier.delivery.execution import Budgets, ClaimPolicy, CoreCheck, execute_check
from verifier.delivery.logs import log_context
from workers import metrics
from workers.watchdog import hard_time_limit

if TYPE_CHECKING:
    from verifier.core.options import CheckOptions
    from workers.app import WorkerApp

logger = logging.getLogger(__name__)

DATABASE_RETRIES = 5
RETRY_BACKOFF_S = 1
RETRY_BACKOFF_MAX_S = 60


def core_check(
    expression: str, *, at: Sequence[Mapping[str, Any]] | None, options: CheckOptions
) -> Mapping[str, Any]:
    """The core's report for one check, as a dict (imports torch on first use)."""
    from verifier.core.check import check
    from verifier.core.exact.sandbox import thread_sandbox

    sandbox = thread_sandbox().pid
    report = check(expression, at, options=options)
    # The entries stay columns until the report is stored (report_row encodes them as such).
    result: Mapping[str, Any] = report.document()
    if sandbox is not None and thread_sandbox().pid != sandbox:
        # The check ended its sandbox process (a timeout or a crash): the next starts anew.
        found = metrics.current()
        if found is not None:
            found.sandbox_restarts.inc()
    return result


class Observed:
    """The core of one task run, remembering the report it returned; the core is called
    only once this execution holds the check's claim, so its call marks the claim."""

    def __init__(self, core: CoreCheck, check_id: str):
        self.core = core
        self.check_id = check_id
        self.document: Mapping[str, Any] | None = None

    def __call__(
        self, expression: str, *, at: Sequence[Mapping[str, Any]] | None, options: CheckOptions
    ) -> Mapping[str, Any]:
        logger.info(
            "check %s claimed: %s in %s",
            self.check_id,
            expression[:200],
            options.dtype.name,
            extra={"event": "check_claimed", "dtype": options.dtype.name},
        )
        self.document = self.core(expression, at=at, options=options)
        return self.document


def register_tasks(app: WorkerApp, core: CoreCheck = core_check) -> None:
    """Register the check task on ``app`` under its shared name, running ``core``."""

    @app.task(name=RUN_CHECK_TASK, bind=True, max_retries=DATABASE_RETRIES, ignore_result=True)
    def check_task(task: Any, check_id: str, takes_over: str | None = None) -> str | None:
        """Run the stored check ``check_id`` and write its report.

        ``takes_over`` is set on a retry: the token of the execution that failed on a
        database error, whose claim this one takes back at once.
        """
        # The job's id joins the context once the check is read (execute_check binds it).
        with log_context(check_id=check_id):
            return _run(task, app, core, check_id, takes_over)


def _run(
    task: Any, app: WorkerApp, core: CoreCheck, check_id: str, takes_over: str | None
) -> str | None:
    settings = app.settings
    policy = ClaimPolicy(max_attempts=settings.max_attempts)
    # A token per execution: a redelivered message (its worker died, or the broker's
    # visibility timeout ran out while the check still runs) waits for the claim's lease.
    claim_token = str(uuid.uuid4())
    started = time.perf_counter()
    observed = Observed(core, check_id)
    with hard_time_limit(settings.check_time_limit_s, f"check {check_id}"):
        # Budgets within the hard limit: a slow check ends as a clean `error: ... timeout`.
        budgets = Budgets(settings.symbolic_timeout_s, settings.reference_timeout_s)
        try:
            verdict = execute_check(
                app.sessions,
                uuid.UUID(check_id),
                observed,
                policy,
                claim_token=claim_token,
                takes_over=takes_over,
                renewer=app.renewer,
                budgets=budgets,
            )
        except OperationalError as error:
            found = metrics.current()
            if found is not None:
                found.task_failures.inc()
            # A database that is briefly away: try again later rather than lose the check.
            countdown = get_exponential_backoff_interval(
                RETRY_BACKOFF_S, task.request.retries, RETRY_BACKOFF_MAX_S, full_jitter=True
            )
            logger.warning(
                "check %s: database error, retrying in %s s",
                check_id,
                countdown,
                extra={"event": "check_retry", "countdown_s": countdown},
            )
            try:
                raise task.retry(
                    exc=error,
                    countdown=countdown,
                    args=[check_id],
                    kwargs={"takes_over": claim_token},
                ) from error
            except Retry:
                raise  # the retry's message is in the broker
            except BaseException:
                # No retry message: the broker refused it (down, its disk full: Celery
                # rejects this delivery), or the retries ran out. Without a message the check
                # would wait requeue_after_s for the reconciler; given back, its next pass.
                logger.error(
                    "check %s: its retry could not be published; giving it back to the reconciler",
                    check_id,
                    extra={"event": "check_retry_dropped"},
                )
                app.renewer.give_back(uuid.UUID(check_id), claim_token)
                raise
    seconds = time.perf_counter() - started
    document = observed.document
    found = metrics.current()
    if found is not None:
        found.observe(verdict, document, seconds)
    if verdict is None:
        logger.info(
            "check %s: not run here (another execution holds it, or it is gone)",
            check_id,
            extra={"event": "check_skipped"},
        )
        return None
    logger.info(
        "check %s: %s in %.3f s",
        check_id,
        verdict,
        seconds,
        extra={
            "event": "check_finished",
            "verdict": verdict,
            "duration_s": round(seconds, 6),
            "dtype": (document or {}).get("dtype"),
            "device": (document or {}).get("device"),
            "reason": (document or {}).get("reason"),
        },
    )
    return verdict
