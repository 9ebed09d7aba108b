"""Every name the parser accepts fits the column that stores it, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from verifier.config import Settings
from verifier.core.expression import registry
from verifier.core.expression.syntax import MAX_NAME_CHARS
from verifier.service import jobs
from verifier.service.schemas import CheckIn, JobIn
from verifier.store import migrate
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import FUNCTION_NAME_CHARS, CheckFunction

LONGEST_NAME = "f" * MAX_NAME_CHARS


def test_the_function_column_holds_the_longest_name_the_parser_accepts() -> None:
    assert FUNCTION_NAME_CHARS >= MAX_NAME_CHARS
    assert CheckFunction.__table__.c.function.type.length == FUNCTION_NAME_CHARS


@pytest.fixture
def longest_function() -> Iterator[str]:
    registry.register_function(LONGEST_NAME, lambda x: x * x, "x**2")
    try:
        yield LONGEST_NAME
    finally:
        registry.forget(LONGEST_NAME)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_custom_function_with_the_longest_name_is_stored(
    database: str, longest_function: str, fresh_sqlite_url: str, request: pytest.FixtureRequest
) -> None:
    # Once, a plugin function named with 33 to 64 characters was a 500 on PostgreSQL, whose
    # column held 32 (SQLite ignores a VARCHAR's length).
    url = fresh_sqlite_url if database == "sqlite" else request.getfixturevalue("postgres_url")
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            body = JobIn(checks=[CheckIn(expression=f"{longest_function}(x)", points=[{"x": 3}])])
            job = jobs.submit_job(session, body, Settings(database_url=url))
            stored = session.scalars(
                select(CheckFunction.function).where(CheckFunction.check_id == job.checks[0].id)
            ).all()
        assert stored == [longest_function]
    finally:
        engine.dispose()
