"""account and position history as validity ranges; account_health and position_reserves become views

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UINT256 = sa.Numeric(78, 0)

# The SQL as this revision created it: frozen here, never edited.
POSITIONS_CURRENT = """
CREATE OR REPLACE VIEW positions_current AS
SELECT chain_id, pool, user_address, block_number,
       total_collateral_base / 1e8 AS collateral_usd,
       total_debt_base / 1e8 AS debt_usd,
       CASE WHEN total_debt_base = 0 THEN NULL ELSE health_factor / 1e18 END AS health_factor,
       ltv_bps, liquidation_threshold_bps, emode_category
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
       count(*) AS users, sum(collateral_usd) AS collateral_usd, sum(debt_usd) AS debt_usd
FROM positions_current
WHERE debt_usd > 0
GROUP BY 1, 2, 3
"""

BAD_DEBT = """
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

POSITIONS_BY_ASSET = """
CREATE OR REPLACE VIEW positions_by_asset AS
SELECT r.chain_id, r.pool, r.user_address, r.asset, k.symbol, r.block_number,
       r.collateral_base / 1e8 AS collateral_usd, r.debt_base / 1e8 AS debt_usd, r.collateral_enabled,
       r.liquidation_threshold_bps, r.price / 1e8 AS price_usd
FROM position_reserves r
LEFT JOIN tracked_tokens k ON k.chain_id = r.chain_id AND k.token = r.asset
"""

DEPENDENT_VIEWS = (POSITIONS_CURRENT, POSITIONS_AT_RISK, HF_DISTRIBUTION, BAD_DEBT, POSITIONS_BY_ASSET)

ACCOUNT_HEALTH = """
CREATE VIEW account_health AS
SELECT chain_id, pool, user_address, block_number, total_collateral_base, total_debt_base,
       available_borrows_base, liquidation_threshold_bps, ltv_bps, health_factor, emode_category
FROM account_health_history
WHERE valid_to IS NULL
"""

POSITION_RESERVES = """
CREATE VIEW position_reserves AS
SELECT chain_id, pool, user_address, asset, block_number, collateral_base, debt_base, collateral_enabled,
       liquidation_threshold_bps, price
FROM position_reserves_history
WHERE valid_to IS NULL
"""

HEALTH_HISTORY = """
CREATE OR REPLACE VIEW health_history AS
SELECT chain_id, pool, user_address, block_number AS valid_from, valid_to, block_time AS valid_from_time,
       valid_to_time, total_collateral_base / 1e8 AS collateral_usd, total_debt_base / 1e8 AS debt_usd,
       health_factor / 1e18 AS health_factor, emode_category
FROM account_health_history
"""

