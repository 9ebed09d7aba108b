"""A child process for the symbolic work, with a time budget and resource limits.

SymPy can take unbounded time on innocent-looking input (the Hessian of a product of many
factors, limits, big rationals), and Python cannot interrupt a thread. So the symbolic side of a
check runs in a separate, long-lived process: a fresh interpreter, never a ``fork`` of this one
(a forked copy of a process that has run torch can hang). The parent waits for each stage with
a budget; past it, the child is killed and replaced, and the check ends with verdict ``error``.
The child also runs under a CPU-time rlimit, which stops slow big-integer work that a memory
limit would not, and an address-space rlimit. A child that dies mid-job of its own doing (SIGXCPU,
a crash, an exit) ends the check as ``error: resource limit``; one killed from outside (SIGKILL or
SIGTERM: an operator, the OOM killer) is replaced and the job sent again, once, within what is
left of the same budgets; killed twice, the check ends as ``error``.
"""

from __future__ import annotations

import atexit
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")

SANDBOX_MEMORY_BYTES = 4 * 1024**3
DEFAULT_SYMBOLIC_TIMEOUT_S = 30.0
"""Budget of a check's symbolic stage (SymPy's derivatives) in this process, by default."""
CPU_SLACK_SECONDS = 2
# A child that has closed its pipe is exiting; past this, it is stopped and its status unknown.
EXIT_WAIT_SECONDS = 5.0
# Signals that come from outside the child (its own limits give SIGXCPU, its crashes SIGSEGV).
OUTSIDE_KILL_SIGNALS = frozenset({signal.SIGKILL, signal.SIGTERM})


class SandboxTimeout(Exception):
    """A stage ran past its budget; ``stage`` names it."""

    def __init__(self, stage: str):
        super().__init__(f"{stage} timeout")
        self.stage = stage


class SandboxCrash(Exception):
    """The child died (resource limit, crash, killed twice) or raised; the message says which."""


class _Died(Exception):
    """The child died during ``stage``; ``returncode`` is its status (None: it did not exit)."""

    def __init__(self, stage: str, returncode: int | None):
        super().__init__(stage)
        self.stage = stage
        self.returncode = returncode

    @property
    def killed(self) -> bool:
        """Whether a signal from outside ended it, so that the job was not at fault."""
        return self.returncode is not None and -self.returncode in OUTSIDE_KILL_SIGNALS

    @property
    def how(self) -> str:
        """The signal's name, the exit status, or why neither is known."""
        if self.returncode is None:
            return "it closed its pipe but did not exit"
        if self.returncode >= 0:
            return f"exit status {self.returncode}"
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    def crash(self) -> SandboxCrash:
        """The error for a death of the child's own doing (a limit, a crash)."""
        return SandboxCrash(
            f"resource limit: the symbolic process died ({self.how}) during {self.stage}"
        )


Progress = Callable[[str], None]


