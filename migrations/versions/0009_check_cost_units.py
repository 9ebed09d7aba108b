"""Each check's estimated cost and queue priority: ``checks.cost_units``, ``checks.priority``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Written by hand from verifier/store/models.py. The admission estimate of a check
(verifier/core/expression/cost.py) is kept with it, so that the work a key has queued is one
sum (the per-key quota, docs/admission.md), and the priority its message was published with
(from the work its key had queued before it, so that one key's backlog does not hold another
key's checks), which a re-send keeps. Checks stored before this revision have neither: NULL,
counted as nothing and published at the highest priority.
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
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.drop_column("priority")
        batch.drop_column("cost_units")
