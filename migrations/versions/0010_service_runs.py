"""service_runs: one row per scheduled job and period of `chainrisk serve`

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_runs",
        sa.Column("job", sa.Text(), nullable=False, comment="scheduled job, e.g. heartbeat or forecast:ETH"),
        sa.Column(
            "period",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="start of the period the run is for: the schedule's fire time, UTC",
        ),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "leader", sa.Text(), nullable=False, comment="leadership term holding the claim (host:pid:term)"
        ),
        sa.Column("attempts", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column(
            "result",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="what the run recorded (heartbeat: indexed heads; forecast: run id)",
        ),
        sa.Column("error", sa.Text(), nullable=True, comment="one line, secrets redacted"),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'abandoned')", name="ck_service_runs_status"
        ),
        sa.PrimaryKeyConstraint("job", "period"),
        comment="One row per scheduled job and period of `chainrisk serve`: claimed before the job runs.",
    )


def downgrade() -> None:
    op.drop_table("service_runs")
