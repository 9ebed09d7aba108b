"""Running stored checks: claim each, call the core, write its report, finish the job.

This is what a worker task does, kept free of Celery so it can be tested directly
(docs/delivery.md has the whole story). The claim is a conditional update that counts the
attempt and returns what the check needs, committed before the core runs; while the core runs,
a heartbeat renews the claim's lease, so the claim of a worker killed mid-check runs out soon
after, and the check runs again; past ``max_attempts`` the check ends as ``error: gave up after
N attempts``; the report is written only while this execution still owns the check, with an
insert that ignores a duplicate, in the transaction that counts it in its job (and finishes the
job when it is the last), so running twice writes one report.

A task may carry several checks of a job (a chunk, :func:`execute_checks`): each is claimed,
run and reported on its own, one after another, and the report of one is committed in the
same transaction as the claim of the next, so a chunk costs one transaction per check. Only
statements built once on the tables run here; no ORM object is made.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
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
from verifier.store.claims import ClaimedCheck
from verifier.store.documents import ReportValues, ReportView, report_values
from verifier.store.documents import report_row as report_row  # the ORM form, for tests
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


def stored_options(check: Check | ClaimedCheck, budgets: Budgets | None = None) -> CheckOptions:
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


FunctionNames = Callable[[], Sequence[str]]
"""The names of the functions a check calls, read only when an error report needs them."""


def error_document(
    check: Check | ClaimedCheck, reason: str, functions: FunctionNames | None = None
) -> dict[str, Any]:
    """A report in the core's format for a check that could not run (``functions``: where
    its function names come from; a :class:`Check`'s own rows if None)."""
    tolerance = {"rtol": check.rtol, "atol": check.atol}
    names = (
        functions()
        if functions is not None
        else [function.function for function in getattr(check, "functions", [])]
    )
    return CoreReport(
        expression=check.expression,
        variables=list(check.variables),
        dtype=check.dtype,
        device=check.device,
        verdict=Verdict.ERROR,
        reason=reason,
        fail_on=check_fail_on(check.fail_on, strict=check.strict),
        tolerance={name: value for name, value in tolerance.items() if value is not None},
        functions=sorted(names),
    ).to_dict()


def run_core(
    check: Check | ClaimedCheck,
    core: CoreCheck,
    budgets: Budgets | None = None,
    functions: FunctionNames | None = None,
) -> dict[str, Any]:
    """The core's report for ``check``; bad input or a crash becomes an ``error`` report."""
    try:
        options = stored_options(check, budgets)
        return dict(core(check.expression, at=check.points or None, options=options))
    except InputError as error:
        return error_document(check, f"invalid input: {error}", functions)
    except MemoryError:
        logger.warning("check %s ran out of memory", check.id)
        return error_document(
            check, "resource limit: out of memory (worker_memory_bytes)", functions
        )
    except Exception as error:  # the core must not take the worker down with it
        logger.exception("check %s crashed in the core", check.id)
        return error_document(check, f"internal error: {type(error).__name__}: {error}", functions)


def passes(check: Check | ClaimedCheck, row: StoredReport | ReportValues) -> bool:
    """Whether the report ``row`` passes its check's fail-on policy."""
    if isinstance(row, ReportValues):
        view = row.view
    else:
        view = ReportView.read(row.document, row.verdict)
    outcome = read_outcome(view, None, fail_on=check.fail_on, strict=check.strict)
    return outcome.passed


@dataclass
class Executed:
    """What an execution did with one check of its chunk: its verdict (None: not run here,
    another execution holds it or it is gone), the report it wrote and its seconds."""

    check_id: uuid.UUID
    verdict: str | None
    document: Mapping[str, Any] | None = None
    seconds: float = 0.0
    job_id: uuid.UUID | None = None


@dataclass
class Progress:
    """How far a chunk got: ``done`` holds each check whose outcome is committed, in order;
    the checks after them are left (to a retry, or to be given back). A report waits in
    ``pending`` until the transaction of the next check's claim commits it."""

    done: list[Executed] = field(default_factory=list)
    pending: Executed | None = None
    running_jobs: set[uuid.UUID] = field(default_factory=set)
    """The jobs this execution marked running already (a chunk marks its job once)."""

    def committed(self) -> None:
        """The transaction holding the pending report committed."""
        if self.pending is not None:
            self.done.append(self.pending)
            self.pending = None


Watch = Callable[[uuid.UUID], AbstractContextManager[Any]]
"""What a worker wraps around each check of a chunk (its hard time limit, its log context)."""


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
    progress = Progress()
    execute_checks(
        sessions, [check_id], core, policy, claim_token, takes_over, renewer, budgets, progress
    )
    return progress.done[0].verdict if progress.done else None


