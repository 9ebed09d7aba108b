"""Initial schema: jobs, checks, the functions each check calls, and reports.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written by hand from verifier/store/models.py. Statuses are VARCHAR, not native enums, so that a new
status is a code change rather than a type migration; timestamps keep their time zone.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_STATUSES = ("queued", "running", "done", "error")
CHECK_STATUSES = ("queued", "running", "done")


def _status(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=False, length=16)


def _timestamp(name: str, *, nullable: bool) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("status", _status(JOB_STATUSES, "job_status"), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("check_count", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_created_at"), "jobs", ["created_at"])
    op.create_index(op.f("ix_jobs_status"), "jobs", ["status"])

    op.create_table(
        "checks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=True),
        sa.Column("dtype", sa.String(length=16), nullable=False),
        sa.Column("device", sa.String(length=16), nullable=False),
        sa.Column("nodes", sa.Boolean(), nullable=False),
        sa.Column("hessian", sa.Boolean(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=True),
        sa.Column("domain", sa.JSON(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("rtol", sa.Float(), nullable=True),
        sa.Column("atol", sa.Float(), nullable=True),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("status", _status(CHECK_STATUSES, "check_status"), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("enqueued_at", nullable=True),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_checks_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checks")),
        sa.UniqueConstraint("job_id", "position", name=op.f("uq_checks_job_id_position")),
    )
    op.create_index(op.f("ix_checks_job_id"), "checks", ["job_id"])
    op.create_index(op.f("ix_checks_status"), "checks", ["status"])

    op.create_table(
        "check_functions",
        sa.Column("check_id", sa.Uuid(), nullable=False),
        sa.Column("function", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["check_id"],
            ["checks.id"],
            name=op.f("fk_check_functions_check_id_checks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("check_id", "function", name=op.f("pk_check_functions")),
    )
    op.create_index(op.f("ix_check_functions_function"), "check_functions", ["function"])

    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("check_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("dtype", sa.String(length=16), nullable=False),
        sa.Column("device", sa.String(length=32), nullable=False),
        sa.Column("worst_abs_error", sa.Float(), nullable=True),
        sa.Column("worst_rel_error", sa.Float(), nullable=True),
        sa.Column("worst_ulp_error", sa.Float(), nullable=True),
        sa.Column("torch_version", sa.String(length=64), nullable=True),
        sa.Column("sympy_version", sa.String(length=64), nullable=True),
        sa.Column("total_seconds", sa.Float(), nullable=True),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        _timestamp("created_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["check_id"], ["checks.id"], name=op.f("fk_reports_check_id_checks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_reports_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("check_id", name=op.f("uq_reports_check_id")),
    )
    for column in ("created_at", "device", "dtype", "job_id", "verdict"):
        op.create_index(op.f(f"ix_reports_{column}"), "reports", [column])


def downgrade() -> None:
    for column in ("created_at", "device", "dtype", "job_id", "verdict"):
        op.drop_index(op.f(f"ix_reports_{column}"), table_name="reports")
    op.drop_table("reports")
    op.drop_index(op.f("ix_check_functions_function"), table_name="check_functions")
    op.drop_table("check_functions")
    op.drop_index(op.f("ix_checks_status"), table_name="checks")
    op.drop_index(op.f("ix_checks_job_id"), table_name="checks")
    op.drop_table("checks")
    op.drop_index(op.f("ix_jobs_status"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_created_at"), table_name="jobs")
    op.drop_table("jobs")
