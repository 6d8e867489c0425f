"""tracked tokens, address labels; whale flows, exchange net flows, USD liquidations and bad debt

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The SQL as this revision created it: frozen here, never edited.
BAD_DEBT = """
CREATE OR REPLACE VIEW bad_debt AS
SELECT chain_id, pool, user_address, 'unrealised' AS kind, block_number,
       NULL::text AS debt_asset, NULL::numeric AS amount, debt_usd - collateral_usd AS usd
FROM positions_current
WHERE debt_usd > collateral_usd
UNION ALL
SELECT chain_id, address, user_address, 'realised', block_number, debt_asset, amount_created, NULL
FROM aave_v3_deficit_created
"""

BAD_DEBT_USD = """
CREATE OR REPLACE VIEW bad_debt AS
SELECT chain_id, pool, user_address, 'unrealised' AS kind, block_number,
       NULL::text AS debt_asset, NULL::numeric AS amount, debt_usd - collateral_usd AS usd
FROM positions_current
WHERE debt_usd > collateral_usd
UNION ALL
SELECT d.chain_id, d.address, d.user_address, 'realised', d.block_number, d.debt_asset, d.amount_created,
       d.amount_created / 10::numeric ^ k.decimals * p.price_usd
FROM aave_v3_deficit_created d
LEFT JOIN tracked_tokens k ON k.chain_id = d.chain_id AND k.token = d.debt_asset
LEFT JOIN LATERAL (
    SELECT a.current / 10::numeric ^ k.price_decimals AS price_usd
    FROM (SELECT coalesce(k.price_feed, (
              SELECT s.source FROM aave_oracle_asset_source_updated s
              WHERE s.chain_id = d.chain_id AND s.asset = d.debt_asset
                AND (s.block_number, s.log_index) < (d.block_number, d.log_index)
              ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1)) AS feed) f
    JOIN LATERAL (
        SELECT u.current FROM price_answer_updated u
        WHERE u.chain_id = d.chain_id AND u.address = f.feed
          AND (u.block_number, u.log_index) < (d.block_number, d.log_index)
        ORDER BY u.block_number DESC, u.log_index DESC LIMIT 1) a ON true
) p ON true
"""

EXCHANGE_NETFLOWS = """
CREATE OR REPLACE VIEW exchange_netflows AS
WITH flows AS (
    SELECT t.chain_id, t.token, t.symbol, date_trunc('hour', t.block_time, 'UTC') AS hour,
           o.category IS NOT DISTINCT FROM 'exchange' AS inbound, t.amount, t.usd
    FROM token_transfers t
    LEFT JOIN address_labels f ON f.chain_id = t.chain_id AND f.address = t.from_address
    LEFT JOIN address_labels o ON o.chain_id = t.chain_id AND o.address = t.to_address
    WHERE (f.category IS NOT DISTINCT FROM 'exchange') <> (o.category IS NOT DISTINCT FROM 'exchange')
)
SELECT chain_id, token, symbol, hour, count(*) AS transfers,
       coalesce(sum(amount) FILTER (WHERE inbound), 0) AS inflow,
       coalesce(sum(amount) FILTER (WHERE NOT inbound), 0) AS outflow,
       coalesce(sum(CASE WHEN inbound THEN amount ELSE -amount END), 0) AS netflow,
       coalesce(sum(usd) FILTER (WHERE inbound), 0) AS inflow_usd,
       coalesce(sum(usd) FILTER (WHERE NOT inbound), 0) AS outflow_usd,
       sum(CASE WHEN inbound THEN usd ELSE -usd END) AS netflow_usd
FROM flows
GROUP BY chain_id, token, symbol, hour
"""

LIQUIDATIONS = """
CREATE OR REPLACE VIEW liquidations AS
SELECT chain_id, address AS pool, block_number, tx_hash, log_index, user_address AS borrower,
       collateral_asset, debt_asset, debt_to_cover, liquidated_collateral_amount, liquidator,
       receive_a_token
FROM aave_v3_liquidation_call
"""

LIQUIDATIONS_USD = """
CREATE OR REPLACE VIEW liquidations AS
SELECT q.chain_id, q.address AS pool, q.block_number, q.tx_hash, q.log_index, q.user_address AS borrower,
       q.collateral_asset, q.debt_asset, q.debt_to_cover, q.liquidated_collateral_amount, q.liquidator,
       q.receive_a_token,
       to_timestamp(coalesce(l.block_timestamp, b.timestamp)) AS block_time,
       ck.symbol AS collateral_symbol, dk.symbol AS debt_symbol,
       q.debt_to_cover / 10::numeric ^ dk.decimals AS debt_repaid,
       q.liquidated_collateral_amount / 10::numeric ^ ck.decimals AS collateral_seized,
       q.debt_to_cover / 10::numeric ^ dk.decimals * dp.price_usd AS debt_repaid_usd,
       q.liquidated_collateral_amount / 10::numeric ^ ck.decimals * cp.price_usd AS collateral_seized_usd