def execute_checks(
    sessions: sessionmaker[Session],
    check_ids: Sequence[uuid.UUID],
    core: CoreCheck,
    policy: ClaimPolicy | None = None,
    claim_token: str | None = None,
    takes_over: str | None = None,
    renewer: LeaseRenewer | None = None,
    budgets: Budgets | None = None,
    progress: Progress | None = None,
    watch: Watch | None = None,
) -> list[Executed]:
    """Run each stored check of ``check_ids`` once, in order, if this execution can claim it.

    The arguments are :func:`execute_check`'s; one ``claim_token`` serves the whole chunk, and
    ``takes_over`` takes back any check of it that the failed execution held. ``progress``
    collects each check as its outcome is committed (a caller that meets a database error
    knows from it which checks are left); ``watch`` is entered around each check. Returns
    what happened to each check.
    """
    policy = policy or ClaimPolicy()
    progress = progress if progress is not None else Progress()
    if renewer is None:
        with closing(LeaseRenewer(sessions, DEFAULT_CLAIM_LEASE_S)) as own:
            return execute_checks(
                sessions,
                check_ids,
                core,
                policy,
                claim_token,
                takes_over,
                own,
                budgets,
                progress,
                watch,
            )
    token = claim_token or str(uuid.uuid4())
    watch = watch or _unwatched
    last = len(check_ids) - 1
    with sessions() as session:
        for index, check_id in enumerate(check_ids):
            with watch(check_id):
                _execute_one(
                    session,
                    check_id,
                    core,
                    policy,
                    token,
                    takes_over,
                    renewer,
                    budgets,
                    progress,
                    commit_report=index == last,
                )
    return progress.done


def _unwatched(_check_id: uuid.UUID) -> AbstractContextManager[None]:
    return nullcontext()


def _execute_one(
    session: Session,
    check_id: uuid.UUID,
    core: CoreCheck,
    policy: ClaimPolicy,
    claim_token: str,
    takes_over: str | None,
    renewer: LeaseRenewer,
    budgets: Budgets | None,
    progress: Progress,
    *,
    commit_report: bool,
) -> None:
    """Claim, run and report one check; its claim's transaction also commits the report of
    the check before it, and its own report is committed now (``commit_report``) or by the
    next check's claim."""
    now = utc_now()
    claimed = claims.claim(
        session,
        check_id,
        claim_token,
        now,
        now + timedelta(seconds=renewer.lease_s),
        takes_over,
        progress.running_jobs,
    )
    found = claims.unclaimed(session, check_id) if claimed is None else None
    # End the transaction before the core runs: on SQLite an open one holds the write lock,
    # and the claim must be seen by the heartbeat and by other deliveries.
    session.commit()
    progress.committed()
    if claimed is None:
        progress.done.append(_not_claimed(check_id, found))
        return
    bind(job_id=str(claimed.job_id))  # every later log line of this check names its job
    started = time.perf_counter()
    with renewer.holding(check_id, claim_token):
        names = _names_of(session, check_id)
        if claimed.attempt > policy.max_attempts:
            reason = gave_up_reason(policy.max_attempts)
            logger.error("check %s: %s", check_id, reason)
            document = error_document(claimed, reason, names)
        else:
            document = run_core(claimed, core, budgets, names)
        values = report_values(check_id, claimed.job_id, claimed.dtype, claimed.device, document)
        values = replace(values, passed=passes(claimed, values))
        if not claims.finish(session, values, claim_token, utc_now()):
            logger.warning("check %s: claim lost while running; its result is dropped", check_id)
            session.rollback()
            progress.done.append(
                Executed(check_id, None, None, time.perf_counter() - started, claimed.job_id)
            )
            return
        progress.pending = Executed(
            check_id, values.verdict, document, time.perf_counter() - started, claimed.job_id
        )
        if commit_report:
            session.commit()
            progress.committed()


def _not_claimed(check_id: uuid.UUID, found: tuple[uuid.UUID, str | None] | None) -> Executed:
    """A check this execution could not claim: gone, held by another, or already reported."""
    if found is None:
        logger.warning("check %s does not exist (its job was deleted?)", check_id)
        return Executed(check_id, None)
    job_id, verdict = found
    bind(job_id=str(job_id))
    if verdict is None:
        logger.info("check %s is held by another execution; leaving it", check_id)
        return Executed(check_id, None, job_id=job_id)
    # Already reported (a redelivered message); the report's writer counted it in its job in
    # the same transaction.
    logger.info("check %s already has a report; not running it again", check_id)
    return Executed(check_id, verdict, job_id=job_id)


def _names_of(session: Session, check_id: uuid.UUID) -> FunctionNames:
    """The function names of a check, read when an error report asks (its own short
    transaction, ended at once)."""

    def names() -> list[str]:
        try:
            return claims.function_names(session, check_id)
        finally:
            session.commit()

    return names
