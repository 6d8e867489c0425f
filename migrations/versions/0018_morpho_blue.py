"""Morpho Blue events and the protocol column of the lending tables

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UINT256 = sa.Numeric(78, 0)
MORPHO_TABLES = (
    "morpho_blue_create_market", "morpho_blue_supply", "morpho_blue_withdraw", "morpho_blue_borrow",
    "morpho_blue_repay", "morpho_blue_supply_collateral", "morpho_blue_withdraw_collateral",
    "morpho_blue_liquidate", "morpho_blue_accrue_interest", "morpho_blue_set_fee",
    "morpho_blue_set_fee_recipient", "morpho_blue_set_owner", "morpho_blue_enable_irm",
    "morpho_blue_enable_lltv", "morpho_blue_flash_loan", "morpho_blue_set_authorization",
    "morpho_blue_increment_nonce",
)  # fmt: skip
HISTORY_TABLES = ("account_health_history", "position_reserves_history")
PROTOCOL_COMMENT = "aave_v3 or morpho_blue"

# The SQL as this revision created it: frozen here, never edited. Every lending view gains `protocol` as
# its last column (CREATE OR REPLACE may append columns); health_daily's row type changes, so it is
# dropped and created again.
ACCOUNT_HEALTH = """
CREATE OR REPLACE VIEW account_health AS
SELECT chain_id, pool, user_address, block_number, total_collateral_base, total_debt_base,
       available_borrows_base, liquidation_threshold_bps, ltv_bps, health_factor, emode_category, protocol
FROM account_health_history
WHERE valid_to IS NULL
"""

POSITION_RESERVES = """
CREATE OR REPLACE VIEW position_reserves AS
SELECT chain_id, pool, user_address, asset, block_number, collateral_base, debt_base, collateral_enabled,
       liquidation_threshold_bps, price, protocol
FROM position_reserves_history
WHERE valid_to IS NULL
"""

POSITIONS_CURRENT = """
CREATE OR REPLACE VIEW positions_current AS
SELECT chain_id, pool, user_address, block_number,
       total_collateral_base / 1e8 AS collateral_usd,
       total_debt_base / 1e8 AS debt_usd,
       CASE WHEN total_debt_base = 0 THEN NULL ELSE health_factor / 1e18 END AS health_factor,
       ltv_bps, liquidation_threshold_bps, emode_category, protocol
FROM account_health
"""

POSITIONS_AT_RISK = """
CREATE OR REPLACE VIEW positions_at_risk AS
SELECT * FROM positions_current WHERE health_factor < 1.1 ORDER BY health_factor
"""

HF_DISTRIBUTION = """
CREATE OR REPLACE VIEW hf_distribution AS
SELECT chain_id, pool,
       CASE WHEN health_factor < 1 THEN '0: < 1.00'
            WHEN health_factor < 1.05 THEN '1: 1.00-1.05'
            WHEN health_factor < 1.1 THEN '2: 1.05-1.10'
            WHEN health_factor < 1.25 THEN '3: 1.10-1.25'
            WHEN health_factor < 1.5 THEN '4: 1.25-1.50'
            WHEN health_factor < 2 THEN '5: 1.50-2.00'
            ELSE '6: >= 2.00' END AS hf_bucket,
       count(*) AS users, sum(collateral_usd) AS collateral_usd, sum(debt_usd) AS debt_usd, protocol
FROM positions_current
WHERE debt_usd > 0
GROUP BY 1, 2, 3, protocol
"""

BAD_DEBT = """
CREATE OR REPLACE VIEW bad_debt AS
SELECT chain_id, pool, user_address, 'unrealised' AS kind, block_number,
       NULL::text AS debt_asset, NULL::numeric AS amount, debt_usd - collateral_usd AS usd, protocol
FROM positions_current
WHERE debt_usd > collateral_usd
UNION ALL
SELECT d.chain_id, d.address, d.user_address, 'realised', d.block_number, d.debt_asset, d.amount_created,
       d.amount_created / 10::numeric ^ k.decimals * p.price_usd, 'aave_v3'
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
UNION ALL
SELECT q.chain_id, q.id, q.borrower, 'realised', q.block_number, m.loan_token, q.bad_debt_assets,
       q.bad_debt_assets / 10::numeric ^ k.decimals * p.price_usd, 'morpho_blue'
