"""Idempotency keys in the database (migration 0004): the unique index that settles racing
submissions, scoping by api_key_id, and rows kept across 0003 <-> 0004, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import column, func, select, table
from sqlalchemy.exc import IntegrityError

from verifier.config import Settings
from verifier.service import jobs
from verifier.service.schemas import JobIn
from verifier.store import migrate
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.keys import create_key
from verifier.store.models import Check, Job

BODY = {"checks": [{"expression": "x**2", "points": [{"x": 2}]}]}
KEY = "0f8e2a6c-5d1b-4c3a-9e7f-123456789abc"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keys.sqlite3'}"
    else:
        yield request.getfixturevalue("postgres_url")


def _job(scoped_key: str | None) -> Job:
    return Job(check_count=0, idempotency_key=scoped_key, request_digest="0" * 64)


def test_the_database_refuses_a_second_job_with_one_scoped_key(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        sessions = make_session_factory(engine)
        with sessions() as session:
            session.add_all([_job(f"-:{KEY}"), _job(None), _job(None)])  # NULLs never collide
            session.commit()
        with sessions() as session, pytest.raises(IntegrityError):
            session.add(_job(f"-:{KEY}"))
            session.commit()
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(Job)) == 3
    finally:
        engine.dispose()


def test_one_key_of_two_owners_makes_two_jobs_and_a_retry_of_each_finds_its_own(
    database_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(database_url)
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    engine = make_engine(database_url)
    request = JobIn.model_validate(BODY)
    try:
        sessions = make_session_factory(engine)
        with sessions() as session:
            # Owners are API key ids, which jobs refer to: the keys exist first.
            alice, _ = create_key(session, "alice")
            bob, _ = create_key(session, "bob")
            owners = [alice.id, bob.id, None]  # None: keys off
            first = [
                jobs.submit(session, request, settings, api_key_id, idempotency_key=KEY)
                for api_key_id in owners
            ]
            again = [
                jobs.submit(session, request, settings, api_key_id, idempotency_key=KEY)
                for api_key_id in owners
            ]
        assert [s.replayed for s in first] == [False, False, False]
        assert [s.replayed for s in again] == [True, True, True]
        assert [s.job.id for s in again] == [s.job.id for s in first]
        assert len({s.job.id for s in first}) == 3
        assert [s.job.idempotency_key for s in first] == [
            f"{alice.id}:{KEY}",
            f"{bob.id}:{KEY}",
            f"-:{KEY}",  # verifier/store/models.py: "-" is the api_key_id while keys are off
        ]
    finally:
        engine.dispose()


JOB_COLUMNS_AT_0003 = ("id", "status", "check_count", "created_at")


def test_migration_0004_keeps_every_job_and_check_both_ways(database_url: str) -> None:
    migrate.upgrade(database_url, "0003")
    job_id, check_id = uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 12, 4, tzinfo=UTC)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            # Revision 0003's columns only.
            old_jobs = table(
                "jobs",
                *(column(name, Job.__table__.c[name].type) for name in JOB_COLUMNS_AT_0003),
            )
            connection.execute(
                old_jobs.insert().values(id=job_id, status="queued", check_count=1, created_at=now)
            )
            connection.execute(
                Check.__table__.insert().values(
                    id=check_id, job_id=job_id, position=0, expression="x**2",
                    variables=["x"], dtype="float64", device="cpu", nodes=False,
                    hessian=True, seed=0, strict=False, queue="cpu", status="queued",
                    attempts=0, created_at=now,
                )
            )  # fmt: skip
    finally:
        engine.dispose()
    for revision in ("0004", "0003", "0004"):
        if revision > (migrate.current(database_url) or ""):
            migrate.upgrade(database_url, revision)
        else:
            migrate.downgrade(database_url, revision)
        engine = make_engine(database_url)
        try:
            with engine.connect() as connection:
                job_ids = connection.execute(select(Job.__table__.c.id)).scalars().all()
                checks = connection.execute(select(Check.__table__.c.job_id)).scalars().all()
        finally:
            engine.dispose()
        assert (job_ids, checks) == ([job_id], [job_id]), revision
    migrate.upgrade(database_url)  # the models are the newest revision's
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            job = session.get(Job, job_id)
            assert job is not None
            assert (job.idempotency_key, job.request_digest) == (None, None)  # made without
    finally:
        engine.dispose()
