"""The queue's seam: what the service needs of a broker, and sending checks through it.

:class:`Sender` is the whole interface between the service and a broker; the Celery one is
:class:`verifier.delivery.celery.CelerySender`, and :class:`InMemorySender` stands in for a
broker where the queue is not what is being tested. A new broker is one more implementation.

A message carries one check, or a chunk of consecutive checks of one queue and priority
(:func:`deliveries`): a large job's small checks go several to a task, so that the broker,
Celery and the task's setup are paid once per chunk; each check is still claimed, run and
reported on its own (verifier/delivery/execution.py). Jobs of fewer than
``MIN_TASKS_PER_SEND * 2`` checks are never chunked, so their checks spread over the workers.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import NamedTuple, Protocol

from sqlalchemy.orm import Session

from verifier.delivery.inventory import Held
from verifier.store import claims
from verifier.store.models import Check, utc_now

logger = logging.getLogger(__name__)


MAX_CHECKS_PER_TASK = 16
"""The most checks one message carries."""
CHUNK_COST_UNITS = 20_000
"""A chunk closes before its checks' summed admission estimates (verifier/core/expression/
cost.py) pass this: a small one-point check is 58 to 8,198 units, an AI Feynman check of 100
points 344 to 27,080, so heavy checks go one or two to a message and never hold one worker
while the other waits."""
MIN_TASKS_PER_SEND = 8
"""A send of N checks makes at least min(N, this) messages (when their costs allow)."""


class Delivery(NamedTuple):
    """One message to hand to workers: its check's id, its queue and its priority (0, the
    highest, to 9; a broker without priorities keeps the order of sending), and the ids of
    the checks after it in the same message (a chunk), if any."""

    check_id: uuid.UUID
    queue: str
    priority: int = 0
    more: tuple[uuid.UUID, ...] = ()

    @property
    def check_ids(self) -> list[uuid.UUID]:
        """Every check of the message, in order."""
        return [self.check_id, *self.more]

    @property
    def argument(self) -> str | list[str]:
        """The task's argument: the check's id, or the list of a chunk's ids."""
        if not self.more:
            return str(self.check_id)
        return [str(check_id) for check_id in self.check_ids]


def deliveries(checks: Sequence[Check]) -> list[Delivery]:
    """The messages of ``checks``, in order: consecutive checks of one queue and priority in
    chunks of at most MAX_CHECKS_PER_TASK checks and CHUNK_COST_UNITS, and at least
    MIN_TASKS_PER_SEND messages where there are that many checks."""
    size = max(1, min(MAX_CHECKS_PER_TASK, len(checks) // MIN_TASKS_PER_SEND))
    messages: list[Delivery] = []
    chunk: list[Check] = []
    units = 0

    def close() -> None:
        first = chunk[0]
        messages.append(
            Delivery(
                first.id,
                first.queue,
                first.priority or 0,
                tuple(check.id for check in chunk[1:]),
            )
        )
        chunk.clear()

    for check in checks:
        cost = check.cost_units or 0
        if chunk and (
            len(chunk) >= size
            or units + cost > CHUNK_COST_UNITS
            or (check.queue, check.priority or 0) != (chunk[0].queue, chunk[0].priority or 0)
        ):
            close()
        if not chunk:
            units = 0
        chunk.append(check)
        units += cost
    if chunk:
        close()
    return messages


class Sender(Protocol):
    """Hands checks to workers through a broker."""

    def send(self, checks: Sequence[Delivery]) -> int:
        """Queue each message in order; how many the broker took (it stops at the first it
        does not take, and says why in the log)."""
        ...

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        ...

    def held(self, queues: Sequence[str], limit: int) -> Held | None:
        """The checks whose messages wait in ``queues`` or are taken by a worker, reading
        at most ``limit`` messages; None when this broker cannot tell (the reconciler then
        re-sends as if they were lost)."""
        ...

    def close(self) -> None:
        """Release the broker connections."""
        ...


class InMemorySender:
    """A broker that keeps what it takes, in order (``sent``); for tests and demos.

    It can be made to refuse: ``down`` refuses everything (and ``ping``), ``refuse_first``
    refuses that many publishes before taking any, ``refuse_after`` refuses every publish once
    it has taken that many.
    """

    def __init__(
        self, *, down: bool = False, refuse_first: int = 0, refuse_after: int | None = None
    ) -> None:
        self.sent: list[tuple[uuid.UUID, str]] = []
        self.down = down
        self.refusals_left = refuse_first
        self.refuse_after = refuse_after
        self.closed = False
        self._lock = threading.Lock()

    def send(self, checks: Sequence[Delivery]) -> int:
        taken = 0
        with self._lock:
            for delivery in checks:
                if self.refusals_left > 0:
                    self.refusals_left -= 1
                    logger.warning("the in-memory broker refused check %s", delivery.check_id)
                    break
                full = self.refuse_after is not None and len(self.sent) >= self.refuse_after
                if self.down or full:
                    logger.warning(
                        "the in-memory broker is down; check %s not taken", delivery.check_id
                    )
                    break
                self.sent.extend((check_id, delivery.queue) for check_id in delivery.check_ids)
                taken += 1
        return taken

    def ping(self) -> None:
        if self.down:
            raise ConnectionError("the in-memory broker is down")

    def held(self, queues: Sequence[str], limit: int) -> Held | None:
        """What it took for ``queues`` (nobody takes its messages away); None while down."""
        if self.down:
            return None
        with self._lock:
            waiting = [check_id for check_id, queue in self.sent if queue in queues]
        return Held(frozenset(waiting[:limit]), len(waiting) <= limit, min(len(waiting), limit))

    def close(self) -> None:
        self.closed = True

    @property
    def check_ids(self) -> list[uuid.UUID]:
        """The ids taken, in order."""
        with self._lock:
            return [check_id for check_id, _ in self.sent]


def send_checks(session: Session, sender: Sender, checks: list[Check]) -> int:
    """Send ``checks`` and record when; returns how many the broker took (the rest stay
    unsent, for the reconciler)."""
    sent = checks[: _sent(sender, checks)]  # the rest stay unsent, for the reconciler
    claims.mark_enqueued(session, sent, utc_now())
    session.commit()
    return len(sent)


def send_new_checks(session: Session, sender: Sender, checks: Sequence[Check]) -> int:
    """Send the checks of a job committed as sent (``enqueued_at`` set in the transaction
    that stored them); those the broker did not take are marked unsent again, for the
    reconciler. Returns how many it took."""
    taken = _sent(sender, checks)
    if taken < len(checks):
        claims.mark_unsent(session, [check.id for check in checks[taken:]])
        session.commit()
    return taken


def _sent(sender: Sender, checks: Sequence[Check]) -> int:
    """How many of ``checks``, in order, the broker took."""
    messages = deliveries(checks)
    taken = sender.send(messages)
    return sum(len(message.check_ids) for message in messages[:taken])
