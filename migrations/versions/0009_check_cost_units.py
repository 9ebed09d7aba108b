"""Each check's estimated cost: ``checks.cost_units``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Written by hand from verifier/store/models.py. The admission estimate of a check
(verifier/core/expression/cost.py) is kept with it, so that the work a key has queued is one
sum (the per-key quota, docs/admission.md). Checks stored before this revision have no
estimate: NULL, counted as nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.add_column(sa.Column("cost_units", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.drop_column("cost_units")
