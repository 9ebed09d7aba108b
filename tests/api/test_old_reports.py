"""Reports stored before the verdict table still read right after ``db upgrade``.

The rows are written at revision 0002 in the old report format: the ``Report.to_dict()`` of
commit aec9b5e's parent (``git show aec9b5e^:verifier/core/judge/report.py``): verdicts of the old
set only, a top-level ``strict``, no ``counts``, ``blamed``, ``fail_on`` or ``passed``, entries
without ``ratio`` or ``blame``. Then the database is upgraded and read through the API (over
real HTTP), the CLI's tables and the CLI itself, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from rich.console import Console
from slowness import SLOWNESS

from verifier.api import create_app
from verifier.cli.render import print_job_summary, reports_table, stats_table
from verifier.config import Settings
from verifier.delivery.execution import passes
from verifier.store import claims, migrate, repository
from verifier.store.documents import report_row
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import UTCDateTime

ReportDocument = Callable[..., dict[str, Any]]

# The tables as revision 0002 made them (migrations/versions/0001_*.py and 0002_*.py), only
# the columns written here; the models have moved on.
OLD = sa.MetaData()
JOBS = sa.Table(
    "jobs",
    OLD,
    sa.Column("id", sa.Uuid()),
    sa.Column("status", sa.String(16)),
    sa.Column("verdict", sa.String(16)),
    sa.Column("check_count", sa.Integer()),
    sa.Column("created_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
)
CHECKS = sa.Table(
    "checks",
    OLD,
    sa.Column("id", sa.Uuid()),
    sa.Column("job_id", sa.Uuid()),
    sa.Column("position", sa.Integer()),
    sa.Column("expression", sa.Text()),
    sa.Column("variables", sa.JSON()),
    sa.Column("points", sa.JSON()),
    sa.Column("dtype", sa.String(16)),
    sa.Column("device", sa.String(16)),
    sa.Column("nodes", sa.Boolean()),
    sa.Column("hessian", sa.Boolean()),
    sa.Column("seed", sa.Integer()),
    sa.Column("strict", sa.Boolean()),
    sa.Column("queue", sa.String(64)),
    sa.Column("status", sa.String(16)),
    sa.Column("attempts", sa.Integer()),
    sa.Column("created_at", UTCDateTime()),
)
REPORTS = sa.Table(
    "reports",
    OLD,
    sa.Column("check_id", sa.Uuid()),
    sa.Column("job_id", sa.Uuid()),
    sa.Column("verdict", sa.String(16)),
    sa.Column("reason", sa.Text()),
    sa.Column("dtype", sa.String(16)),
    sa.Column("device", sa.String(32)),
    sa.Column("worst_abs_error", sa.Float()),
    sa.Column("worst_rel_error", sa.Float()),
    sa.Column("worst_ulp_error", sa.Float()),
    sa.Column("versions", sa.JSON()),
    sa.Column("timings", sa.JSON()),
    sa.Column("entries", sa.JSON()),
    sa.Column("document", sa.JSON()),
    sa.Column("created_at", UTCDateTime()),
)
WRITTEN_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STRICT_BEFORE = sorted(  # --strict now: everything but pass, domain, error (verdict.py)
    ["undefined", "ill-conditioned", "range", "unverified", "nonfinite", "fail"]
)


def _old_entry(kind: str, wrt: list[str], point: int, verdict: str, ulps: float) -> dict[str, Any]:
    detail = "strict: the derivative does not exist here" if verdict == "fail" else None
    return {
        "kind": kind,
        "wrt": wrt,
        "node": None,
        "point": point,
        "autograd": 1.0,
        "reference": 1.0 if verdict == "pass" else None,
        "reference_radius": 0.0,
        "abs_error": 0.0,
        "rel_error": 0.0,
        "ulp_error": ulps,
        "tolerance": 1e-13,
        "verdict": verdict,
        "detail": detail,
    }


def _old_document(
    expression: str, verdict: str, entries: list[dict[str, Any]], *, strict: bool
) -> dict[str, Any]:
    """An old report document (entries travel in their own column)."""
    ulps = [e["ulp_error"] for e in entries]
    return {
        "expression": expression,
        "variables": ["x"],
        "dtype": "float64",
        "device": "cpu",
        "verdict": verdict,
        "reason": "symbolic timeout" if verdict == "error" else None,
        "strict": strict,
        "reference_method": None if verdict == "error" else "arb",
        "tolerance": {"rtol": 1.4e-14, "atol": 2.2e-308, "ulps": 64.0},
        "points": [{"x": 0.0}, {"x": 0.5}][: len({e["point"] for e in entries})],
        "functions": ["Abs"] if "Abs" in expression else [],
        "notes": [],
        "worst": {"abs_error": 0.0, "rel_error": 0.0, "ulp_error": max(ulps, default=None)},
        "versions": {"torch": "2.5.0", "sympy": "1.13.3"},
        "timings": {"total": 0.5},
    }


class OldRows:
    """Writes jobs, checks and reports as the code of revision 0002 did."""

    def __init__(self, connection: sa.Connection):
        self.connection = connection

    def job(self, verdict: str | None, checks: int) -> uuid.UUID:
        job_id = uuid.uuid4()
        status = {None: "queued", "error": "error"}.get(verdict, "done")
        finished = None if verdict is None else WRITTEN_AT
        self.connection.execute(
            JOBS.insert().values(
                id=job_id,
                status=status,
                verdict=verdict,
                check_count=checks,
                created_at=WRITTEN_AT,
                finished_at=finished,
            )
        )
        return job_id

    def check(
        self,
        job_id: uuid.UUID,
        position: int,
        expression: str,
        *,
        strict: bool = False,
        report: tuple[str, list[dict[str, Any]]] | None = None,
    ) -> uuid.UUID:
        check_id = uuid.uuid4()
        self.connection.execute(
            CHECKS.insert().values(
                id=check_id,
                job_id=job_id,
                position=position,
                expression=expression,
                variables=["x"],
                points=[{"x": 0}],
                dtype="float64",
                device="cpu",
                nodes=False,
                hessian=True,
                seed=0,
                strict=strict,
                queue="cpu",
                status="queued" if report is None else "done",
                attempts=0 if report is None else 1,
                created_at=WRITTEN_AT,
            )
        )
        if report is not None:
            verdict, entries = report
            document = _old_document(expression, verdict, entries, strict=strict)
            self.connection.execute(
                REPORTS.insert().values(
                    check_id=check_id,
                    job_id=job_id,
                    verdict=verdict,
                    reason=document["reason"],
                    dtype="float64",
                    device="cpu",
                    worst_abs_error=0.0,
                    worst_rel_error=0.0,
                    worst_ulp_error=document["worst"]["ulp_error"],
                    versions=document["versions"],
                    timings=document["timings"],
                    entries=entries,
                    document=document,
                    created_at=WRITTEN_AT,
                )
            )
        return check_id


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at revision 0002 (the schema before fail_on), on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate.upgrade(url, "0002")
    yield url


def _write_old_jobs(url: str) -> dict[str, uuid.UUID]:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            rows = OldRows(connection)
            # Abs(x) at 0 and 0.5: undefined at the kink, a pass elsewhere; the cancellation
            # example, strict (which then turned undefined into fail); the old verdict order
            # pass < undefined < domain < nonfinite < fail < error made the job's "fail".
            mixed = rows.job("fail", 2)
            rows.check(
                mixed,
                0,
                "Abs(x)",
                report=(
                    "undefined",
                    [
                        _old_entry("gradient", ["x"], 0, "undefined", 0.0),
                        _old_entry("hessian", ["x", "x"], 0, "undefined", 0.0),
                        _old_entry("gradient", ["x"], 1, "pass", 0.0),
                        _old_entry("hessian", ["x", "x"], 1, "pass", 0.0),
                    ],
                ),
            )
            rows.check(
                mixed,
                1,
                "Abs(x)**3",
                strict=True,
                report=(
                    "fail",
                    [
                        _old_entry("gradient", ["x"], 0, "fail", 3.0),
                        _old_entry("hessian", ["x", "x"], 0, "pass", 0.0),
                    ],
                ),
            )
            passing = rows.job("pass", 1)
            rows.check(
                passing, 0, "x**2", report=("pass", [_old_entry("gradient", ["x"], 0, "pass", 0.5)])
            )
            errored = rows.job("error", 1)
            rows.check(errored, 0, "exp(exp(exp(x)))", report=("error", []))
            # Half done at the upgrade: its last report is written by the new code.
            half = rows.job(None, 2)
            rows.check(
                half,
                0,
                "Abs(x) + 1",
                report=("undefined", [_old_entry("gradient", ["x"], 0, "undefined", 0.0)]),
            )
            rows.check(half, 1, "x**3")
    finally:
        engine.dispose()
    return {"mixed": mixed, "passing": passing, "errored": errored, "half": half}


def _text(render: Callable[[Console], None]) -> str:
    console = Console(file=io.StringIO(), width=160, record=True)
    render(console)
    return console.export_text()


def _service_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "verifier", *arguments],
        capture_output=True,
        text=True,
        timeout=120 * SLOWNESS,
    )


def test_old_reports_read_right_through_the_api_and_the_cli_after_the_upgrade(
    old_database: str,
    tmp_path: Path,
    server_thread: Any,
    make_report_document: ReportDocument,
) -> None:
    jobs = _write_old_jobs(old_database)
    migrate.upgrade(old_database)

    # The job left half done is finished by a report of the new format.
    engine = make_engine(old_database)
    try:
        with make_session_factory(engine)() as session:
            last = repository.checks_of_job(session, jobs["half"])[1]
            document = make_report_document(last.expression, "pass")
            row = report_row(last, document)
            # Written as a worker writes it: counted in its job (migration 0007 counted the
            # job's old report), and the last report finishes the job.
            assert claims.record_report(session, row, WRITTEN_AT, passed=passes(last, row))
            session.commit()
            job = repository.get_job(session, jobs["half"])
            assert job is not None and job.status == "done" and job.reported == 2
    finally:
        engine.dispose()

    settings = Settings(
        data_dir=tmp_path / "data", database_url=old_database, requeue_interval_s=0, api_keys="off"
    )
    with (
        server_thread(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        job = http.get(f"/jobs/{jobs['mixed']}").json()
        # Migration 0003 fills in 'passed' from the old verdict: pass, undefined and domain
        # passed, the rest did not.
        assert (job["verdict"], job["passed"]) == ("fail", False)
        assert http.get(f"/jobs/{jobs['passing']}").json()["passed"] is True
        assert http.get(f"/jobs/{jobs['errored']}").json()["passed"] is False
        # Old undefined under the default policy, new pass: passed (worst: undefined).
        half = http.get(f"/jobs/{jobs['half']}").json()
        assert (half["status"], half["verdict"], half["passed"]) == ("done", "undefined", True)

        response = http.get(f"/jobs/{jobs['mixed']}/report")
        assert response.status_code == 200, response.text
        report = response.json()
        first, second = report["checks"]
        assert first["verdict"] == "undefined" and first["strict"] is False
        assert first["fail_on"] == ["fail", "nonfinite"]  # DEFAULT_FAIL_ON, verdict.py
        assert first["passed"] is True
        assert first["counts"] == {"pass": 2, "undefined": 2}  # its four entries, counted
        assert first["blamed"] == []
        assert second["verdict"] == "fail" and second["fail_on"] == STRICT_BEFORE
        assert second["passed"] is False
        assert second["counts"] == {"pass": 1, "fail": 1}
        assert len(second["entries"]) == 2 and "ratio" not in second["entries"][0]

        page = http.get("/reports", params={"limit": 10}).json()
        verdicts = sorted(item["verdict"] for item in page["items"])
        assert verdicts == ["error", "fail", "pass", "pass", "undefined", "undefined"]
        errored = next(item for item in page["items"] if item["verdict"] == "error")
        assert errored["passed"] is False and errored["counts"] == {}
        assert all(
            item["worst"]["ratio"] is None for item in page["items"] if "Abs" in item["expression"]
        )
        undefined = http.get("/reports", params={"verdict": "undefined"}).json()["items"]
        assert sorted(item["expression"] for item in undefined) == ["Abs(x)", "Abs(x) + 1"]

        stats = http.get("/stats").json()
        assert stats["counts"] == {"pass": 2, "undefined": 2, "fail": 1, "error": 1}
        assert list(stats["counts"]) == ["pass", "undefined", "fail", "error"]  # table order

        summary = _text(lambda console: print_job_summary(console, job, report))
        assert "2 pass, 2 undefined" in summary and "1 pass, 1 fail" in summary
        assert "failed (1 of 2 checks)" in summary
        listing = _text(lambda console: console.print(reports_table(page)))
        assert "Abs(x)**3" in listing and "undefined" in listing
        assert "undefined" in _text(lambda console: console.print(stats_table(stats)))

        status = _service_cli("status", str(jobs["mixed"]), "--url", url)
        assert status.returncode == 0, status.stderr
        assert "2 pass, 2 undefined" in status.stdout and "Traceback" not in status.stderr
        listed = _service_cli("reports", "--verdict", "fail", "--json", "--url", url)
        assert listed.returncode == 0, listed.stderr
        assert [item["expression"] for item in json.loads(listed.stdout)["items"]] == ["Abs(x)**3"]
