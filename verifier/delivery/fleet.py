"""Which queues the worker fleet serves: each worker announces its queues, the API reads them.

A check on a queue that no worker reads waits for ever, and says nothing (a CUDA check on a
fleet without GPU workers). So a worker announces the queues it consumes when it is ready and
every ``queue_served_window_s / ANNOUNCEMENTS_PER_WINDOW`` after (:class:`Announcer`), and a
queue counts as served while its last announcement is younger than ``queue_served_window_s``:

- on Redis, a key per queue (``derivcheck:served:<queue>``) that expires after the window;
- on the embedded broker (an SQLite file), a file per queue in a folder beside the broker file
  (``broker.sqlite3.served/<queue>``), whose modification time is the last announcement: every
  process that shares the broker file shares that folder;
- on any other broker the fleet cannot be told (None), and nothing is refused.

Reading is one Redis ``EXISTS`` or one ``stat`` per queue, kept for ``READ_CACHE_S``. How the
service answers a queue nobody serves is in docs/delivery.md ("Queues nobody serves").
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from verifier.config import Settings

logger = logging.getLogger(__name__)

ANNOUNCEMENTS_PER_WINDOW = 4
"""Announcements a worker makes within one window: one late or lost announcement does not
make its queue look unserved."""
READ_CACHE_S = 2.0
"""How long a reading of whether a queue is served is reused by the process that read it."""
REDIS_TIMEOUT_S = 1.0
"""Longest a reading or an announcement waits for Redis."""
REDIS_KEY_PREFIX = "derivcheck:served:"
SERVED_FOLDER_SUFFIX = ".served"


class Fleet:
    """What the workers announced of the queues they serve, through the broker's own store."""

    def __init__(self, broker_url: str, window_s: float):
        self.window_s = window_s
        self._broker_url = broker_url
        self._folder = served_folder(broker_url)
        self._redis: Any = None
        self._started = time.monotonic()
        self._read: dict[str, tuple[float, bool | None]] = {}
        self._lock = threading.Lock()

    @property
    def announce_every_s(self) -> float:
        """Seconds between two announcements of a worker."""
        return self.window_s / ANNOUNCEMENTS_PER_WINDOW

    def _client(self) -> Any:
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(
                self._broker_url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
            )
        return self._redis

    @property
    def knows(self) -> bool:
        """Whether this broker can tell which queues are served."""
        return self._folder is not None or self._broker_url.startswith(("redis", "rediss"))

    def announce(self, queues: Sequence[str]) -> None:
        """Say that a worker serves ``queues`` now; raises if the store cannot be written."""
        if self._folder is not None:
            self._folder.mkdir(parents=True, exist_ok=True)
            for queue in queues:
                (self._folder / queue).write_text(f"{time.time():.3f}\n", encoding="utf-8")
        elif self.knows:
            expires_ms = max(1, math.ceil(self.window_s * 1000))
            with self._client().pipeline() as pipe:
                for queue in queues:
                    pipe.set(REDIS_KEY_PREFIX + queue, f"{time.time():.3f}", px=expires_ms)
                pipe.execute()

    def served(self, queue: str) -> bool | None:
        """Whether a worker announced ``queue`` within the window; None when this broker
        cannot tell or its store cannot be read now."""
        now = time.monotonic()
        with self._lock:
            cached = self._read.get(queue)
        if cached is not None and now - cached[0] < READ_CACHE_S:
            return cached[1]
        answer = self._read_served(queue)
        with self._lock:
            self._read[queue] = (now, answer)
        return answer

    def _read_served(self, queue: str) -> bool | None:
        if not self.knows:
            return None
        try:
            if self._folder is not None:
                try:
                    announced = (self._folder / queue).stat().st_mtime
                except FileNotFoundError:
                    return False
                return time.time() - announced <= self.window_s
            return bool(self._client().exists(REDIS_KEY_PREFIX + queue))
        except Exception:  # a store that cannot be read: no answer, rather than a wrong one
            logger.warning("could not read whether queue %s is served", queue, exc_info=True)
            return None

    def unserved(self, queue: str) -> bool:
        """Whether ``queue`` is known to have no worker: none announced it within the window,
        and this process has watched for a whole window (a fleet starting beside it has had
        the time to announce itself)."""
        watched_s = time.monotonic() - self._started
        return watched_s >= self.window_s and self.served(queue) is False


def served_folder(broker_url: str) -> Path | None:
    """The folder of the announcements beside an embedded broker's SQLite file; None for
    any other broker."""
    if not broker_url.startswith("sqla+sqlite"):
        return None
    database = make_url(broker_url.removeprefix("sqla+")).database
    if not database or database == ":memory:":
        return None
    path = Path(database)
    return path.with_name(path.name + SERVED_FOLDER_SUFFIX)


@functools.cache
def _fleet(broker_url: str, window_s: float) -> Fleet:
    return Fleet(broker_url, window_s)


def fleet_for(settings: Settings) -> Fleet:
    """The fleet of ``settings``' broker, one per process (its readings cached)."""
    return _fleet(settings.broker_url, settings.queue_served_window_s)


class Announcer:
    """A worker's announcements of its queues, from a thread, until stopped."""

    def __init__(self, fleet: Fleet, queues: Sequence[str]):
        self.fleet = fleet
        self.queues = list(queues)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="announce", daemon=True)

    def start(self) -> None:
        """Announce now, then every ``announce_every_s`` in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop announcing (the queues count as served until the window ends)."""
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                self.fleet.announce(self.queues)
            except Exception:  # a broker away: the next announcement may reach it
                logger.warning("could not announce queues %s", self.queues, exc_info=True)
            if self._stop.wait(self.fleet.announce_every_s):
                return