class Sandbox:
    """One child process that runs jobs ``fn(*args, progress=...)`` one at a time."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The child's process id, or None while none is started."""
        process = self._process
        return None if process is None else process.pid

    def start(self) -> None:
        """Start the child now (it takes a moment to import SymPy)."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> tuple[Connection, Connection]:
        if self._process is None or self._process.poll() is not None:
            self._stop()
            # A fresh interpreter running this module: nothing of the parent (torch threads,
            # the user's __main__) is copied or re-imported.
            to_child_read, to_child_write = os.pipe()
            from_child_read, from_child_write = os.pipe()
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(to_child_read), str(from_child_write)],
                pass_fds=(to_child_read, from_child_write),
                stdin=subprocess.DEVNULL,
            )
            os.close(to_child_read)
            os.close(from_child_write)
            self._send = Connection(to_child_write, readable=False)
            self._recv = Connection(from_child_read, writable=False)
        assert self._send is not None and self._recv is not None
        return self._send, self._recv

    def call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        budgets: list[tuple[str, float]],
        meanwhile: Callable[[], T],
    ) -> tuple[Any, T]:
        """Run ``fn(*args, progress=...)`` in the child while ``meanwhile()`` runs here.

        ``budgets`` lists the stages in order with their time budgets in seconds: each stage
        may take its own budget from the end of the one before, and all of them together at
        most their sum from the start of the call (a stage that finishes early leaves its
        time to none of the others, so each budget bounds its own stage); ``fn`` calls
        ``progress(stage)`` when it finishes each stage but the last, whose end is the
        result. Returns both results. A child killed from outside is replaced and the job
        sent again, once, within what is left of the sum; ``meanwhile`` is not run again.
        """
        with self._lock:
            begun = time.monotonic()
            end = begun + sum(seconds for _, seconds in budgets)
            self._send_job(fn, args, end)
            try:
                here = meanwhile()
            except BaseException:
                self._stop()  # its answer would otherwise be read by the next job
                raise
            kills: list[str] = []
            while True:
                try:
                    return self._collect(budgets, begun, end), here
                except _Died as death:
                    if not death.killed:
                        raise death.crash() from None
                    kills.append(death.how)
                    if len(kills) == 2:  # the re-run was killed too
                        signals = kills[0] if len(set(kills)) == 1 else ", then ".join(kills)
                        raise SandboxCrash(
                            f"the symbolic process was killed ({signals}) twice during "
                            f"{death.stage}"
                        ) from None
                # Killed from outside (an operator, the OOM killer): the job was not at fault,
                # so a fresh child runs it from its first stage, within what is left of the
                # budgets.
                begun = time.monotonic()
                self._send_job(fn, args, end)

    def _send_job(self, fn: Callable[..., Any], args: tuple[Any, ...], end: float) -> None:
        send, _ = self._ensure()
        try:
            send.send((fn, args, end - time.monotonic() + CPU_SLACK_SECONDS))
        except OSError:
            pass  # the child is dead: receiving its answer meets the end of its pipe and says how

    def _collect(self, budgets: list[tuple[str, float]], begun: float, end: float) -> Any:
        """The job's result; each stage timed from when the one before ended in the child
        (its monotonic clock is this process's), the first from ``begun``."""
        assert self._recv is not None
        stage_began = begun
        for stage, seconds in budgets:
            deadline = min(end, stage_began + seconds)
            kind, payload = self._receive(self._recv, stage, deadline - time.monotonic())
            if kind == "stage":
                stage_began = payload
                continue
            if kind == "result":
                return payload
            raise SandboxCrash(payload)
        raise SandboxCrash("the symbolic process sent no result")

    def _receive(self, recv: Connection, stage: str, seconds: float) -> tuple[str, Any]:
        try:
            if recv.poll(max(seconds, 0.0)):
                message: tuple[str, Any] = recv.recv()
                return message
        except (EOFError, OSError):
            raise self._died(stage) from None
        self._stop()
        raise SandboxTimeout(stage)

    def _died(self, stage: str) -> _Died:
        returncode = None
        if self._process is not None:
            try:
                returncode = self._process.wait(EXIT_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                pass  # stopped below; the kill is ours, so it must not count as one from outside
        self._stop()
        return _Died(stage, returncode)

    def close(self) -> None:
        """Stop the child."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        for connection in (self._send, self._recv):
            if connection is not None:
                connection.close()
        self._send = self._recv = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None


_per_thread = threading.local()


def thread_sandbox() -> Sandbox:
    """This thread's sandbox (threads of one worker each run their own checks)."""
    sandbox: Sandbox | None = getattr(_per_thread, "sandbox", None)
    if sandbox is None:
        sandbox = _per_thread.sandbox = Sandbox()
        atexit.register(sandbox.close)
    return sandbox


def _serve(recv: Connection, send: Connection) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (SANDBOX_MEMORY_BYTES, SANDBOX_MEMORY_BYTES))
    # SIGXCPU (the CPU limit) would dump a core of up to the address-space limit.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    while True:
        try:
            fn, args, cpu_budget = recv.recv()
        except (EOFError, OSError):
            return
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = int(used.ru_utime + used.ru_stime) + 1
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        resource.setrlimit(resource.RLIMIT_CPU, (spent + int(cpu_budget) + 1, hard))

        def progress(stage: str) -> None:
            send.send(("stage", time.monotonic()))

        try:
            result = fn(*args, progress=progress)
        except MemoryError:
            send.send(("error", "resource limit: out of memory in the symbolic process"))
        except RecursionError:
            send.send(("error", "resource limit: expression too deeply nested for SymPy"))
        except Exception as error:  # noqa: BLE001  (reported to the parent, never lost)
            detail = traceback.format_exception_only(type(error), error)[-1].strip()
            send.send(("error", detail))
        else:
            send.send(("result", result))


if __name__ == "__main__":
    _serve(
        Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    )
