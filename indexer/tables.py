"""SQLAlchemy Core tables for raw chain data, the cursor, and one typed table per decoded event.

Every chain-derived table carries chain_id, block_number and block_hash, and is marked with
`info={"chain_derived": True}` so a reorg rollback finds it without a hand-kept list.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from indexer.events import EventSpec, Param
from indexer.protocols import morpho_blue
from indexer.registry import all_specs

metadata = sa.MetaData()

UINT256 = sa.Numeric(78, 0)
CHAIN_DERIVED = {"chain_derived": True}


def _log_position() -> list[sa.Column[object]]:
    return [
        sa.Column("chain_id", sa.Integer, nullable=False),
        sa.Column("block_number", sa.BigInteger, nullable=False),
        sa.Column("log_index", sa.Integer, nullable=False),
        sa.Column("block_hash", sa.Text, nullable=False),
        sa.Column("tx_hash", sa.Text, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
    ]


blocks = sa.Table(
    "blocks",
    metadata,
    sa.Column("chain_id", sa.Integer, primary_key=True),
    sa.Column("number", sa.BigInteger, primary_key=True),
    sa.Column("hash", sa.Text, nullable=False),
    sa.Column("parent_hash", sa.Text, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    info=CHAIN_DERIVED,
    comment="Recent block headers (the unfinalized window plus batch ends), for reorg detection.",
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("chain_id", sa.Integer, nullable=False),
    sa.Column("block_number", sa.BigInteger, nullable=False),
    sa.Column("block_hash", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    comment="Last fully indexed block per source; commits with the rows it covers.",
)

reorgs = sa.Table(
    "reorgs",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("chain_id", sa.Integer, nullable=False),
    sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("fork_block", sa.BigInteger, nullable=False),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Column("old_hash", sa.Text, nullable=False),
    sa.Column("new_hash", sa.Text, nullable=False),
    comment="Every reorg seen: rows at or above fork_block were rolled back and re-indexed.",
)

logs = sa.Table(
    "logs",
    metadata,
    *_log_position(),
    sa.Column("tx_index", sa.Integer, nullable=False),
    sa.Column("topic0", sa.Text),
    sa.Column("topic1", sa.Text),
    sa.Column("topic2", sa.Text),
    sa.Column("topic3", sa.Text),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("block_timestamp", sa.BigInteger),
    sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
    sa.Index("ix_logs_address_topic0", "address", "topic0"),
    info=CHAIN_DERIVED,
    comment="Every fetched log, as the node returned it (hex text, lowercase).",
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    *_log_position(),
    sa.Column("topics", ARRAY(sa.Text), nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
    info=CHAIN_DERIVED,
    comment="Logs whose topic0 names a known event but which do not decode against its ABI.",
)


def column_type(param: Param) -> sa.types.TypeEngine[Any]:
    """SQL type of an event parameter: uint256 as NUMERIC(78,0), small ints as integers."""
    t = param.type
    if t.endswith("]"):
        return JSONB()
    if t == "bool":
        return sa.Boolean()
    for prefix in ("uint", "int"):
        if t.startswith(prefix) and t[len(prefix) :].isdigit():
            bits = int(t[len(prefix) :])
            if bits <= 16:
                return sa.Integer()
            if bits <= 32 or (prefix == "int" and bits <= 64):
                return sa.BigInteger()
            return UINT256
    return sa.Text()


def event_table(spec: EventSpec) -> sa.Table:
    columns = [sa.Column(p.column, column_type(p)) for p in spec.params]
    return sa.Table(
        spec.table,
        metadata,
        *_log_position(),
        *columns,
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        info=CHAIN_DERIVED,
        comment=f"Decoded {spec.signature} events.",
    )


EVENT_TABLES: dict[str, sa.Table] = {spec.table: event_table(spec) for spec in all_specs()}


def chain_derived_tables(meta: sa.MetaData | None = None) -> list[sa.Table]:
    """Tables whose rows come from the chain and must roll back on a reorg."""
    chosen = meta or metadata
    return [t for t in chosen.sorted_tables if t.info.get("chain_derived")]


def _validity() -> list[sa.Column[object]]:
    return [
        sa.Column("valid_to", sa.BigInteger, comment="first block the row no longer holds; NULL: current"),
        sa.Column("block_time", sa.DateTime(timezone=True), comment="timestamp of block_number"),
        sa.Column("valid_to_time", sa.DateTime(timezone=True), comment="timestamp of valid_to"),
    ]


# Morpho Blue shares these tables: its pool is the market id (0x + 64 hex digits), its "base" is USD with 8
# decimals from the assets' feeds, its health factor is maxBorrow / borrowed (indexer.lending.morpho).
_PROTOCOL = "aave_v3 or morpho_blue"

# History as validity ranges: a row holds from block_number (the block whose events produced it) up to
# valid_to. The current state is the rows with valid_to NULL (views account_health, position_reserves).
# A rollback deletes rows from the fork on and reopens the rows it had closed (Store.rollback).
account_health_history = sa.Table(
    "account_health_history",
    metadata,
    sa.Column("chain_id", sa.Integer, primary_key=True),
    sa.Column("pool", sa.Text, primary_key=True),
    sa.Column("user_address", sa.Text, primary_key=True),
    sa.Column("block_number", sa.BigInteger, primary_key=True, comment="first block the row holds"),
    sa.Column("total_collateral_base", UINT256, nullable=False),
    sa.Column("total_debt_base", UINT256, nullable=False),
    sa.Column("available_borrows_base", UINT256, nullable=False),
    sa.Column("liquidation_threshold_bps", sa.Integer, nullable=False),
    sa.Column("ltv_bps", sa.Integer, nullable=False),
    sa.Column("health_factor", UINT256, nullable=False, comment="wad; 2^256-1 without debt"),
    sa.Column("emode_category", sa.Integer, nullable=False),
    *_validity(),
    sa.Column("protocol", sa.Text, nullable=False, server_default="aave_v3", comment=_PROTOCOL),
    info=CHAIN_DERIVED,
    comment="Pool.getUserAccountData per user from block_number to valid_to, rebuilt from indexed events.",
)

position_reserves_history = sa.Table(
    "position_reserves_history",
    metadata,
    sa.Column("chain_id", sa.Integer, primary_key=True),
    sa.Column("pool", sa.Text, primary_key=True),
    sa.Column("user_address", sa.Text, primary_key=True),
    sa.Column("asset", sa.Text, primary_key=True),
    sa.Column("block_number", sa.BigInteger, primary_key=True, comment="first block the row holds"),
    sa.Column("collateral_base", UINT256, nullable=False, comment="aToken balance in base currency"),
    sa.Column("debt_base", UINT256, nullable=False, comment="variable debt in base currency"),
    sa.Column("collateral_enabled", sa.Boolean, nullable=False),
    sa.Column("liquidation_threshold_bps", sa.Integer, nullable=False, comment="eMode applied"),
    sa.Column("price", UINT256, nullable=False, comment="oracle price, base currency units"),
    *_validity(),
    sa.Column("protocol", sa.Text, nullable=False, server_default="aave_v3", comment=_PROTOCOL),
    info=CHAIN_DERIVED,
    comment="Each user's collateral and debt per reserve from block_number to valid_to, in base currency.",
)

for _history in (account_health_history, position_reserves_history):
    sa.Index(
        f"ix_{_history.name}_current",
        *(c for c in _history.primary_key.columns if c.name != "block_number"),
        unique=True,
        postgresql_where=_history.c.valid_to.is_(None),
    )
    sa.Index(f"ix_{_history.name}_block", _history.c.chain_id, _history.c.block_number)
    # The keeper's "latest snapshot of this pool" and a pool's undo are probes, not scans.
    sa.Index(f"ix_{_history.name}_pool_block", _history.c.chain_id, _history.c.pool, _history.c.block_number)

# What users configure rather than what the chain says: never rolled back by a reorg.
tracked_tokens = sa.Table(
    "tracked_tokens",
    metadata,
    sa.Column("chain_id", sa.Integer, primary_key=True),
    sa.Column("token", sa.Text, primary_key=True),
    sa.Column("symbol", sa.Text, nullable=False),
    sa.Column("decimals", sa.Integer, nullable=False),
    sa.Column("whale_threshold_usd", sa.Numeric, nullable=False),
    sa.Column("price_feed", sa.Text, comment="aggregator address; NULL: the asset's AaveOracle source"),
    sa.Column("price_decimals", sa.Integer, nullable=False),
    comment="ERC-20s whose transfers are valued in USD; from [[tokens]] in chainrisk.toml.",
)

morpho_oracles = sa.Table(
    "morpho_oracles",
    metadata,
    sa.Column("chain_id", sa.Integer, primary_key=True),
    sa.Column("address", sa.Text, primary_key=True),
    sa.Column("base_feed", sa.Text, comment="aggregator of the numerator; NULL: 1"),
    sa.Column("quote_feed", sa.Text, comment="aggregator of the denominator; NULL: 1"),
    sa.Column("scale_factor", UINT256, nullable=False),
    comment="Morpho Blue oracles: price() = scale_factor * base / quote; from [[morpho_oracles]].",
)

address_labels = sa.Table(
    "address_labels",
    metadata,
    sa.Column("chain_id", sa.Integer, primary_key=True),
    sa.Column("address", sa.Text, primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False, comment="seed, config or user; user edits win"),
    sa.Column("reference", sa.Text, comment="where the label can be checked"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(
        "category IN ('exchange', 'protocol', 'bridge', 'treasury', 'fund', 'market_maker', 'other')",
        name="ck_address_labels_category",
    ),
    sa.CheckConstraint("source IN ('seed', 'config', 'user')", name="ck_address_labels_source"),
    comment="Named addresses: exchanges, protocols, bridges, treasuries.",
)

# Valuing a transfer or a liquidation looks up the latest price before it; these keep that an index probe.
sa.Index(
    "ix_price_answer_updated_feed",
    EVENT_TABLES["price_answer_updated"].c.chain_id,
    EVENT_TABLES["price_answer_updated"].c.address,
    EVENT_TABLES["price_answer_updated"].c.block_number,
    EVENT_TABLES["price_answer_updated"].c.log_index,
)
sa.Index(
    "ix_aave_oracle_asset_source_updated_asset",
    EVENT_TABLES["aave_oracle_asset_source_updated"].c.chain_id,
    EVENT_TABLES["aave_oracle_asset_source_updated"].c.asset,
    EVENT_TABLES["aave_oracle_asset_source_updated"].c.block_number,
)

# A pool's state at a block replays its own events in order: one index probe per pool, not a scan.
for _name in ("uniswap_v3_initialize", "uniswap_v3_mint", "uniswap_v3_burn", "uniswap_v3_swap"):
    _events = EVENT_TABLES[_name]
    sa.Index(
        f"ix_{_name}_pool", _events.c.chain_id, _events.c.address, _events.c.block_number, _events.c.log_index
    )

# A Morpho Blue market's state at a block replays the contract's events in order: one probe per contract.
for _spec in morpho_blue.EVENTS:
    _events = EVENT_TABLES[_spec.table]
    sa.Index(
        f"ix_{_spec.table}_contract",
        _events.c.chain_id,
        _events.c.address,
        _events.c.block_number,
        _events.c.log_index,
    )
