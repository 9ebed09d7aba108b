"""Sign-ins to the report pages: ``ui_sessions``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08

Written by hand from verifier/store/models.py. A browser that signs in to ``/ui/`` gets a
random session token in a cookie instead of its API key; the table keeps the token's SHA-256,
the key it acts as and when it ends (docs/pages.md). Deleting a key deletes its sessions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_ui_sessions_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_ui_sessions")),
    )
    with op.batch_alter_table("ui_sessions") as batch:
        batch.create_index(batch.f("ix_ui_sessions_api_key_id"), ["api_key_id"])
        batch.create_index(batch.f("ix_ui_sessions_expires_at"), ["expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("ui_sessions") as batch:
        batch.drop_index(batch.f("ix_ui_sessions_expires_at"))
        batch.drop_index(batch.f("ix_ui_sessions_api_key_id"))
    op.drop_table("ui_sessions")