POSITION_HISTORY = """
CREATE OR REPLACE VIEW position_history AS
SELECT chain_id, pool, user_address, asset, block_number AS valid_from, valid_to,
       block_time AS valid_from_time, valid_to_time, collateral_base / 1e8 AS collateral_usd,
       debt_base / 1e8 AS debt_usd, collateral_enabled, liquidation_threshold_bps, price / 1e8 AS price_usd
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


def _validity() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "valid_to",
            sa.BigInteger(),
            nullable=True,
            comment="first block the row no longer holds; NULL: current",
        ),
        sa.Column(
            "block_time", sa.DateTime(timezone=True), nullable=True, comment="timestamp of block_number"
        ),
        sa.Column(
            "valid_to_time", sa.DateTime(timezone=True), nullable=True, comment="timestamp of valid_to"
        ),
    ]


def _indexes(table: str, key: list[str]) -> None:
    op.create_index(
        f"ix_{table}_current", table, key, unique=True, postgresql_where=sa.text("valid_to IS NULL")
    )
    op.create_index(f"ix_{table}_block", table, ["chain_id", "block_number"])
    op.create_index(f"ix_{table}_pool_block", table, ["chain_id", "pool", "block_number"])


def upgrade() -> None:
    for view in (
        "bad_debt",
        "hf_distribution",
        "positions_at_risk",
        "positions_current",
        "positions_by_asset",
    ):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.create_table(
        "account_health_history",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("pool", sa.Text(), nullable=False),
        sa.Column("user_address", sa.Text(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False, comment="first block the row holds"),
        sa.Column("total_collateral_base", UINT256, nullable=False),
        sa.Column("total_debt_base", UINT256, nullable=False),
        sa.Column("available_borrows_base", UINT256, nullable=False),
        sa.Column("liquidation_threshold_bps", sa.Integer(), nullable=False),
        sa.Column("ltv_bps", sa.Integer(), nullable=False),
        sa.Column("health_factor", UINT256, nullable=False, comment="wad; 2^256-1 without debt"),
        sa.Column("emode_category", sa.Integer(), nullable=False),
        *_validity(),
        sa.PrimaryKeyConstraint("chain_id", "pool", "user_address", "block_number"),
        comment="Pool.getUserAccountData per user from block_number to valid_to, rebuilt from indexed events.",
    )
    op.create_table(
        "position_reserves_history",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("pool", sa.Text(), nullable=False),
        sa.Column("user_address", sa.Text(), nullable=False),
        sa.Column("asset", sa.Text(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False, comment="first block the row holds"),
        sa.Column("collateral_base", UINT256, nullable=False, comment="aToken balance in base currency"),
        sa.Column("debt_base", UINT256, nullable=False, comment="variable debt in base currency"),
        sa.Column("collateral_enabled", sa.Boolean(), nullable=False),
        sa.Column("liquidation_threshold_bps", sa.Integer(), nullable=False, comment="eMode applied"),
        sa.Column("price", UINT256, nullable=False, comment="oracle price, base currency units"),
        *_validity(),
        sa.PrimaryKeyConstraint("chain_id", "pool", "user_address", "asset", "block_number"),
        comment="Each user's collateral and debt per reserve from block_number to valid_to, in base currency.",
    )
    _indexes("account_health_history", ["chain_id", "pool", "user_address"])
    _indexes("position_reserves_history", ["chain_id", "pool", "user_address", "asset"])
    # Today's snapshot rows become the first history rows; their block's time is not known here.
    op.execute("INSERT INTO account_health_history SELECT *, NULL, NULL, NULL FROM account_health")
    op.execute("INSERT INTO position_reserves_history SELECT *, NULL, NULL, NULL FROM position_reserves")
    op.drop_table("account_health")
    op.drop_table("position_reserves")
    for statement in (ACCOUNT_HEALTH, POSITION_RESERVES, *DEPENDENT_VIEWS, HEALTH_HISTORY, POSITION_HISTORY):
        op.execute(statement)
    for function in (HEALTH_AT, POSITIONS_AT, HEALTH_DAILY):
        op.execute(function)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS health_daily(date, date), health_at(bigint), positions_at(bigint)")
    for view in (
        "position_history", "health_history", "bad_debt", "hf_distribution", "positions_at_risk",
        "positions_current", "positions_by_asset", "account_health", "position_reserves",
    ):  # fmt: skip
        op.execute(f"DROP VIEW IF EXISTS {view}")
    # Only the current rows survive: the snapshot tables of 0005 hold no history.
    op.execute(
        "CREATE TABLE account_health AS SELECT chain_id, pool, user_address, block_number,"
        " total_collateral_base, total_debt_base, available_borrows_base, liquidation_threshold_bps,"
        " ltv_bps, health_factor, emode_category FROM account_health_history WHERE valid_to IS NULL"
    )
    op.execute(
        "CREATE TABLE position_reserves AS SELECT chain_id, pool, user_address, asset, block_number,"
        " collateral_base, debt_base, collateral_enabled, liquidation_threshold_bps, price"
        " FROM position_reserves_history WHERE valid_to IS NULL"
    )
    op.create_primary_key("account_health_pkey", "account_health", ["chain_id", "pool", "user_address"])
    op.create_primary_key(
        "position_reserves_pkey", "position_reserves", ["chain_id", "pool", "user_address", "asset"]
    )
    op.drop_table("account_health_history")
    op.drop_table("position_reserves_history")
    for statement in DEPENDENT_VIEWS:
        op.execute(statement)
