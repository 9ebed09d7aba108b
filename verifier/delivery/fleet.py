"""Which queues the worker fleet serves: each worker announces its queues, the API reads them.

A check on a queue that no worker reads waits for ever, and says nothing (a CUDA check on a
fleet without GPU workers). So a worker announces the queues it consumes when it is ready and
every ``queue_served_window_s / ANNOUNCEMENTS_PER_WINDOW`` after (:class:`Announcer`), and a
worker counts as serving a queue while its last announcement of it is younger than
``queue_served_window_s``. Each worker (``<hostname>.<pid>`` unless named) announces apart, so
the workers of a queue can be counted:

- on Redis, a key per queue and worker (``derivcheck:served:<queue>:<worker>``) that expires
  after the window, counted with ``SCAN MATCH`` over at most ``MAX_SCAN_STEPS`` steps;
- on the embedded broker (an SQLite file), a file per queue and worker in a folder beside the
  broker file (``broker.sqlite3.served/<queue>@<worker>``), whose modification time is the
  last announcement: every process that shares the broker file shares that folder;
- on any other broker the fleet cannot be told (None), and nothing is refused.

A queue is served while at least one worker counts. A reading is kept for ``READ_CACHE_S``.
How the service answers a queue nobody serves is in docs/delivery.md ("Queues nobody serves").
"""

from __future__ import annotations

import functools
import glob
import logging
import math
import os
import socket
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
FILE_WORKER_SEPARATOR = "@"
"""Between the queue and the worker in an announcement file's name."""
SCAN_BATCH_KEYS = 1000
"""Keys Redis looks at in one ``SCAN`` step (its ``COUNT``)."""
MAX_SCAN_STEPS = 20
"""``SCAN`` steps a count takes at most; a keyspace not walked by then gives no count (None)
unless a worker was found, so a reading stays a few milliseconds on a crowded Redis."""


class Fleet:
    """What the workers announced of the queues they serve, through the broker's own store."""

    def __init__(self, broker_url: str, window_s: float):
        self.window_s = window_s
        self._broker_url = broker_url
        self._folder = served_folder(broker_url)
        self._redis: Any = None
        self._started = time.monotonic()
        self._read: dict[str, tuple[float, int | None, bool | None]] = {}
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

    def announce(self, queues: Sequence[str], worker: str | None = None) -> None:
        """Say that ``worker`` (this process, ``<hostname>.<pid>``, unless named) serves
        ``queues`` now; raises if the store cannot be written."""
        name = _safe_name(worker or f"{socket.gethostname()}.{os.getpid()}")
        if self._folder is not None:
            self._folder.mkdir(parents=True, exist_ok=True)
            for queue in queues:
                path = self._folder / f"{queue}{FILE_WORKER_SEPARATOR}{name}"
                path.write_text(f"{time.time():.3f}\n", encoding="utf-8")
        elif self.knows:
            expires_ms = max(1, math.ceil(self.window_s * 1000))
            with self._client().pipeline() as pipe:
                for queue in queues:
                    key = f"{REDIS_KEY_PREFIX}{queue}:{name}"
                    pipe.set(key, f"{time.time():.3f}", px=expires_ms)
                pipe.execute()

    def served(self, queue: str) -> bool | None:
        """Whether a worker announced ``queue`` within the window; None when this broker
        cannot tell or its store cannot be read now."""
        return self._reading(queue)[1]

    def workers(self, queue: str) -> int | None:
        """How many workers announced ``queue`` within the window; None when this broker
        cannot tell or its store cannot be read (or walked) now."""
        return self._reading(queue)[0]

    def _reading(self, queue: str) -> tuple[int | None, bool | None]:
        now = time.monotonic()
        with self._lock:
            cached = self._read.get(queue)
        if cached is not None and now - cached[0] < READ_CACHE_S:
            return cached[1], cached[2]
        count, served = self._read_workers(queue)
        with self._lock:
            self._read[queue] = (now, count, served)
        return count, served

    def _read_workers(self, queue: str) -> tuple[int | None, bool | None]:
        if not self.knows:
            return None, None
        try:
            if self._folder is not None:
                return _as_reading(self._count_files(queue))
            return self._count_keys(queue)
        except Exception:  # a store that cannot be read: no answer, rather than a wrong one
            logger.warning("could not read which workers serve queue %s", queue, exc_info=True)
            return None, None

    def _count_files(self, queue: str) -> int:
        assert self._folder is not None
        pattern = glob.escape(f"{queue}{FILE_WORKER_SEPARATOR}") + "*"
        oldest = time.time() - self.window_s
        count = 0
        for path in self._folder.glob(pattern):
            try:
                if path.stat().st_mtime >= oldest:
                    count += 1
            except FileNotFoundError:  # removed between listing and reading
                continue
        return count

    def _count_keys(self, queue: str) -> tuple[int | None, bool | None]:
        pattern = _escape_match(f"{REDIS_KEY_PREFIX}{queue}:") + "*"
        client = self._client()
        cursor, found, steps = 0, set(), 0
        while True:
            cursor, keys = client.scan(cursor=cursor, match=pattern, count=SCAN_BATCH_KEYS)
            found.update(keys)  # SCAN may return a key twice
            steps += 1
            if cursor == 0:
                return _as_reading(len(found))
            if steps >= MAX_SCAN_STEPS:
                logger.warning(
                    "could not count the workers of queue %s within %d SCAN steps",
                    queue,
                    MAX_SCAN_STEPS,
                )
                return None, (True if found else None)

    def unserved(self, queue: str) -> bool:
        """Whether ``queue`` is known to have no worker: none announced it within the window,
        and this process has watched for a whole window (a fleet starting beside it has had
        the time to announce itself)."""
        watched_s = time.monotonic() - self._started
        return watched_s >= self.window_s and self.served(queue) is False


def _as_reading(count: int) -> tuple[int, bool]:
    return count, count > 0


def _safe_name(worker: str) -> str:
    """``worker`` fit for a key's or file's last part: no separator, no path."""
    return "".join("_" if char in ":/@\\" else char for char in worker)


def _escape_match(text: str) -> str:
    """``text`` matched literally by Redis's glob-style ``MATCH``."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


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
