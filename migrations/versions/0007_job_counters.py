"""Jobs count their reports as they are written: ``reported``, ``worst_verdict``, ``all_passed``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Written by hand from verifier/store/models.py. A worker used to finish a job by reading every
report of it after each check (half a million rows for a job of 1,000 checks); now the
transaction that writes a report counts it in its job's row, and the report that completes the
job finishes it. Existing jobs get their counts here: ``reported`` for every job, and the worst
verdict and whether all passed for the jobs still running (finished jobs keep their verdict).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from verifier.core.judge.verdict import worst
from verifier.store.documents import ReportView
from verifier.store.outcome import read_outcome

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERDICT_CHARS = 16  # models.VERDICT_CHARS

JOBS = sa.table(
    "jobs",
    sa.column("id", sa.Uuid),
    sa.column("status", sa.String),
    sa.column("reported", sa.Integer),
    sa.column("worst_verdict", sa.String),
    sa.column("all_passed", sa.Boolean),
)
REPORTS = sa.table(
    "reports",
    sa.column("job_id", sa.Uuid),
    sa.column("check_id", sa.Uuid),
    sa.column("verdict", sa.String),
    sa.column("document", sa.JSON),
)
CHECKS = sa.table(
    "checks", sa.column("id", sa.Uuid), sa.column("fail_on", sa.JSON), sa.column("strict", sa.Boolean)
)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("reported", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("worst_verdict", sa.String(length=VERDICT_CHARS), nullable=True))
        batch.add_column(sa.Column("all_passed", sa.Boolean(), nullable=True))
    counted = (
        sa.select(sa.func.count())
        .select_from(REPORTS)
        .where(REPORTS.c.job_id == JOBS.c.id)
        .scalar_subquery()
    )
    connection = op.get_bind()
    connection.execute(sa.update(JOBS).values(reported=counted))
    running = connection.execute(
        sa.select(JOBS.c.id).where(JOBS.c.status.in_(["queued", "running"]), JOBS.c.reported > 0)
    ).scalars()
    for job_id in list(running):
        rows = connection.execute(
            sa.select(REPORTS.c.verdict, REPORTS.c.document, CHECKS.c.fail_on, CHECKS.c.strict)
            .join(CHECKS, CHECKS.c.id == REPORTS.c.check_id)
            .where(REPORTS.c.job_id == job_id)
        ).all()
        passed = all(
            read_outcome(
                ReportView.read(document, verdict), None, fail_on=fail_on, strict=strict
            ).passed
            for verdict, document, fail_on, strict in rows
        )
        connection.execute(
            sa.update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(worst_verdict=str(worst(row.verdict for row in rows)), all_passed=passed)
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("all_passed")
        batch.drop_column("worst_verdict")
        batch.drop_column("reported")
