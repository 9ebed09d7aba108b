"""A check's fail-on policy and whether a job passed it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Written by hand from verifier/store/models.py. ``checks.fail_on`` is the list of verdict names that
make a check fail (verifier/core/judge/verdict.py); NULL for the checks made before this revision,
whose policy is the one their ``strict`` flag names. ``jobs.passed`` says whether every check of
a finished job passed its policy.

Both columns are only added (SQLite adds a column in place; a batch copy of ``checks`` or
``jobs`` would drop the old table, and with foreign keys on that deletes the rows that
reference it). Finished jobs are filled in from their stored verdict: before this revision the
verdicts were pass < undefined < domain < nonfinite < fail < error, a check failed on
nonfinite and fail (strict had already turned undefined into fail), and a job's verdict was
the worst of its checks', so a job passed exactly when its verdict was pass, undefined or
domain.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PASSING_BEFORE_0003 = ("pass", "undefined", "domain")


def upgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.add_column(sa.Column("fail_on", sa.JSON(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("passed", sa.Boolean(), nullable=True))
    jobs = sa.table("jobs", sa.column("verdict", sa.String()), sa.column("passed", sa.Boolean()))
    op.execute(
        jobs.update()
        .where(jobs.c.verdict.is_not(None))
        .values(passed=jobs.c.verdict.in_(PASSING_BEFORE_0003))
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("passed")
    with op.batch_alter_table("checks") as batch:
        batch.drop_column("fail_on")
