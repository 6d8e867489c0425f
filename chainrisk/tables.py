"""The app shell's own tables (SQLAlchemy Core, this package's MetaData): the service's run records."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["RUN_STATUSES", "metadata", "service_runs"]

metadata = sa.MetaData()

# running: claimed, not finished; abandoned: its leader died and the period was too old to run again.
RUN_STATUSES = ("running", "succeeded", "failed", "abandoned")

service_runs = sa.Table(
    "service_runs",
    metadata,
    sa.Column("job", sa.Text, primary_key=True, comment="scheduled job, e.g. heartbeat or forecast:ETH"),
    sa.Column(
        "period",
        sa.DateTime(timezone=True),
        primary_key=True,
        comment="start of the period the run is for: the schedule's fire time, UTC",
    ),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("leader", sa.Text, nullable=False, comment="leadership term holding the claim (host:pid:term)"),
    sa.Column("attempts", sa.SmallInteger, nullable=False, server_default=sa.text("1")),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("duration_s", sa.Float),
    sa.Column("result", JSONB, comment="what the run recorded (heartbeat: indexed heads; forecast: run id)"),
    sa.Column("error", sa.Text, comment="one line, secrets redacted"),
    sa.CheckConstraint(
        "status IN ('running', 'succeeded', 'failed', 'abandoned')", name="ck_service_runs_status"
    ),
    comment="One row per scheduled job and period of `chainrisk serve`: claimed before the job runs.",
)