FROM morpho_blue_liquidate q
JOIN morpho_blue_create_market m ON m.chain_id = q.chain_id AND m.address = q.address AND m.id = q.id
LEFT JOIN tracked_tokens k ON k.chain_id = q.chain_id AND k.token = m.loan_token
LEFT JOIN LATERAL (
    SELECT a.current / 10::numeric ^ k.price_decimals AS price_usd
    FROM (SELECT coalesce(k.price_feed, (
              SELECT s.source FROM aave_oracle_asset_source_updated s
              WHERE s.chain_id = q.chain_id AND s.asset = m.loan_token
                AND (s.block_number, s.log_index) < (q.block_number, q.log_index)
              ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1)) AS feed) f
    JOIN LATERAL (
        SELECT u.current FROM price_answer_updated u
        WHERE u.chain_id = q.chain_id AND u.address = f.feed
          AND (u.block_number, u.log_index) < (q.block_number, q.log_index)
        ORDER BY u.block_number DESC, u.log_index DESC LIMIT 1) a ON true
) p ON true
WHERE q.bad_debt_assets > 0
"""

POSITIONS_BY_ASSET = """
CREATE OR REPLACE VIEW positions_by_asset AS
SELECT r.chain_id, r.pool, r.user_address, r.asset, k.symbol, r.block_number,
       r.collateral_base / 1e8 AS collateral_usd, r.debt_base / 1e8 AS debt_usd, r.collateral_enabled,
       r.liquidation_threshold_bps, r.price / 1e8 AS price_usd, r.protocol
FROM position_reserves r
LEFT JOIN tracked_tokens k ON k.chain_id = r.chain_id AND k.token = r.asset
"""

HEALTH_HISTORY = """
CREATE OR REPLACE VIEW health_history AS
SELECT chain_id, pool, user_address, block_number AS valid_from, valid_to, block_time AS valid_from_time,
       valid_to_time, total_collateral_base / 1e8 AS collateral_usd, total_debt_base / 1e8 AS debt_usd,
       health_factor / 1e18 AS health_factor, emode_category, protocol
FROM account_health_history
"""

POSITION_HISTORY = """
CREATE OR REPLACE VIEW position_history AS
SELECT chain_id, pool, user_address, asset, block_number AS valid_from, valid_to,
       block_time AS valid_from_time, valid_to_time, collateral_base / 1e8 AS collateral_usd,
       debt_base / 1e8 AS debt_usd, collateral_enabled, liquidation_threshold_bps, price / 1e8 AS price_usd,
       protocol
FROM position_reserves_history
"""

HEALTH_AT = """
CREATE OR REPLACE FUNCTION health_at(at_block bigint)
RETURNS SETOF health_history LANGUAGE sql STABLE AS $$
    SELECT * FROM health_history
    WHERE valid_from <= at_block AND (valid_to IS NULL OR valid_to > at_block)
$$
"""

POSITIONS_AT = """
CREATE OR REPLACE FUNCTION positions_at(at_block bigint)
RETURNS SETOF position_history LANGUAGE sql STABLE AS $$
    SELECT * FROM position_history
    WHERE valid_from <= at_block AND (valid_to IS NULL OR valid_to > at_block)
$$
"""

HEALTH_DAILY = """
CREATE OR REPLACE FUNCTION health_daily(first_day date, last_day date)
RETURNS TABLE (day date, chain_id integer, pool text, user_address text, valid_from bigint,
               collateral_usd numeric, debt_usd numeric, health_factor numeric, protocol text)
LANGUAGE sql STABLE AS $$
    SELECT d.day::date, h.chain_id, h.pool, h.user_address, h.valid_from, h.collateral_usd, h.debt_usd,
           h.health_factor, h.protocol
    FROM generate_series(first_day, last_day, interval '1 day') AS d(day)
    JOIN health_history h
      ON h.valid_from_time < d.day + interval '1 day'
     AND (h.valid_to_time IS NULL OR h.valid_to_time >= d.day + interval '1 day')
