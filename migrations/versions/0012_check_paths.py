"""The derivative paths a check judges: ``checks.modes`` and ``checks.compare_batch``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

Written by hand from verifier/store/models.py. A check may judge its derivatives along further
paths than reverse and reverse-over-reverse (verifier/core/program/modes.py), and run the
default ones point by point besides (``compare_batch``); both are stored with it. Existing rows
judged the default paths in a batch: NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.add_column(sa.Column("modes", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("compare_batch", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.drop_column("compare_batch")
        batch.drop_column("modes")
