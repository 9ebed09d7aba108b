"""The task a worker runs: take a check id (or a chunk of them), run each through the core,
write its report.

The task is thin; what it does is :func:`verifier.delivery.execution.execute_checks`, each check
under the hard time limit of workers/watchdog.py. Torch is imported inside the task, so
importing this module (as the worker app does) loads no torch. Its lines per check
(``check_claimed``, ``check_finished``) are logged at ``worker_check_log_level`` (DEBUG by
default, and then not even formatted).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from celery.exceptions import Retry
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import OperationalError

from verifier.delivery.celery import RUN_CHECK_TASK
from verifier.delivery.execution import (
    Budgets,
    ClaimPolicy,
    CoreCheck,
    Executed,
    Progress,
    execute_checks,
)
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
    """The core of one task run, logging each check it is called for (the core is called
    only once this execution holds the check's claim, so its call marks the claim)."""

    def __init__(self, core: CoreCheck, level: int):
        self.core = core
        self.level = level

    def __call__(
        self, expression: str, *, at: Sequence[Mapping[str, Any]] | None, options: CheckOptions
    ) -> Mapping[str, Any]:
        if logger.isEnabledFor(self.level):
            logger.log(
                self.level,
                "check claimed: %s in %s",
                expression[:200],
                options.dtype.name,
                extra={"event": "check_claimed", "dtype": options.dtype.name},
            )
        return self.core(expression, at=at, options=options)


def register_tasks(app: WorkerApp, core: CoreCheck = core_check) -> None:
    """Register the check task on ``app`` under its shared name, running ``core``."""

    @app.task(name=RUN_CHECK_TASK, bind=True, max_retries=DATABASE_RETRIES, ignore_result=True)
    def check_task(
        task: Any, check_id: str | list[str], takes_over: str | None = None
    ) -> str | None:
        """Run the stored check ``check_id`` (or each of a chunk, a list of ids, in order)
        and write its report.

        ``takes_over`` is set on a retry: the token of the execution that failed on a
        database error, whose claims this one takes back at once.
        """
        check_ids = [check_id] if isinstance(check_id, str) else [str(one) for one in check_id]
        verdicts = _run(task, app, core, check_ids, takes_over)
        return verdicts[-1] if verdicts else None


def _run(
    task: Any, app: WorkerApp, core: CoreCheck, check_ids: list[str], takes_over: str | None
) -> list[str | None]:
    settings = app.settings
    policy = ClaimPolicy(max_attempts=settings.max_attempts)
    level = logging.INFO if settings.worker_check_log_level == "info" else logging.DEBUG
    # A token per execution: a redelivered message (its worker died, or the broker's
    # visibility timeout ran out while the check still runs) waits for the claim's lease.
    claim_token = str(uuid.uuid4())
    # Budgets within the hard limit: a slow check ends as a clean `error: ... timeout`.
    budgets = Budgets(settings.symbolic_timeout_s, settings.reference_timeout_s)
    progress = Progress()

    @contextmanager
    def watch(check_id: uuid.UUID) -> Iterator[None]:
        # The job's id joins the context once the check is claimed (execute_checks binds it).
        with log_context(check_id=str(check_id)):
            with hard_time_limit(settings.check_time_limit_s, f"check {check_id}"):
                yield

    try:
        execute_checks(
            app.sessions,
            [uuid.UUID(check_id) for check_id in check_ids],
            Observed(core, level),
            policy,
            claim_token,
            takes_over,
            app.renewer,
            budgets,
            progress,
            watch,
        )
    except OperationalError as error:
        _observed(progress.done, level)
        left = check_ids[len(progress.done) :]
        with log_context(check_id=left[0]):
            _retry(task, app, left, claim_token, error)
    _observed(progress.done, level)
    return [done.verdict for done in progress.done]


def _retry(
    task: Any, app: WorkerApp, left: list[str], claim_token: str, error: OperationalError
) -> None:
    """Retry the checks ``left`` after a database error, taking this execution's claims back;
    give them back to the reconciler if no retry can be published."""
    found = metrics.current()
    if found is not None:
        found.task_failures.inc()
    # A database that is briefly away: try again later rather than lose the check.
    countdown = get_exponential_backoff_interval(
        RETRY_BACKOFF_S, task.request.retries, RETRY_BACKOFF_MAX_S, full_jitter=True
    )
    logger.warning(
        "check %s: database error, retrying in %s s",
        left[0] if len(left) == 1 else f"{left[0]} and {len(left) - 1} more",
        countdown,
        extra={"event": "check_retry", "countdown_s": countdown},
    )
    try:
        raise task.retry(
            exc=error,
            countdown=countdown,
            args=[left[0] if len(left) == 1 else left],
            kwargs={"takes_over": claim_token},
        ) from error
    except Retry:
        raise  # the retry's message is in the broker
    except BaseException:
        # No retry message: the broker refused it (down, its disk full: Celery rejects this
        # delivery), or the retries ran out. Without a message the check would wait
        # requeue_after_s for the reconciler; given back, its next pass.
        logger.error(
            "check %s: its retry could not be published; giving it back to the reconciler",
            left[0] if len(left) == 1 else f"{left[0]} and {len(left) - 1} more",
            extra={"event": "check_retry_dropped"},
        )
        for check_id in left:
            app.renewer.give_back(uuid.UUID(check_id), claim_token)
        raise


def _observed(executed: list[Executed], level: int) -> None:
    """Count each check in the worker's metrics and log its end (at ``level``)."""
    found = metrics.current()
    logs = logger.isEnabledFor(level)
    for done in executed:
        if found is not None:
            found.observe(done.verdict, done.document, done.seconds)
        if logs:
            job_id = None if done.job_id is None else str(done.job_id)
            with log_context(check_id=str(done.check_id), job_id=job_id):
                _log_end(done, level)


def _log_end(done: Executed, level: int) -> None:
    document = done.document or {}
    if done.verdict is None:
        logger.log(
            level,
            "check %s: not run here (another execution holds it, or it is gone)",
            done.check_id,
            extra={"event": "check_skipped"},
        )
        return
    logger.log(
        level,
        "check %s: %s in %.3f s",
        done.check_id,
        done.verdict,
        done.seconds,
        extra={
            "event": "check_finished",
            "verdict": done.verdict,
            "duration_s": round(done.seconds, 6),
            "dtype": document.get("dtype"),
            "device": document.get("device"),
            "reason": document.get("reason"),
        },
    )
