"""Running one stored check: claim it, call the core, write its report, finish the job.

This is what a worker task does, kept free of Celery so it can be tested directly. Each step
commits on its own (docs/delivery.md has the whole story): the claim is a conditional
update that counts the attempt; while the core runs, a heartbeat renews the claim's lease, so
the claim of a worker killed mid-check runs out soon after, and the check runs again; past
``max_attempts`` the check ends as ``error: gave up after N attempts``; the report is written
only while this execution still owns the check, with an insert that ignores a duplicate, so
running twice writes one report; the job is finished in a separate transaction after the
report's commit, so the last report's writer sees all of them.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from verifier.config import DEFAULT_CLAIM_LEASE_S
from verifier.core.exact.sandbox import DEFAULT_SYMBOLIC_TIMEOUT_S
from verifier.core.judge.report import Report as CoreReport
from verifier.core.judge.verdict import Verdict
from verifier.core.options import STORED_OPTIONS, CheckOptions
from verifier.delivery.logs import bind
from verifier.errors import InputError
from verifier.store import claims
from verifier.store.documents import ReportView, report_row
from verifier.store.models import Check, StoredReport, utc_now
from verifier.store.outcome import check_fail_on, read_outcome

logger = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 3


class CoreCheck(Protocol):
    """The core's check of one stored check: its report as a dict (``Report.document()``)."""

    def __call__(
        self, expression: str, *, at: Sequence[Mapping[str, Any]] | None, options: CheckOptions
    ) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Budgets:
    """The time a worker gives a check's symbolic and reference phases, within its hard
    time limit (``Settings.symbolic_timeout_s`` and ``Settings.reference_timeout_s``)."""

    symbolic_timeout_s: float = DEFAULT_SYMBOLIC_TIMEOUT_S
    reference_timeout_s: float | None = None


@dataclass(frozen=True)
class ClaimPolicy:
    """How many attempts a check gets (from Settings)."""

    max_attempts: int = 3


