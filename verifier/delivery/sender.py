"""The queue's seam: what the service needs of a broker, and sending checks through it.

:class:`Sender` is the whole interface between the service and a broker; the Celery one is
:class:`verifier.delivery.celery.CelerySender`, and :class:`InMemorySender` stands in for a
broker where the queue is not what is being tested. A new broker is one more implementation.
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


class Delivery(NamedTuple):
    """One check to hand to workers: its id, its queue and its priority (0, the highest, to
    9; a broker without priorities keeps the order of sending)."""

    check_id: uuid.UUID
    queue: str
    priority: int = 0


class Sender(Protocol):
    """Hands checks to workers through a broker."""

    def send(self, checks: Sequence[Delivery]) -> int:
        """Queue each check in order; how many the broker took (it stops at the first it
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
            for check_id, queue, _ in checks:
                if self.refusals_left > 0:
                    self.refusals_left -= 1
                    logger.warning("the in-memory broker refused check %s", check_id)
                    break
                full = self.refuse_after is not None and len(self.sent) >= self.refuse_after
                if self.down or full:
                    logger.warning("the in-memory broker is down; check %s not taken", check_id)
                    break
                self.sent.append((check_id, queue))
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
    taken = sender.send([Delivery(check.id, check.queue, check.priority or 0) for check in checks])
    sent = checks[:taken]  # the rest stay unsent, for the reconciler
    claims.mark_enqueued(session, sent, utc_now())
    session.commit()
    return len(sent)
