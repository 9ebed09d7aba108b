"""A check's function names as long as the parser accepts: ``check_functions.function``
VARCHAR(32) -> VARCHAR(64).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Written by hand from verifier/store/models.py (``FUNCTION_NAME_CHARS``). The parser accepts names
of up to 64 characters (``MAX_NAME_CHARS``), and a plugin's function named with 33 to 64 of them
could not be stored on PostgreSQL (SQLite does not enforce a VARCHAR's length). Widening keeps
every stored name.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("check_functions") as batch:
        batch.alter_column(
            "function", existing_type=sa.String(32), type_=sa.String(64), existing_nullable=False
        )


def downgrade() -> None:
    # Names longer than 32 characters would not fit back: they are cut, as the old column held.
    op.execute(sa.text("UPDATE check_functions SET function = substr(function, 1, 32)"))
    with op.batch_alter_table("check_functions") as batch:
        batch.alter_column(
            "function", existing_type=sa.String(64), type_=sa.String(32), existing_nullable=False
        )
