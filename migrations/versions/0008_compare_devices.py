"""Checks compared across devices: ``checks.compare_devices``, ``reports.compared_device`` and
``reports.compared_verdict``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Written by hand from verifier/store/models.py. A check with ``compare_devices`` runs autograd on
two devices (verifier/core/judge/devices.py); its report is the first device's, and the second
device's name and verdict are stored beside it so that reports filter and stats group by
either device. Existing rows compared nothing: every new column is NULL for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERDICT_CHARS = 16  # models.VERDICT_CHARS


def upgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.add_column(sa.Column("compare_devices", sa.JSON(), nullable=True))
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("compared_device", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("compared_verdict", sa.String(length=VERDICT_CHARS), nullable=True)
        )
        batch.create_index("ix_reports_compared_device", ["compared_device"])


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_index("ix_reports_compared_device")
        batch.drop_column("compared_verdict")
        batch.drop_column("compared_device")
    with op.batch_alter_table("checks") as batch:
        batch.drop_column("compare_devices")
