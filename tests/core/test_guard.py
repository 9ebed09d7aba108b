"""Parsing with a hard bound (verifier/core/guard.py): expressions parsed in child processes,
each within a time bound, for many threads at once.

No legal expression is known to take more than milliseconds to parse (the parser's limits see
to that), so the bound is exercised with a bound shorter than any parse: a microsecond, less
than the round trip to the child alone. A new child's import of SymPy is not charged to an
expression.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from slowness import SLOWNESS

from verifier.core.guard import CheckedExpression, ParserPool, check_expressions
from verifier.errors import ForbiddenSyntaxError, LimitError, UnknownFunctionError


@pytest.fixture
def pool() -> Iterator[ParserPool]:
    parsers = ParserPool(2, timeout_s=30.0 * SLOWNESS)
    try:
        yield parsers
    finally:
        parsers.close()


def test_the_pool_answers_as_parsing_here_does(pool: ParserPool) -> None:
    texts = ["sin(x)*exp(y)", "__import__(os)", "frobnicate(x)", "2*pi", "x**2 + y*z"]
    there = pool.parse(texts)
    here = check_expressions(texts)
    for mine, theirs in zip(there, here, strict=True):
        assert type(mine) is type(theirs)
        if isinstance(mine, CheckedExpression):
            assert mine == theirs
        else:
            assert str(mine) == str(theirs)
            assert mine.position == theirs.position  # type: ignore[union-attr]
    assert isinstance(there[1], ForbiddenSyntaxError) and there[1].position == 0
    assert isinstance(there[2], UnknownFunctionError)
    assert isinstance(there[0], CheckedExpression) and there[0].variables == ("x", "y")


def test_an_expression_past_the_bound_is_refused_and_the_pool_recovers() -> None:
    pool = ParserPool(1, timeout_s=1e-6)
    try:
        first, second, third = pool.parse(["x + 1", "y + 2", "z + 3"])
        assert isinstance(first, LimitError) and first.limit == "parse_timeout_s"
        assert "took more than 1e-06 s to parse" in str(first)
        assert isinstance(second, LimitError) and "expression 0 of this request" in str(second)
        assert isinstance(third, LimitError)
        pool.timeout_s = 30.0 * SLOWNESS
        (again,) = pool.parse(["x + 1"])  # a fresh child replaced the one killed
        assert isinstance(again, CheckedExpression) and again.variables == ("x",)
    finally:
        pool.close()


def test_many_threads_share_the_pool(pool: ParserPool) -> None:
    failures: list[str] = []

    def parse_many(offset: int) -> None:
        for n in range(15):
            text = f"sin(x) + {offset * 100 + n}*y"
            (result,) = pool.parse([text])
            if not (isinstance(result, CheckedExpression) and result.text == text):
                failures.append(f"{text}: {result!r}")

    threads = [threading.Thread(target=parse_many, args=(offset,)) for offset in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_new_parser_process_is_not_charged_its_start(pool: ParserPool) -> None:
    # A bound far below SymPy's import (about half a second here) still parses: the child
    # imports first, under its own budget, and the expression is timed alone. Both scale
    # with the machine's speed, so the bound does.
    pool.timeout_s = 0.25 * SLOWNESS
    (parsed,) = pool.parse(["sin(x)*y"])
    assert isinstance(parsed, CheckedExpression) and parsed.variables == ("x", "y")
