"""Claims on checks (owner token, lease) and API keys owning jobs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Written by hand from verifier/store/models.py. ``checks.owner`` and ``checks.lease_expires_at`` let a
worker claim a check and finish only a check it still owns (docs/delivery.md).
``api_keys`` holds SHA-256 hashes of keys; ``jobs.api_key_id`` is the key that submitted a job
(NULL for jobs made while keys were off, and for every job made before this revision).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("api_key_id", sa.Uuid(), nullable=True))
        batch.create_index(batch.f("ix_jobs_api_key_id"), ["api_key_id"])
        batch.create_foreign_key(
            batch.f("fk_jobs_api_key_id_api_keys"), "api_keys", ["api_key_id"], ["id"]
        )
    with op.batch_alter_table("checks") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("owner")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(batch.f("fk_jobs_api_key_id_api_keys"), type_="foreignkey")
        batch.drop_index(batch.f("ix_jobs_api_key_id"))
        batch.drop_column("api_key_id")
    op.drop_table("api_keys")
