"""PostgreSQL tables of stored reports (SQLAlchemy Core, this module's MetaData); migration 0015 makes them.

`reports` holds one row per report the service wrote: its kind, its period (daily or weekly) and the
period's first day, unique together, so a period gets one report however often the job runs; the folder
its files are in, each file's SHA-256, and the report's headline figures.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["metadata", "reports"]

metadata = sa.MetaData()

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False, comment="what report, e.g. contagion"),
    sa.Column("period", sa.Text, nullable=False, comment="daily or weekly"),
    sa.Column("period_start", sa.Date, nullable=False, comment="the period's first UTC day"),
    sa.Column("chain_id", sa.Integer, nullable=False),
    sa.Column("block", sa.BigInteger, nullable=False, comment="block of the state the report shows"),
    sa.Column("directory", sa.Text, nullable=False, comment="folder of the report's files"),
    sa.Column("files", JSONB, nullable=False, comment="file name -> SHA-256 (hex)"),
    sa.Column("summary", JSONB, nullable=False, comment="the report's summary lines and title"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("period IN ('daily', 'weekly')", name="ck_reports_period"),
    sa.UniqueConstraint("kind", "period", "period_start", name="uq_reports_kind_period"),
    comment="One stored report per kind and period, with its files' paths and hashes.",
)
