"""Child processes of ``derivcheck demo``: the API server and a worker, started and stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from verifier.cli.client import CliError

STOP_TIMEOUT_S = 20.0
HEALTH_POLL_INTERVAL_S = 0.25
LOG_TAIL_CHARS = 2000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_command(*arguments: str) -> list[str]:
    """The command line that runs a service command of this CLI in a fresh interpreter."""
    return [sys.executable, "-m", "verifier.cli.service", *arguments]


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
