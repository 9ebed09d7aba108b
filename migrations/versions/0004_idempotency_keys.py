"""Idempotency keys of submissions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

Written by hand from verifier/store/models.py. ``jobs.idempotency_key`` is the ``Idempotency-Key``
a client sent with ``POST /jobs``, prefixed by the id of the API key that sent it (``-`` while
keys are off), and ``jobs.request_digest`` the SHA-256 of that request; both NULL for jobs
submitted without a key, every job made before this revision included. A unique index makes
one job per owner and key even when two submissions race (NULLs do not collide).

The columns are only added and the index is created in place (SQLite adds a column and
creates an index without a batch copy of ``jobs``); downgrading drops the columns, which on
SQLite copies the table, with foreign keys off as migrations/env.py arranges.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDEMPOTENCY_SCOPE_CHARS = 165  # models.IDEMPOTENCY_SCOPE_CHARS at this revision: 36 + 1 + 128
REQUEST_DIGEST_CHARS = 64  # SHA-256 in hex


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("idempotency_key", sa.String(length=IDEMPOTENCY_SCOPE_CHARS), nullable=True)
        )
        batch.add_column(
            sa.Column("request_digest", sa.String(length=REQUEST_DIGEST_CHARS), nullable=True)
        )
    op.create_index(op.f("ix_jobs_idempotency_key"), "jobs", ["idempotency_key"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_idempotency_key"), table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("request_digest")
        batch.drop_column("idempotency_key")
