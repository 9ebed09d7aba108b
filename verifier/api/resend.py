"""A background thread of the API that re-sends checks the broker lost or never took."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from verifier import service
from verifier.config import Settings

logger = logging.getLogger(__name__)


class Resender:
    """Every ``requeue_interval_s``, re-sends unfinished checks (see service.resend_unfinished)."""

    def __init__(
        self, sessions: sessionmaker[Session], sender: service.CheckSender, settings: Settings
    ):
        self._sessions = sessions
        self._sender = sender
        self._settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="derivcheck-resend", daemon=True)

    def start(self) -> None:
        """Start the loop."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._settings.requeue_interval_s):
            try:
                with self._sessions() as session:
                    count = service.resend_unfinished(session, self._sender, self._settings)
                if count:
                    logger.warning("re-sent %d unfinished checks", count)
            except Exception:  # the loop must outlive a database or broker outage
                logger.exception("re-sending unfinished checks failed")