FROM aave_v3_liquidation_call q
LEFT JOIN logs l ON l.chain_id = q.chain_id AND l.block_number = q.block_number AND l.log_index = q.log_index
LEFT JOIN blocks b ON b.chain_id = q.chain_id AND b.number = q.block_number
LEFT JOIN tracked_tokens ck ON ck.chain_id = q.chain_id AND ck.token = q.collateral_asset
LEFT JOIN tracked_tokens dk ON dk.chain_id = q.chain_id AND dk.token = q.debt_asset
LEFT JOIN LATERAL (
    SELECT a.current / 10::numeric ^ ck.price_decimals AS price_usd
    FROM (SELECT coalesce(ck.price_feed, (
              SELECT s.source FROM aave_oracle_asset_source_updated s
              WHERE s.chain_id = q.chain_id AND s.asset = q.collateral_asset
                AND (s.block_number, s.log_index) < (q.block_number, q.log_index)
              ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1)) AS feed) f
    JOIN LATERAL (
        SELECT u.current FROM price_answer_updated u
        WHERE u.chain_id = q.chain_id AND u.address = f.feed
          AND (u.block_number, u.log_index) < (q.block_number, q.log_index)
        ORDER BY u.block_number DESC, u.log_index DESC LIMIT 1) a ON true
) cp ON true
LEFT JOIN LATERAL (
    SELECT a.current / 10::numeric ^ dk.price_decimals AS price_usd
    FROM (SELECT coalesce(dk.price_feed, (
              SELECT s.source FROM aave_oracle_asset_source_updated s
              WHERE s.chain_id = q.chain_id AND s.asset = q.debt_asset
                AND (s.block_number, s.log_index) < (q.block_number, q.log_index)
              ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1)) AS feed) f
    JOIN LATERAL (
        SELECT u.current FROM price_answer_updated u
        WHERE u.chain_id = q.chain_id AND u.address = f.feed
          AND (u.block_number, u.log_index) < (q.block_number, q.log_index)
        ORDER BY u.block_number DESC, u.log_index DESC LIMIT 1) a ON true
) dp ON true
"""

POSITIONS_BY_ASSET = """
CREATE OR REPLACE VIEW positions_by_asset AS
SELECT r.chain_id, r.pool, r.user_address, r.asset, k.symbol, r.block_number,
       r.collateral_base / 1e8 AS collateral_usd, r.debt_base / 1e8 AS debt_usd, r.collateral_enabled,
       r.liquidation_threshold_bps, r.price / 1e8 AS price_usd
FROM position_reserves r
LEFT JOIN tracked_tokens k ON k.chain_id = r.chain_id AND k.token = r.asset
"""

TOKEN_TRANSFERS = """
CREATE OR REPLACE VIEW token_transfers AS
SELECT t.chain_id, t.block_number, t.log_index, t.tx_hash,
       to_timestamp(coalesce(l.block_timestamp, b.timestamp)) AS block_time,
       t.address AS token, k.symbol, t.from_address, t.to_address,
       t.value / 10::numeric ^ k.decimals AS amount, p.price_usd,
       t.value / 10::numeric ^ k.decimals * p.price_usd AS usd,
       k.whale_threshold_usd
FROM erc20_transfers t
JOIN tracked_tokens k ON k.chain_id = t.chain_id AND k.token = t.address
LEFT JOIN logs l ON l.chain_id = t.chain_id AND l.block_number = t.block_number AND l.log_index = t.log_index
LEFT JOIN blocks b ON b.chain_id = t.chain_id AND b.number = t.block_number
LEFT JOIN LATERAL (
    SELECT a.current / 10::numeric ^ k.price_decimals AS price_usd
    FROM (SELECT coalesce(k.price_feed, (
              SELECT s.source FROM aave_oracle_asset_source_updated s
              WHERE s.chain_id = t.chain_id AND s.asset = t.address
                AND (s.block_number, s.log_index) < (t.block_number, t.log_index)
              ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1)) AS feed) f
    JOIN LATERAL (
        SELECT u.current FROM price_answer_updated u
        WHERE u.chain_id = t.chain_id AND u.address = f.feed
          AND (u.block_number, u.log_index) < (t.block_number, t.log_index)
        ORDER BY u.block_number DESC, u.log_index DESC LIMIT 1) a ON true
) p ON true
"""

WHALE_FLOWS = """
CREATE OR REPLACE VIEW whale_flows AS
SELECT t.chain_id, t.block_number, t.log_index, t.tx_hash, t.block_time, t.token, t.symbol,
       t.from_address, f.label AS from_label, f.category AS from_category,
       t.to_address, o.label AS to_label, o.category AS to_category,
       t.amount, t.price_usd, t.usd, t.whale_threshold_usd,
       CASE WHEN f.category = 'exchange' AND o.category = 'exchange' THEN 'between_exchanges'
            WHEN o.category = 'exchange' THEN 'to_exchange'
            WHEN f.category = 'exchange' THEN 'from_exchange'
            ELSE 'other' END AS direction
FROM token_transfers t
LEFT JOIN address_labels f ON f.chain_id = t.chain_id AND f.address = t.from_address
LEFT JOIN address_labels o ON o.chain_id = t.chain_id AND o.address = t.to_address
WHERE t.usd >= t.whale_threshold_usd
"""


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
