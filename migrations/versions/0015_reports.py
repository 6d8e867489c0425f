"""reports: one stored report per kind and period, its files and their hashes

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False, comment="what report, e.g. contagion"),
        sa.Column("period", sa.Text(), nullable=False, comment="daily or weekly"),
        sa.Column("period_start", sa.Date(), nullable=False, comment="the period's first UTC day"),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False, comment="block of the state the report shows"),
        sa.Column("directory", sa.Text(), nullable=False, comment="folder of the report's files"),
        sa.Column(
            "files",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="file name -> SHA-256 (hex)",
        ),
        sa.Column(
            "summary",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="the report's summary lines and title",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("period IN ('daily', 'weekly')", name="ck_reports_period"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "period", "period_start", name="uq_reports_kind_period"),
        comment="One stored report per kind and period, with its files' paths and hashes.",
    )


def downgrade() -> None:
    op.drop_table("reports")