$$
"""

LIQUIDATIONS = """
CREATE OR REPLACE VIEW liquidations AS
SELECT q.chain_id, q.address AS pool, q.block_number, q.tx_hash, q.log_index, q.user_address AS borrower,
       q.collateral_asset, q.debt_asset, q.debt_to_cover, q.liquidated_collateral_amount, q.liquidator,
       q.receive_a_token,
       to_timestamp(coalesce(l.block_timestamp, b.timestamp)) AS block_time,
       ck.symbol AS collateral_symbol, dk.symbol AS debt_symbol,
       q.debt_to_cover / 10::numeric ^ dk.decimals AS debt_repaid,
       q.liquidated_collateral_amount / 10::numeric ^ ck.decimals AS collateral_seized,
       q.debt_to_cover / 10::numeric ^ dk.decimals * dp.price_usd AS debt_repaid_usd,
       q.liquidated_collateral_amount / 10::numeric ^ ck.decimals * cp.price_usd AS collateral_seized_usd,
       'aave_v3' AS protocol
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
UNION ALL
SELECT q.chain_id, q.id, q.block_number, q.tx_hash, q.log_index, q.borrower,
       m.collateral_token, m.loan_token, q.repaid_assets, q.seized_assets, q.caller, NULL,
       to_timestamp(coalesce(l.block_timestamp, b.timestamp)),
       ck.symbol, dk.symbol,
       q.repaid_assets / 10::numeric ^ dk.decimals,
       q.seized_assets / 10::numeric ^ ck.decimals,
       q.repaid_assets / 10::numeric ^ dk.decimals * dp.price_usd,
       q.seized_assets / 10::numeric ^ ck.decimals * cp.price_usd,
       'morpho_blue'
FROM morpho_blue_liquidate q
JOIN morpho_blue_create_market m ON m.chain_id = q.chain_id AND m.address = q.address AND m.id = q.id
LEFT JOIN logs l ON l.chain_id = q.chain_id AND l.block_number = q.block_number AND l.log_index = q.log_index
LEFT JOIN blocks b ON b.chain_id = q.chain_id AND b.number = q.block_number
LEFT JOIN tracked_tokens ck ON ck.chain_id = q.chain_id AND ck.token = m.collateral_token
LEFT JOIN tracked_tokens dk ON dk.chain_id = q.chain_id AND dk.token = m.loan_token
LEFT JOIN LATERAL (
    SELECT a.current / 10::numeric ^ ck.price_decimals AS price_usd
    FROM (SELECT coalesce(ck.price_feed, (
              SELECT s.source FROM aave_oracle_asset_source_updated s
              WHERE s.chain_id = q.chain_id AND s.asset = m.collateral_token
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
              WHERE s.chain_id = q.chain_id AND s.asset = m.loan_token
                AND (s.block_number, s.log_index) < (q.block_number, q.log_index)
              ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1)) AS feed) f
    JOIN LATERAL (
        SELECT u.current FROM price_answer_updated u
        WHERE u.chain_id = q.chain_id AND u.address = f.feed
          AND (u.block_number, u.log_index) < (q.block_number, q.log_index)
        ORDER BY u.block_number DESC, u.log_index DESC LIMIT 1) a ON true
) dp ON true
"""

# As revision 0008 left it, for the downgrade.
LIQUIDATIONS_BEFORE = """
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

# As revision 0009 left them, for the downgrade.
ACCOUNT_HEALTH_BEFORE = """
CREATE VIEW account_health AS
SELECT chain_id, pool, user_address, block_number, total_collateral_base, total_debt_base,
       available_borrows_base, liquidation_threshold_bps, ltv_bps, health_factor, emode_category
FROM account_health_history
WHERE valid_to IS NULL
"""

POSITION_RESERVES_BEFORE = """
CREATE VIEW position_reserves AS
SELECT chain_id, pool, user_address, asset, block_number, collateral_base, debt_base, collateral_enabled,
       liquidation_threshold_bps, price
FROM position_reserves_history
WHERE valid_to IS NULL
"""

POSITIONS_CURRENT_BEFORE = """
CREATE OR REPLACE VIEW positions_current AS
SELECT chain_id, pool, user_address, block_number,
       total_collateral_base / 1e8 AS collateral_usd,
       total_debt_base / 1e8 AS debt_usd,
       CASE WHEN total_debt_base = 0 THEN NULL ELSE health_factor / 1e18 END AS health_factor,
       ltv_bps, liquidation_threshold_bps, emode_category
FROM account_health
"""

POSITIONS_AT_RISK_BEFORE = """
CREATE OR REPLACE VIEW positions_at_risk AS
SELECT * FROM positions_current WHERE health_factor < 1.1 ORDER BY health_factor
"""

HF_DISTRIBUTION_BEFORE = """
CREATE OR REPLACE VIEW hf_distribution AS
SELECT chain_id, pool,
       CASE WHEN health_factor < 1 THEN '0: < 1.00'
            WHEN health_factor < 1.05 THEN '1: 1.00-1.05'
            WHEN health_factor < 1.1 THEN '2: 1.05-1.10'
            WHEN health_factor < 1.25 THEN '3: 1.10-1.25'
            WHEN health_factor < 1.5 THEN '4: 1.25-1.50'
            WHEN health_factor < 2 THEN '5: 1.50-2.00'
            ELSE '6: >= 2.00' END AS hf_bucket,
       count(*) AS users, sum(collateral_usd) AS collateral_usd, sum(debt_usd) AS debt_usd
FROM positions_current
WHERE debt_usd > 0
GROUP BY 1, 2, 3
"""

