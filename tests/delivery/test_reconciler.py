"""The reconciler on PostgreSQL: two reconcilers at once never publish the same check."""

from __future__ import annotations

from verifier.config import Settings
from verifier.delivery.reconciler import reconcile_once
from verifier.delivery.sender import InMemorySender
from verifier.service import jobs
from verifier.service.schemas import JobIn
from verifier.store import claims, migrate
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import utc_now


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
            job = jobs.submit_job(session, body, settings)  # stored, never sent
        with sessions() as first, sessions() as second:
            held = claims.unfinished_checks(first, utc_now(), limit=2)
            assert len(held) == 2  # locked by the first reconciler until it commits
            other = InMemorySender()
            assert reconcile_once(second, other, settings) == 2
            assert set(other.check_ids).isdisjoint({check.id for check in held})
            first.rollback()
        with sessions() as session:
            late = InMemorySender()
            assert reconcile_once(session, late, settings) == 2  # the two it had held
        assert set(late.check_ids) | set(other.check_ids) == {check.id for check in job.checks}
    finally:
        engine.dispose()
