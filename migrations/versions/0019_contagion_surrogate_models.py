"""contagion surrogate models

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contagion_surrogate_models",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False, comment="gnn (graph network) or tree (boosted trees)"),
        sa.Column("version", sa.Integer(), nullable=False, comment="1, 2, … per kind, in the order trained"),
        sa.Column("seed", sa.BigInteger(), nullable=False, comment="seed of the draws and of the training"),
        sa.Column("scenarios", sa.Integer(), nullable=False, comment="scenarios per labelled set"),
        sa.Column(
            "data_range",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="snapshots, families and draws trained and held out",
        ),
        sa.Column(
            "metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="held-out AUPRC, VaR95 error, the comparison",
        ),
        sa.Column(
            "config",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="what rebuilds the model around its weights",
        ),
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False, comment="hex SHA-256 of weights"),
        sa.CheckConstraint("kind IN ('gnn', 'tree')", name="ck_contagion_surrogate_models_kind"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "version", name="uq_contagion_surrogate_models_kind_version"),
        comment="Trained contagion surrogates: version, data range, held-out metrics and weights.",
    )


def downgrade() -> None:
    op.drop_table("contagion_surrogate_models")