BAD_DEBT_BEFORE = """
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

POSITIONS_BY_ASSET_BEFORE = """
CREATE OR REPLACE VIEW positions_by_asset AS
SELECT r.chain_id, r.pool, r.user_address, r.asset, k.symbol, r.block_number,
       r.collateral_base / 1e8 AS collateral_usd, r.debt_base / 1e8 AS debt_usd, r.collateral_enabled,
       r.liquidation_threshold_bps, r.price / 1e8 AS price_usd
FROM position_reserves r
LEFT JOIN tracked_tokens k ON k.chain_id = r.chain_id AND k.token = r.asset
"""

HEALTH_HISTORY_BEFORE = """
CREATE OR REPLACE VIEW health_history AS
SELECT chain_id, pool, user_address, block_number AS valid_from, valid_to, block_time AS valid_from_time,
       valid_to_time, total_collateral_base / 1e8 AS collateral_usd, total_debt_base / 1e8 AS debt_usd,
       health_factor / 1e18 AS health_factor, emode_category
FROM account_health_history
"""

POSITION_HISTORY_BEFORE = """
CREATE OR REPLACE VIEW position_history AS
SELECT chain_id, pool, user_address, asset, block_number AS valid_from, valid_to,
       block_time AS valid_from_time, valid_to_time, collateral_base / 1e8 AS collateral_usd,
       debt_base / 1e8 AS debt_usd, collateral_enabled, liquidation_threshold_bps, price / 1e8 AS price_usd
FROM position_reserves_history
"""

HEALTH_AT_BEFORE = """
CREATE OR REPLACE FUNCTION health_at(at_block bigint)
RETURNS SETOF health_history LANGUAGE sql STABLE AS $$
    SELECT * FROM health_history
    WHERE valid_from <= at_block AND (valid_to IS NULL OR valid_to > at_block)
$$
"""

POSITIONS_AT_BEFORE = """
CREATE OR REPLACE FUNCTION positions_at(at_block bigint)
RETURNS SETOF position_history LANGUAGE sql STABLE AS $$
    SELECT * FROM position_history
    WHERE valid_from <= at_block AND (valid_to IS NULL OR valid_to > at_block)
$$
"""

HEALTH_DAILY_BEFORE = """
CREATE OR REPLACE FUNCTION health_daily(first_day date, last_day date)
RETURNS TABLE (day date, chain_id integer, pool text, user_address text, valid_from bigint,
               collateral_usd numeric, debt_usd numeric, health_factor numeric)
LANGUAGE sql STABLE AS $$
    SELECT d.day::date, h.chain_id, h.pool, h.user_address, h.valid_from, h.collateral_usd, h.debt_usd,
           h.health_factor
    FROM generate_series(first_day, last_day, interval '1 day') AS d(day)
    JOIN health_history h
      ON h.valid_from_time < d.day + interval '1 day'
     AND (h.valid_to_time IS NULL OR h.valid_to_time >= d.day + interval '1 day')
