"""CPU time summed over processes, by group (the API, the workers, PostgreSQL's backends of one
database, Redis), for benchmarks/service.py.

A :class:`CpuMeter` reads each group's processes (``psutil`` ``cpu_times``, user + system)
when it starts, every ``interval_s`` while it runs and when it stops: a process that existed at
the start counts from its time then, one born meanwhile from 0, and one that ended counts up to
its last reading (at most ``interval_s`` of its CPU is missed). Children's times that a parent
collects when it reaps them are left out: the children are read themselves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from types import TracebackType

import psutil

DEFAULT_INTERVAL_S = 0.2
Finder = Callable[[], Iterable[psutil.Process]]


def tree(*pids: int) -> Finder:
    """The processes ``pids`` and all their descendants, as they are at each reading."""

    def find() -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for pid in pids:
            try:
                root = psutil.Process(pid)
                found.append(root)
                found.extend(root.children(recursive=True))
            except psutil.Error:
                continue
        return found

    return find


def this_process_tree() -> Finder:
    """This process and its children (the inline core's symbolic process among them)."""
    return tree(os.getpid())


def _postmaster() -> psutil.Process | None:
    for process in psutil.process_iter(["name", "ppid"]):
        try:
            if process.info["name"] != "postgres":
                continue
            parent = psutil.Process(process.info["ppid"])
            if parent.name() != "postgres":
                return process
        except psutil.Error:
            continue
    return None


def _own_ports(server_port: int) -> set[int]:
    """The local ports of this process's connections to ``server_port``."""
    try:
        connections = psutil.Process().net_connections(kind="tcp")
    except psutil.Error:
        return set()
    return {c.laddr.port for c in connections if c.raddr and c.raddr.port == server_port}


def postgres_backends(database: str, server_port: int = 5432) -> Finder:
    """PostgreSQL's backend processes serving ``database`` (by their process title,
    ``postgres: user database host(port) state``), less those serving this process (the
    benchmark's own polling)."""
    postmaster = _postmaster()
    marker = f" {database} "

    def find() -> list[psutil.Process]:
        if postmaster is None:
            return []
        found = []
        try:
            children = postmaster.children()
        except psutil.Error:
            return []
        own = {f"({port})" for port in _own_ports(server_port)}
        for child in children:
            try:
                title = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if marker in f"{title} " and not any(port in title for port in own):
                found.append(child)
        return found

    return find


def redis_server(port: int = 6379) -> Finder:
    """The Redis server listening on ``port`` (shared with anything else using it)."""
    servers = [
        process
        for process in psutil.process_iter(["name", "cmdline"])
        if process.info["name"] == "redis-server"
        and any(f":{port}" in part for part in process.info["cmdline"] or [])
    ]
    return lambda: servers


class CpuMeter:
    """CPU seconds of each group of processes over the ``with`` block."""

    def __init__(self, groups: dict[str, Finder], interval_s: float = DEFAULT_INTERVAL_S):
        self.groups = groups
        self.interval_s = interval_s
        self._start: dict[str, dict[tuple[int, float], float]] = {name: {} for name in groups}
        self._last: dict[str, dict[tuple[int, float], float]] = {name: {} for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self._lock = threading.Lock()

    def _read(self) -> None:
        for name, find in self.groups.items():
            for process in find():
                try:
                    times = process.cpu_times()
                    key = (process.pid, process.create_time())
                except psutil.Error:
                    continue
                with self._lock:
                    self._last[name][key] = times.user + times.system

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._read()

    def __enter__(self) -> CpuMeter:
        self._read()
        with self._lock:
            self._start = {name: dict(found) for name, found in self._last.items()}
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def seconds(self) -> dict[str, float]:
        """Each group's CPU seconds between the start and the last reading."""
        with self._lock:
            return {
                name: sum(value - self._start[name].get(key, 0.0) for key, value in found.items())
                for name, found in self._last.items()
            }