class LeaseRenewer:
    """The heartbeat of the claims a process holds: a claim holds ``lease_s`` unrenewed, and
    one thread renews all of them every third of it, so a lease that lapses belongs to a dead
    or frozen worker.

    It also gives checks back (:meth:`give_back`) whose retry could not be published, and
    keeps trying while the database is away too."""

    def __init__(self, sessions: sessionmaker[Session], lease_s: float):
        self.lease_s = lease_s
        self._sessions = sessions
        self._held: dict[uuid.UUID, str] = {}
        self._to_give_back: dict[uuid.UUID, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        """Start the heartbeat's thread, once (the caller holds the lock)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
            self._thread.start()

    @contextmanager
    def holding(self, check_id: uuid.UUID, claim_token: str) -> Iterator[None]:
        """Keep ``claim_token``'s claim on ``check_id`` renewed while the block runs."""
        with self._lock:
            self._held[check_id] = claim_token
            self._start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(check_id, None)

    def give_back(self, check_id: uuid.UUID, claim_token: str) -> bool:
        """Make ``check_id`` re-sendable at the reconciler's next pass (queued, unsent, and
        ``claim_token``'s claim, if any, given up): for an execution whose retry message could
        not be published, so that the check does not wait ``requeue_after_s``. Written now if
        the database answers (True), else at each heartbeat until it does (False)."""
        if self._give_back(check_id, claim_token):
            return True
        with self._lock:
            self._to_give_back[check_id] = claim_token
            self._start()
        return False

    def _give_back(self, check_id: uuid.UUID, claim_token: str) -> bool:
        try:
            with self._sessions() as session:
                claims.release_for_resend(session, check_id, claim_token)
                session.commit()
        except Exception:  # the database is away too: the heartbeat tries again
            logger.warning(
                "check %s: could not mark it for re-sending; trying again", check_id, exc_info=True
            )
            return False
        logger.warning(
            "check %s: marked for re-sending at the reconciler's next pass",
            check_id,
            extra={"event": "check_given_back"},
        )
        return True

    def close(self) -> None:
        """Stop renewing (the claims still held then lapse after their lease)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.lease_s)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_s / RENEWALS_PER_LEASE):
            with self._lock:
                held = list(self._held.items())
                to_give_back = list(self._to_give_back.items())
            if held:
                self._renew(held)
            for check_id, claim_token in to_give_back:
                if self._give_back(check_id, claim_token):
                    with self._lock:
                        if self._to_give_back.get(check_id) == claim_token:
                            del self._to_give_back[check_id]

    def _renew(self, held: list[tuple[uuid.UUID, str]]) -> None:
        until = utc_now() + timedelta(seconds=self.lease_s)
        try:
            with self._sessions() as session:
                lost = [
                    (check_id, claim_token)
                    for check_id, claim_token in held
                    if not claims.renew_claim(session, check_id, claim_token, until)
                ]
                session.commit()
        except Exception:  # a database outage: the report write will meet it too
            logger.warning("could not renew the claims of %d checks", len(held), exc_info=True)
            return
        # Finished a moment ago, or taken over (whose execution then drops its result).
        with self._lock:
            for check_id, claim_token in lost:
                if self._held.get(check_id) == claim_token:
                    del self._held[check_id]


def gave_up_reason(max_attempts: int) -> str:
    """The reason of the error report of a check that used up its attempts."""
    return f"gave up after {max_attempts} attempts"


def stored_options(check: Check, budgets: Budgets | None = None) -> CheckOptions:
    """The core's options of a stored check, with a worker's time ``budgets``.

    Raises:
        OptionError: a stored option the core refuses (the API refuses it first, through the
            same :meth:`CheckOptions.of`).
    """
    budgets = budgets or Budgets()
    return CheckOptions.from_stored(
        {name: getattr(check, name) for name in STORED_OPTIONS},
        symbolic_timeout_s=budgets.symbolic_timeout_s,
        reference_timeout_s=budgets.reference_timeout_s,
    )


def error_document(check: Check, reason: str) -> dict[str, Any]:
    """A report in the core's format for a check that could not run."""
    tolerance = {"rtol": check.rtol, "atol": check.atol}
    return CoreReport(
        expression=check.expression,
        variables=list(check.variables),
        dtype=check.dtype,
        device=check.device,
        verdict=Verdict.ERROR,
        reason=reason,
        fail_on=check_fail_on(check.fail_on, strict=check.strict),
        tolerance={name: value for name, value in tolerance.items() if value is not None},
        functions=sorted(function.function for function in check.functions),
    ).to_dict()


def run_core(check: Check, core: CoreCheck, budgets: Budgets | None = None) -> dict[str, Any]:
    """The core's report for ``check``; bad input or a crash becomes an ``error`` report."""
    try:
        options = stored_options(check, budgets)
        return dict(core(check.expression, at=check.points or None, options=options))
    except InputError as error:
        return error_document(check, f"invalid input: {error}")
    except MemoryError:
        logger.warning("check %s ran out of memory", check.id)
        return error_document(check, "resource limit: out of memory (worker_memory_bytes)")
    except Exception as error:  # the core must not take the worker down with it
        logger.exception("check %s crashed in the core", check.id)
        return error_document(check, f"internal error: {type(error).__name__}: {error}")


def passes(check: Check, row: StoredReport) -> bool:
    """Whether the report ``row`` passes its check's fail-on policy."""
    view = ReportView.read(row.document, row.verdict)
    outcome = read_outcome(view, None, fail_on=check.fail_on, strict=check.strict)
    return outcome.passed


def execute_check(
    sessions: sessionmaker[Session],
    check_id: uuid.UUID,
    core: CoreCheck,
    policy: ClaimPolicy | None = None,
    claim_token: str | None = None,
    takes_over: str | None = None,
    renewer: LeaseRenewer | None = None,
    budgets: Budgets | None = None,
) -> str | None:
    """Run the stored check ``check_id`` once if this execution can claim it.

    ``claim_token`` is this execution's token (a fresh one if None); ``takes_over`` the token of an
    earlier execution of the same delivery that failed on a database error, whose claim this
    one takes back at once; ``renewer`` the process's heartbeat, whose lease the claim gets
    (one of its own with ``DEFAULT_CLAIM_LEASE_S`` if None); ``budgets`` the time the core's
    phases get.
    Returns the verdict of the check's report (existing or new); None when the check does not
    exist or another execution holds it under a live claim.
    """
    policy = policy or ClaimPolicy()
    if renewer is None:
        with closing(LeaseRenewer(sessions, DEFAULT_CLAIM_LEASE_S)) as own:
            return execute_check(
                sessions, check_id, core, policy, claim_token, takes_over, own, budgets
            )
    claim_token = claim_token or str(uuid.uuid4())
    with sessions() as session:
        now = utc_now()
        attempt = claims.claim_check(
            session,
            check_id,
            claim_token,
            now,
            now + timedelta(seconds=renewer.lease_s),
            takes_over,
        )
        check = session.get(Check, check_id)  # its report is read only if it has one already
        # End the transaction before the core runs: on SQLite an open one holds the write lock.
        session.commit()
        if check is None:
            logger.warning("check %s does not exist (its job was deleted?)", check_id)
            return None
        bind(job_id=str(check.job_id))  # every later log line of this check names its job
        if attempt is None:
            if check.report is None:
                logger.info("check %s is held by another execution; leaving it", check_id)
                return None
            # Already reported (a redelivered message); the report's writer counted it in its
            # job in the same transaction.
            logger.info("check %s already has a report; not running it again", check_id)
            return check.report.verdict
        with renewer.holding(check_id, claim_token):
            return _run_owned(session, check, core, policy, attempt, claim_token, budgets)


def _run_owned(
    session: Session,
    check: Check,
    core: CoreCheck,
    policy: ClaimPolicy,
    attempt: int,
    claim_token: str,
    budgets: Budgets | None,
) -> str | None:
    """Run a claimed check and write its report; None if the claim was lost meanwhile."""
    check_id = check.id
    if attempt > policy.max_attempts:
        logger.error("check %s: %s", check_id, gave_up_reason(policy.max_attempts))
        document = error_document(check, gave_up_reason(policy.max_attempts))
    else:
        document = run_core(check, core, budgets)
    row = report_row(check, document)
    if not claims.finish_check(session, row, claim_token, utc_now(), passed=passes(check, row)):
        logger.warning("check %s: claim lost while running; its result is dropped", check_id)
        session.rollback()
        return None
    session.commit()
    return row.verdict
