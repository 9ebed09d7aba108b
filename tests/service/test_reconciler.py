"""The reconciler on PostgreSQL: two reconcilers at once never publish the same check."""

from __future__ import annotations

import uuid

from verifier import claims, migrate, service
from verifier.config import Settings
from verifier.db import make_engine, make_session_factory
from verifier.models import utc_now
from verifier.reconciler import reconcile_once
from verifier.schemas import JobIn


class Recorder:
    def __init__(self) -> None:
        self.sent: list[uuid.UUID] = []

    def send_check(self, check_id: uuid.UUID, queue: str) -> None:
        self.sent.append(check_id)


def test_concurrent_reconcilers_split_the_stranded_checks(
    postgres_url: str, settings: Settings
) -> None:
    migrate.upgrade(postgres_url)
    engine = make_engine(postgres_url)
    sessions = make_session_factory(engine)
    try:
        body = JobIn.model_validate(
            {"checks": [{"expression": "x", "points": [{"x": n}]} for n in range(4)]}
        )
        with sessions() as session:
            job = service.submit_job(session, body, settings)  # stored, never sent
        with sessions() as first, sessions() as second:
            held = claims.unfinished_checks(first, utc_now(), limit=2)
            assert len(held) == 2  # locked by the first reconciler until it commits
            other = Recorder()
            assert reconcile_once(second, other, settings) == 2
            assert set(other.sent).isdisjoint({check.id for check in held})
            first.rollback()
        with sessions() as session:
            late = Recorder()
            assert reconcile_once(session, late, settings) == 2  # the two it had held
        assert set(late.sent) | set(other.sent) == {check.id for check in job.checks}
    finally:
        engine.dispose()
