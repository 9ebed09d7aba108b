"""Parsing with a hard bound: expressions checked in a sandbox process, never in the caller.

The parser's limits keep every known construct cheap, but SymPy builds the tree, and a
process that serves many clients (the API) must not let one expression hold it. So
:class:`ParserPool` parses in child processes (:class:`verifier.core.exact.sandbox.Sandbox`), each
expression within ``timeout_s`` of wall time (and the child's CPU-time limit); past it the
child is killed and replaced, and that expression is refused. What comes back is what the
caller needs, not the SymPy tree: the variables, the functions and the expression's
:class:`verifier.core.expression.cost.Shape`, so the caller never rebuilds the tree either.

The pool is shared fairly: a request waits for a free process at most ``wait_s``, however many
expressions it holds, and is then answered BusyError (the service's capacity, not the
request, is at fault: HTTP 503 with Retry-After); a caller (an API key) parses at most
``per_caller`` requests at once, so one key cannot take every process while another key waits:
its next request waits its turn within the same ``wait_s`` (at most ``MAX_WAITING_PER_CALLER``
of them), and is answered RateLimitedError (HTTP 429 with Retry-After) past it.

>>> [facts] = check_expressions(["sin(x)*y"])
>>> facts.variables, sorted(facts.functions), facts.shape.symbolic_size
(('x', 'y'), ['sin'], 4)
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from verifier.core.exact.sandbox import Sandbox, SandboxCrash, SandboxTimeout
from verifier.core.expression.cost import Shape, shape
from verifier.core.expression.parse import parse_expression, require_variables
from verifier.errors import BusyError, ExpressionError, LimitError, RateLimitedError

DEFAULT_PARSE_TIMEOUT_S = 2.0
"""Wall time one expression may take to parse in the pool (legal ones take milliseconds)."""
DEFAULT_PARSE_WAIT_S = 5.0
"""Wall time a request waits for a free parser process before it is answered busy."""
DEFAULT_PARSES_PER_CALLER = 1
"""Requests of one caller in the pool (parsed, or waiting for a process) at once."""
MAX_WAITING_PER_CALLER = 16
"""Requests of one caller waiting for their turn at once; one more is refused at once (each
waiting request holds one of the API's threads)."""
PARSER_START_TIMEOUT_S = 120.0
"""Wall time a new parser process may take to import what parsing needs (SymPy, plugins'
declarations) before its first expression; it is not charged to any expression."""


@dataclass(frozen=True)
class CheckedExpression:
    """An expression that parsed: what submission and admission need of it."""

    text: str
    variables: tuple[str, ...]
    functions: frozenset[str]
    shape: Shape


Parsed = CheckedExpression | ExpressionError
"""One expression's outcome: its facts, or why it is refused."""


def check_expression(text: str) -> CheckedExpression:
    """Parse ``text`` (with at least one variable) here, in this process."""
    parsed = require_variables(parse_expression(text))
    return CheckedExpression(text, parsed.variables, parsed.functions, shape(parsed))


def check_expressions(
    texts: Sequence[str], *, progress: Callable[[str], None] | None = None
) -> list[Parsed]:
    """Each text's facts or refusal; calls ``progress(str(i))`` after each but the last."""
    results: list[Parsed] = []
    for index, text in enumerate(texts):
        try:
            results.append(check_expression(text))
        except ExpressionError as error:
            results.append(error)
        if progress is not None and index < len(texts) - 1:
            progress(str(index))
    return results


class ParserPool:
    """``processes`` sandboxes that parse for many threads; each expression within
    ``timeout_s``. A request waits for a free sandbox at most ``wait_s``; a caller has at
    most ``per_caller`` requests in the pool at once."""

    def __init__(
        self,
        processes: int,
        timeout_s: float = DEFAULT_PARSE_TIMEOUT_S,
        *,
        wait_s: float = DEFAULT_PARSE_WAIT_S,
        per_caller: int = DEFAULT_PARSES_PER_CALLER,
    ):
        self.processes = processes
        self.timeout_s = timeout_s
        self.wait_s = wait_s
        self.per_caller = per_caller
        self._all = [Sandbox() for _ in range(processes)]
        self._ready: set[int] = set()  # the children that have imported the parser
        self._free: queue.Queue[Sandbox] = queue.Queue()
        for sandbox in self._all:
            self._free.put(sandbox)
        self._callers: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self._turns = threading.Condition()

    def start(self) -> None:
        """Start every child now (each takes a moment to import SymPy)."""
        for sandbox in self._all:
            sandbox.start()

    def parse(self, texts: Sequence[str], caller: str | None = None) -> list[Parsed]:
        """Each text's facts or refusal, as :func:`check_expressions` gives them. An
        expression past the time bound is refused, and the ones after it are not tried; an
        expression that makes its child die is refused with the rest of the request.

        Raises:
            RateLimitedError: ``caller`` (None: no share is kept) already has ``per_caller``
                requests in the pool.
            BusyError: no process was free within ``wait_s``.
        """
        if not texts:
            return []
        deadline = time.monotonic() + self.wait_s
        with self._share(caller, deadline):
            try:
                sandbox = self._free.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BusyError(
                    f"every parser process is busy: none was free within {self.wait_s:g} s",
                    max(1, math.ceil(self.wait_s)),
                ) from None
            try:
                return self._parse_in(sandbox, list(texts))
            finally:
                self._free.put(sandbox)

    @contextmanager
    def _share(self, caller: str | None, deadline: float) -> Iterator[None]:
        """Hold one of ``caller``'s places in the pool while the block runs, waiting for it
        until ``deadline`` (a time of ``time.monotonic``)."""
        if caller is None:
            yield
            return
        with self._turns:
            if self._waiting[caller] >= MAX_WAITING_PER_CALLER:
                raise self._busy_caller()
            self._waiting[caller] += 1
            try:
                while self._callers[caller] >= self.per_caller:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise self._busy_caller()
                    self._turns.wait(left)
            finally:
                self._waiting[caller] -= 1
                if not self._waiting[caller]:
                    del self._waiting[caller]
            self._callers[caller] += 1
        try:
            yield
        finally:
            with self._turns:
                self._callers[caller] -= 1
                if not self._callers[caller]:
                    del self._callers[caller]
                self._turns.notify_all()

    def _busy_caller(self) -> RateLimitedError:
        return RateLimitedError(
            max(1, math.ceil(self.wait_s)),
            f"this key already has {self.per_caller} request(s) being parsed, and this one "
            f"found no turn within {self.wait_s:g} s; a key's requests are parsed "
            f"{self.per_caller} at a time, so that other keys are parsed too",
        )

    def _parse_in(self, sandbox: Sandbox, texts: list[str]) -> list[Parsed]:
        try:
            self._make_ready(sandbox)
        except (SandboxTimeout, SandboxCrash) as failure:
            down = LimitError(f"no parser process could start: {failure}", limit="parser")
            return [down for _ in texts]
        budgets = [(str(index), self.timeout_s) for index in range(len(texts))]
        try:
            results, _ = sandbox.call(check_expressions, (texts,), budgets, lambda: None)
        except SandboxTimeout as timeout:
            # Those before the slow one parsed (their answers went with the child); those
            # after it are not tried, so that one request holds a parser about timeout_s.
            slow = int(timeout.stage)
            refused = LimitError(
                f"the expression took more than {self.timeout_s:g} s to parse",
                limit="parse_timeout_s",
                position=0,
            )
            skipped = LimitError(
                f"not parsed: expression {slow} of this request took more than "
                f"{self.timeout_s:g} s to parse",
                limit="parse_timeout_s",
            )
            before = self._parse_in(sandbox, texts[:slow]) if slow else []
            return [*before, refused, *[skipped for _ in texts[slow + 1 :]]]
        except SandboxCrash as crash:
            error = LimitError(f"the expression could not be parsed: {crash}", limit="parser")
            return [error for _ in texts]
        parsed: list[Parsed] = results
        return parsed

    def _make_ready(self, sandbox: Sandbox) -> None:
        """Have ``sandbox``'s child (a new one, if it was replaced) import the parser first,
        within PARSER_START_TIMEOUT_S, so that no expression's bound pays for the import."""
        if sandbox.pid is not None and sandbox.pid in self._ready:
            return
        budget = [("start", PARSER_START_TIMEOUT_S)]
        sandbox.call(check_expressions, ([],), budget, lambda: None)
        if sandbox.pid is not None:
            self._ready.add(sandbox.pid)

    def close(self) -> None:
        """Stop every child."""
        for sandbox in self._all:
            sandbox.close()
