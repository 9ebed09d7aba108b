"""Child processes of the CLI: the API server and a worker of ``derivcheck demo``, started
and stopped, and the supervisor of ``derivcheck worker``, which starts its Celery worker again
whenever it exits without being asked to (a broker or disk error, the hard time limit of a
check, the OOM killer), so that the embedded defaults, which have no container runtime to
restart anything, keep a worker. With several slots (``--concurrency N``) each slot is its own
supervised process running one check at a time (:class:`Slots`): a check that ends its process
(past its hard time limit, out of memory) takes no other client's check down, and only its own
slot restarts.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx

from verifier.cli.client import CliError

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20.0
HEALTH_POLL_INTERVAL_S = 0.25
LOG_TAIL_CHARS = 2000
RESTART_BACKOFF_START_S = 1.0
"""Wait before restarting a child that exited; doubled after each quick exit."""
RESTART_BACKOFF_MAX_S = 30.0
"""The longest wait before a restart, however often the child keeps exiting."""
STABLE_RUN_S = 60.0
"""A child that ran this long before exiting is restarted after the first wait again."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ask_torch(expression: str) -> str:
    """What ``expression`` (about ``torch``) prints in a child interpreter, stripped ("" when
    it fails): how a process that starts others asks about CUDA without initialising it."""
    asked = subprocess.run(
        [sys.executable, "-c", f"import torch; print({expression})"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return asked.stdout.strip()


def service_command(*arguments: str) -> list[str]:
    """The command line that runs a service command of this CLI in a fresh interpreter."""
    return [sys.executable, "-m", "verifier", *arguments]


class ChildProcess:
    """A command running in its own session, its output in a log file."""

    def __init__(self, name: str, command: list[str], *, env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("wb")
        # A session of its own: Ctrl-C reaches only us, and we stop the children in order.
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def running(self) -> bool:
        """Whether the process has not exited."""
        return self.process.poll() is None

    def log_tail(self) -> str:
        """The end of the process's output."""
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return text[-LOG_TAIL_CHARS:]

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Ask the process to finish (SIGTERM: warm shutdown), kill it after ``timeout_s``."""
        try:
            if self.running():
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=timeout_s)
            return self.process.returncode
        finally:
            self._log.close()


def wait_until_healthy(url: str, children: list[ChildProcess], timeout_s: float) -> None:
    """Return once ``url``/health answers 200; CliError with the logs if a child dies first."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx.Client(base_url=url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            for child in children:
                if not child.running():
                    raise CliError(
                        f"the {child.name} process exited with status "
                        f"{child.process.returncode}; its log ({child.log_path}) ends:\n"
                        f"{child.log_tail()}"
                    )
            try:
                response = client.get("/health")
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}"
            time.sleep(HEALTH_POLL_INTERVAL_S)
    raise CliError(f"the API at {url} was not healthy after {timeout_s:g} s ({last})")


def exit_status(returncode: int) -> int:
    """A process's exit status as a shell reports it: a signal N is 128 + N."""
    return returncode if returncode >= 0 else 128 - returncode


def describe_exit(returncode: int) -> str:
    """``status N`` or ``signal NAME`` for a ``subprocess`` return code."""
    if returncode >= 0:
        return f"status {returncode}"
    try:
        return f"signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"signal {-returncode}"


class Supervisor:
    """Runs ``command`` and starts it again each time it exits without being asked to.

    A child that exits before it ran ``stable_after_s`` is restarted after a wait that doubles
    each time, from ``backoff_start_s`` up to ``backoff_max_s``; one that ran longer is
    restarted after ``backoff_start_s`` again. Each start and each restart is a log line with
    the child's process id, how it exited and after how long. :meth:`stop` (from a signal
    handler, say) passes SIGTERM to the child, which stops as it would alone (a Celery
    worker's warm shutdown), and :meth:`run` returns once the child has exited. The child
    shares this process's group, so whoever kills the group kills it too.
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        backoff_start_s: float = RESTART_BACKOFF_START_S,
        backoff_max_s: float = RESTART_BACKOFF_MAX_S,
        stable_after_s: float = STABLE_RUN_S,
    ):
        self.name = name
        self.command = command
        self.env = env
        self.backoff_start_s = backoff_start_s
        self.backoff_max_s = backoff_max_s
        self.stable_after_s = stable_after_s
        self.restarts = 0
        self._stopping = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None

    def run(self) -> int:
        """Run the child until :meth:`stop`; the exit status of its last run."""
        delay = self.backoff_start_s
        while True:
            started = time.monotonic()
            child = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL)
            self._child = child
            logger.info("started the %s (process %d)", self.name, child.pid)
            if self._stopping.is_set():  # stopped while the child was being started
                child.send_signal(signal.SIGTERM)
            returncode = child.wait()
            if self._stopping.is_set():
                logger.info("the %s stopped with %s", self.name, describe_exit(returncode))
                return exit_status(returncode)
            ran_s = time.monotonic() - started
            if ran_s >= self.stable_after_s:
                delay = self.backoff_start_s
            self.restarts += 1
            logger.warning(
                "the %s (process %d) exited unexpectedly with %s after %.1f s; restarting it "
                "in %g s (restart %d)",
                self.name,
                child.pid,
                describe_exit(returncode),
                ran_s,
                delay,
                self.restarts,
            )
            if self._stopping.wait(delay):
                return exit_status(returncode)
            delay = min(delay * 2, self.backoff_max_s)

    def stop(self, *_signal: object) -> None:
        """Stop for good: SIGTERM to the running child, no restart (a signal handler)."""
        self._stopping.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)


class Slots:
    """One :class:`Supervisor` per command, each in a thread: independent slots of a worker.

    :meth:`run` returns once every slot has stopped, with the first non-zero exit status of
    their last runs (0 when all stopped cleanly); :meth:`stop` stops them all.
    """

    def __init__(
        self,
        name: str,
        commands: list[list[str]],
        *,
        env: dict[str, str] | None = None,
        envs: list[dict[str, str] | None] | None = None,
    ):
        """``env`` is every slot's environment, or ``envs`` one per slot (None: this one's)."""
        count = len(commands)
        each = envs if envs is not None else [env] * count
        self.supervisors = [
            Supervisor(
                name if count == 1 else f"{name} (slot {index + 1} of {count})",
                command,
                env=each[index],
            )
            for index, command in enumerate(commands)
        ]

    def run(self) -> int:
        """Run every slot until :meth:`stop`; the first non-zero exit status, or 0."""
        statuses = [0] * len(self.supervisors)

        def run_slot(index: int) -> None:
            statuses[index] = self.supervisors[index].run()

        threads = [
            threading.Thread(target=run_slot, args=(index,), name=supervisor.name, daemon=True)
            for index, supervisor in enumerate(self.supervisors)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return next((status for status in statuses if status != 0), 0)

    def stop(self, *_signal: object) -> None:
        """Stop every slot for good (a signal handler)."""
        for supervisor in self.supervisors:
            supervisor.stop()