$$
"""

VIEWS_IN_ORDER = (
    ACCOUNT_HEALTH, POSITION_RESERVES, POSITIONS_CURRENT, POSITIONS_AT_RISK, HF_DISTRIBUTION, BAD_DEBT,
    POSITIONS_BY_ASSET, HEALTH_HISTORY, POSITION_HISTORY,
)  # fmt: skip
# Views that read the protocol column, dropped by the downgrade in dependency order.
DEPENDENT_VIEWS = (
    "bad_debt", "hf_distribution", "positions_at_risk", "positions_current", "positions_by_asset",
    "position_history", "health_history", "account_health", "position_reserves",
)  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "morpho_blue_create_market",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("loan_token", sa.Text(), nullable=True),
        sa.Column("collateral_token", sa.Text(), nullable=True),
        sa.Column("oracle", sa.Text(), nullable=True),
        sa.Column("irm", sa.Text(), nullable=True),
        sa.Column("lltv", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded CreateMarket(bytes32,(address,address,address,address,uint256)) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_supply",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("on_behalf", sa.Text(), nullable=True),
        sa.Column("assets", UINT256, nullable=True),
        sa.Column("shares", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded Supply(bytes32,address,address,uint256,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_withdraw",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("on_behalf", sa.Text(), nullable=True),
        sa.Column("receiver", sa.Text(), nullable=True),
        sa.Column("assets", UINT256, nullable=True),
        sa.Column("shares", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded Withdraw(bytes32,address,address,address,uint256,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_borrow",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("on_behalf", sa.Text(), nullable=True),
        sa.Column("receiver", sa.Text(), nullable=True),
        sa.Column("assets", UINT256, nullable=True),
        sa.Column("shares", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded Borrow(bytes32,address,address,address,uint256,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_repay",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("on_behalf", sa.Text(), nullable=True),
        sa.Column("assets", UINT256, nullable=True),
        sa.Column("shares", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded Repay(bytes32,address,address,uint256,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_supply_collateral",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("on_behalf", sa.Text(), nullable=True),
        sa.Column("assets", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded SupplyCollateral(bytes32,address,address,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_withdraw_collateral",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("on_behalf", sa.Text(), nullable=True),
        sa.Column("receiver", sa.Text(), nullable=True),
        sa.Column("assets", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded WithdrawCollateral(bytes32,address,address,address,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_liquidate",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("borrower", sa.Text(), nullable=True),
        sa.Column("repaid_assets", UINT256, nullable=True),
        sa.Column("repaid_shares", UINT256, nullable=True),
        sa.Column("seized_assets", UINT256, nullable=True),
        sa.Column("bad_debt_assets", UINT256, nullable=True),
        sa.Column("bad_debt_shares", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_accrue_interest",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("prev_borrow_rate", UINT256, nullable=True),
        sa.Column("interest", UINT256, nullable=True),
        sa.Column("fee_shares", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded AccrueInterest(bytes32,uint256,uint256,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_set_fee",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("new_fee", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded SetFee(bytes32,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_set_fee_recipient",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("new_fee_recipient", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded SetFeeRecipient(address) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_set_owner",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("new_owner", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded SetOwner(address) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_enable_irm",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("irm", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded EnableIrm(address) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_enable_lltv",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("lltv", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded EnableLltv(uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_flash_loan",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column("assets", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded FlashLoan(address,address,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_set_authorization",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("authorizer", sa.Text(), nullable=True),
        sa.Column("authorized", sa.Text(), nullable=True),
        sa.Column("new_is_authorized", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded SetAuthorization(address,address,address,bool) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_blue_increment_nonce",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("authorizer", sa.Text(), nullable=True),
        sa.Column("used_nonce", UINT256, nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded IncrementNonce(address,address,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "morpho_oracles",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("base_feed", sa.Text(), nullable=True, comment="aggregator of the numerator; NULL: 1"),
        sa.Column("quote_feed", sa.Text(), nullable=True, comment="aggregator of the denominator; NULL: 1"),
        sa.Column("scale_factor", UINT256, nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "address"),
        comment="Morpho Blue oracles: price() = scale_factor * base / quote; from [[morpho_oracles]].",
    )
    for name in MORPHO_TABLES:
        op.create_index(f"ix_{name}_contract", name, ["chain_id", "address", "block_number", "log_index"])
    for table in HISTORY_TABLES:
        op.add_column(
            table,
            sa.Column(
                "protocol", sa.Text(), nullable=False, server_default="aave_v3", comment=PROTOCOL_COMMENT
            ),
        )
    for statement in (*VIEWS_IN_ORDER, LIQUIDATIONS):
        op.execute(statement)
    op.execute("DROP FUNCTION health_daily(date, date)")
    for function in (HEALTH_AT, POSITIONS_AT, HEALTH_DAILY):
        op.execute(function)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS health_daily(date, date), health_at(bigint), positions_at(bigint)")
    for view in DEPENDENT_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.execute("DROP VIEW IF EXISTS liquidations")
    op.execute(LIQUIDATIONS_BEFORE)
    for table in HISTORY_TABLES:
        op.execute(f"DELETE FROM {table} WHERE protocol <> 'aave_v3'")
        op.drop_column(table, "protocol")
    for name in MORPHO_TABLES:
        op.drop_table(name)
    op.drop_table("morpho_oracles")
    for statement in (
        ACCOUNT_HEALTH_BEFORE, POSITION_RESERVES_BEFORE, POSITIONS_CURRENT_BEFORE, POSITIONS_AT_RISK_BEFORE,
        HF_DISTRIBUTION_BEFORE, BAD_DEBT_BEFORE, POSITIONS_BY_ASSET_BEFORE, HEALTH_HISTORY_BEFORE,
        POSITION_HISTORY_BEFORE, HEALTH_AT_BEFORE, POSITIONS_AT_BEFORE, HEALTH_DAILY_BEFORE,
    ):  # fmt: skip
        op.execute(statement)
