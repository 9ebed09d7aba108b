"""The queue's seam: what the service needs of a broker, and sending checks through it.

:class:`Sender` is the whole interface between the service and a broker; the Celery one is
:class:`verifier.delivery.celery.CelerySender`, and :class:`InMemorySender` stands in for a
broker where the queue is not what is being tested. A new broker is one more implementation.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Protocol

from sqlalchemy.orm import Session

from verifier.store import claims
from verifier.store.models import Check, utc_now

logger = logging.getLogger(__name__)


class Sender(Protocol):
    """Hands checks to workers through a broker."""

    def send_check(self, check_id: uuid.UUID, queue: str) -> None:
        """Queue the check ``check_id`` on ``queue``; raise if the broker did not take it."""
        ...

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
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

    def send_check(self, check_id: uuid.UUID, queue: str) -> None:
        with self._lock:
            if self.refusals_left > 0:
                self.refusals_left -= 1
                raise ConnectionError("the in-memory broker refused this publish")
            if self.down or (self.refuse_after is not None and len(self.sent) >= self.refuse_after):
                raise ConnectionError("the in-memory broker is down")
            self.sent.append((check_id, queue))

    def ping(self) -> None:
        if self.down:
            raise ConnectionError("the in-memory broker is down")

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
    sent: list[Check] = []
    for check in checks:
        try:
            sender.send_check(check.id, check.queue)
        except Exception:  # any broker failure: the check stays unsent, to be re-sent
            logger.warning("could not send check %s; it will be re-sent", check.id, exc_info=True)
            break
        sent.append(check)
    claims.mark_enqueued(session, sent, utc_now())
    session.commit()
    return len(sent)
