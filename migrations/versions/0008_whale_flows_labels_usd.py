"""tracked tokens, address labels; whale flows, exchange net flows, USD liquidations and bad debt

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from indexer.views import (
    BAD_DEBT,
    BAD_DEBT_USD,
    EXCHANGE_NETFLOWS,
    LIQUIDATIONS,
    LIQUIDATIONS_USD,
    POSITIONS_BY_ASSET,
    TOKEN_TRANSFERS,
    WHALE_FLOWS,
)

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracked_tokens",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("whale_threshold_usd", sa.Numeric(), nullable=False),
        sa.Column(
            "price_feed",
            sa.Text(),
            nullable=True,
            comment="aggregator address; NULL: the asset's AaveOracle source",
        ),
        sa.Column("price_decimals", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "token"),
        comment="ERC-20s whose transfers are valued in USD; from [[tokens]] in chainrisk.toml.",
    )
    op.create_table(
        "address_labels",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False, comment="seed, config or user; user edits win"),
        sa.Column("reference", sa.Text(), nullable=True, comment="where the label can be checked"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "category IN ('exchange', 'protocol', 'bridge', 'treasury', 'fund', 'market_maker', 'other')",
            name="ck_address_labels_category",
        ),
        sa.CheckConstraint("source IN ('seed', 'config', 'user')", name="ck_address_labels_source"),
        sa.PrimaryKeyConstraint("chain_id", "address"),
        comment="Named addresses: exchanges, protocols, bridges, treasuries.",
    )
    op.create_index(
        "ix_price_answer_updated_feed",
        "price_answer_updated",
        ["chain_id", "address", "block_number", "log_index"],
    )
    op.create_index(
        "ix_aave_oracle_asset_source_updated_asset",
        "aave_oracle_asset_source_updated",
        ["chain_id", "asset", "block_number"],
    )
    for view in (
        TOKEN_TRANSFERS,
        WHALE_FLOWS,
        EXCHANGE_NETFLOWS,
        LIQUIDATIONS_USD,
        BAD_DEBT_USD,
        POSITIONS_BY_ASSET,
    ):
        op.execute(view)


def downgrade() -> None:
    for view in ("positions_by_asset", "exchange_netflows", "whale_flows", "token_transfers"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    # Appended columns cannot be dropped by CREATE OR REPLACE.
    op.execute("DROP VIEW IF EXISTS liquidations")
    op.execute(LIQUIDATIONS)
    op.execute(BAD_DEBT)
    op.drop_index("ix_aave_oracle_asset_source_updated_asset", table_name="aave_oracle_asset_source_updated")
    op.drop_index("ix_price_answer_updated_feed", table_name="price_answer_updated")
    op.drop_table("address_labels")
    op.drop_table("tracked_tokens")
