"""A job counts its reports as they are written (verifier/store/claims.py): under concurrent
writers on PostgreSQL the count is exact, and the last report finishes the job once, with the
worst verdict (the verdict table's order) and whether every check passed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from verifier.config import Settings
from verifier.delivery.execution import passes, report_row
from verifier.service import jobs
from verifier.service.schemas import JobIn
from verifier.store import claims, migrate, repository
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import JobStatus

WRITERS = 8
CHECKS = 40
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def test_concurrent_writers_count_every_report_and_finish_the_job_once(
    postgres_url: str, make_report_document: Any
) -> None:
    report_document = make_report_document
    migrate.upgrade(postgres_url)
    engine = make_engine(postgres_url, pool_size=WRITERS + 2)
    sessions = make_session_factory(engine)
    try:
        body = JobIn.model_validate(
            {"checks": [{"expression": f"x + {n}", "points": [{"x": 1}]} for n in range(CHECKS)]}
        )
        with sessions() as session:
            job = jobs.submit_job(session, body, Settings(database_url=postgres_url))
            job_id = job.id
            checks = list(job.checks)
        # One check is undefined (passes the default policy), one fails: the job's verdict is
        # fail, the worst of pass < undefined < fail, and it did not pass.
        verdicts = ["pass"] * CHECKS
        verdicts[7], verdicts[23] = "undefined", "fail"
        failures: list[str] = []

        def write(part: int) -> None:
            for number in range(part, CHECKS, WRITERS):
                check = checks[number]
                with sessions() as session:
                    row = report_row(check, report_document(check.expression, verdicts[number]))
                    if not claims.record_report(session, row, NOW, passed=passes(check, row)):
                        failures.append(f"check {number} was not recorded")
                    session.commit()

        threads = [threading.Thread(target=write, args=(part,)) for part in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        with sessions() as session:
            final = repository.get_job(session, job_id)
            assert final is not None
            assert (final.reported, final.status) == (CHECKS, JobStatus.DONE)
            assert (final.verdict, final.passed) == ("fail", False)
            again = report_row(checks[0], report_document("x + 0", "pass"))
            assert not claims.record_report(session, again, NOW, passed=True)  # a duplicate
            session.commit()
            assert repository.get_job(session, job_id).reported == CHECKS  # type: ignore[union-attr]
    finally:
        engine.dispose()
