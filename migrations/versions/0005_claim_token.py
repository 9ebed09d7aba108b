"""The token of the execution that claimed a check is ``claim_token`` (it was ``owner``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

``owner`` also meant a job's API key in the service; the column is renamed in place (SQLite has
had ``RENAME COLUMN`` since 3.25), so its values, running checks' claims included, stay.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE checks RENAME COLUMN owner TO claim_token")


def downgrade() -> None:
    op.execute("ALTER TABLE checks RENAME COLUMN claim_token TO owner")
