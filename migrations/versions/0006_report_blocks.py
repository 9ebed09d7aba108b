"""Report entries in blocks of columns (``report_blocks``) instead of one JSON list per report.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Written by hand from verifier/store/models.py. A report's entries were one JSON value, which
grows with the check (303 MB for 1,121,000 entries) and would pass PostgreSQL's limit of 1 GB
for a value at about 4,000 points of 32 variables. Each report's entries move, one report at
a time, into blocks of at most ``BLOCK_ENTRIES`` encoded by verifier/store/blocks.py (format
1, which every later reader keeps decoding); then ``reports.entries`` is dropped (SQLite copies
the table, with foreign keys off as migrations/env.py arranges). Downgrading puts the entries
back as JSON lists, exactly as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from verifier.store.blocks import blocks_of, decode

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPORTS = sa.table("reports", sa.column("id", sa.Integer), sa.column("entries", sa.JSON))
BLOCKS = sa.table(
    "report_blocks",
    sa.column("report_id", sa.Integer),
    sa.column("number", sa.Integer),
    sa.column("first_entry", sa.Integer),
    sa.column("entries", sa.Integer),
    sa.column("failing", sa.Integer),
    sa.column("data", sa.LargeBinary),
)


def upgrade() -> None:
    op.create_table(
        "report_blocks",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("first_entry", sa.Integer(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("failing", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
            name=op.f("fk_report_blocks_report_id_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("report_id", "number", name=op.f("pk_report_blocks")),
    )
    connection = op.get_bind()
    last = -1
    while True:  # one report at a time: a report's entries may be hundreds of megabytes
        row = connection.execute(
            sa.select(REPORTS.c.id, REPORTS.c.entries)
            .where(REPORTS.c.id > last)
            .order_by(REPORTS.c.id)
            .limit(1)
        ).first()
        if row is None:
            break
        last = row.id
        rows = [
            {
                "report_id": row.id,
                "number": block.number,
                "first_entry": block.first,
                "entries": block.entries,
                "failing": block.failing,
                "data": block.data,
            }
            for block in blocks_of(row.entries or [])
        ]
        if rows:
            connection.execute(sa.insert(BLOCKS), rows)
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("entries")


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("entries", sa.JSON(), nullable=True))
    connection = op.get_bind()
    ids = connection.execute(sa.select(REPORTS.c.id).order_by(REPORTS.c.id)).scalars().all()
    for report_id in ids:
        data = connection.execute(
            sa.select(BLOCKS.c.data)
            .where(BLOCKS.c.report_id == report_id)
            .order_by(BLOCKS.c.number)
        ).scalars()
        entries = [entry for block in data for entry in decode(block)]
        connection.execute(
            sa.update(REPORTS).where(REPORTS.c.id == report_id).values(entries=entries)
        )
    with op.batch_alter_table("reports") as batch:
        batch.alter_column("entries", existing_type=sa.JSON(), nullable=False)
    op.drop_table("report_blocks")
