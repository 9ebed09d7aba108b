"""The reconciler: finds checks that nobody will run and publishes them again.

A check can be stranded three ways: its message never reached the broker (the broker was down
at submission), the broker lost it (a restart without persistence, a flush), or the worker that
claimed it died. Each pass (:func:`reconcile_once`) releases claims whose lease expired, then
re-publishes queued checks that were never sent, and those sent more than ``requeue_after_s``
ago whose message the broker no longer holds (:meth:`Sender.held`, reading at most
``MAX_MESSAGES_READ`` messages: a check waiting in line is not sent again). It also finishes
jobs whose every check has a report but whose last writer died before it could finish the job.
Publishing twice is harmless: a worker runs only a check it can claim (docs/delivery.md).

It runs as a thread of every API process (:class:`Reconciler`, every ``requeue_interval_s``)
and, for a fleet without an API nearby, as ``derivcheck reconcile``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from verifier.config import Settings
from verifier.delivery.sender import Sender, send_checks
from verifier.store import claims
from verifier.store.models import Check, utc_now

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
STOP_TIMEOUT_S = 10.0
MAX_MESSAGES_READ = 10_000
"""Messages one pass reads from the broker to tell a waiting check from a lost one; past it,
the checks not read are taken as waiting (a log line says so)."""

REPUBLISHED = Counter(
    "derivcheck_reconciler_republished_checks",
    "Checks the reconciler of this process published again (never sent, lost, or left by a "
    "dead worker)",
    registry=None,
)
"""Exported by the API's ``/metrics`` (verifier/api/metrics.py); registered nowhere else."""


def reconcile_once(session: Session, sender: Sender, settings: Settings) -> int:
    """One pass: release expired claims, re-publish stranded checks; how many were sent."""
    now = utc_now()
    released = claims.release_expired_claims(session, now, BATCH_SIZE)
    session.commit()
    if released:
        logger.warning("released %d checks whose worker stopped answering", released)
    finished = 0
    for job_id in claims.jobs_with_every_report(session, BATCH_SIZE):
        finished += claims.finish_job_if_complete(session, job_id, now)
    session.commit()
    if finished:
        logger.warning("finished %d jobs whose last writer stopped answering", finished)
    cutoff = now - timedelta(seconds=settings.requeue_after_s)
    stranded = list(claims.unfinished_checks(session, cutoff, BATCH_SIZE))
    checks = lost_checks(stranded, sender)
    sent = send_checks(session, sender, checks) if checks else 0
    session.commit()  # ends the transaction that locked the rows read (PostgreSQL)
    REPUBLISHED.inc(sent)
    if released or finished or checks:
        logger.info(
            "reconciled: released %d claims, finished %d jobs, re-published %d of %d checks "
            "(%d still waiting in the broker)",
            released,
            finished,
            sent,
            len(checks),
            len(stranded) - len(checks),
            extra={
                "event": "reconcile",
                "released": released,
                "finished": finished,
                "republished": sent,
                "check_ids": [str(check.id) for check in checks[:20]],
            },
        )
    return sent


def lost_checks(checks: Sequence[Check], sender: Sender) -> list[Check]:
    """Of queued ``checks``, those to publish: the never sent, and the sent whose message the
    broker holds neither in their queue nor taken by a worker (all of them sent, when the
    broker cannot tell)."""
    sent_before = [check for check in checks if check.enqueued_at is not None]
    if not sent_before:
        return list(checks)
    queues = sorted({check.queue for check in sent_before})
    held = sender.held(queues, MAX_MESSAGES_READ)
    if held is None:
        return list(checks)
    if not held.complete:
        logger.warning(
            "the broker holds more than %d messages in %s: the %d checks sent before and not "
            "among them are taken as waiting, not lost",
            MAX_MESSAGES_READ,
            ", ".join(queues),
            sum(check.id not in held.check_ids for check in sent_before),
            extra={"event": "reconcile_partial_read", "read": held.read},
        )
        return [check for check in checks if check.enqueued_at is None]
    return [
        check for check in checks if check.enqueued_at is None or check.id not in held.check_ids
    ]


class Reconciler:
    """Runs :func:`reconcile_once` every ``requeue_interval_s`` until stopped."""

    def __init__(self, sessions: sessionmaker[Session], sender: Sender, settings: Settings):
        self._sessions = sessions
        self._sender = sender
        self._settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="derivcheck-reconcile", daemon=True)

    def start(self) -> None:
        """Run the loop in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for its thread, if any."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_TIMEOUT_S)

    def run(self, passes: int | None = None) -> None:
        """Reconcile now and then every interval, ``passes`` times (None: until stopped)."""
        done = 0
        while passes is None or done < passes:
            self.run_pass()
            done += 1
            if (passes is None or done < passes) and self._stop.wait(
                self._settings.requeue_interval_s
            ):
                return

    def run_pass(self) -> int:
        """One pass; an outage of the database or broker is logged, not raised."""
        try:
            with self._sessions() as session:
                count = reconcile_once(session, self._sender, self._settings)
        except Exception:  # the loop must outlive a database or broker outage
            logger.exception("reconciling unfinished checks failed")
            return 0
        if count:
            logger.warning("re-published %d unfinished checks", count)
        return count
