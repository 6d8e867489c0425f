"""Read API of the lending tables: positions per reserve and account health, now or at a past block.

Amounts are exact integers in the pool's base currency (Aave v3 on Ethereum: USD with 8 decimals,
`BASE_UNIT`); health factors are wads. The totals over the lending views (`at_risk`,
`unrealised_bad_debt`, `liquidations`) are USD decimals, valued as those views value them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import psycopg

from indexer.lending.health import pools, snapshot
from indexer.lending.positions import reserve_tokens

Conn = psycopg.Connection[tuple[object, ...]]

BASE_UNIT = 10**8  # Aave's base currency (USD) has 8 decimals


@dataclass(frozen=True, slots=True)
class ReservePosition:
    """One wallet's collateral and debt in one reserve of one pool."""

    pool: str
    user: str
    asset: str
    collateral_base: int
    debt_base: int
    collateral_enabled: bool
    liquidation_threshold_bps: int  # eMode applied

    @property
    def account(self) -> str:
        """`pool:user`: a borrower is one account per pool."""
        return f"{self.pool}:{self.user}"


@dataclass(frozen=True, slots=True)
class AccountHealth:
    """One account's totals and health factor, as Pool.getUserAccountData reports them."""

    pool: str
    user: str
    total_collateral_base: int
    total_debt_base: int
    health_factor: int


def reserve_positions(conn: Conn, chain_id: int, *, nonzero: bool = False) -> list[ReservePosition]:
    """The indexed positions of a chain, ordered by pool, user and asset; `nonzero` drops empty ones."""
    rows = conn.execute(
        "SELECT pool, user_address, asset, collateral_base, debt_base, collateral_enabled,"
        " liquidation_threshold_bps FROM position_reserves WHERE chain_id = %s"
        + (" AND (collateral_base > 0 OR debt_base > 0)" if nonzero else "")
        + " ORDER BY pool, user_address, asset",
        (chain_id,),
    ).fetchall()
    return [_reserve(row) for row in rows]


def positions_at(conn: Conn, chain_id: int, block: int) -> tuple[list[AccountHealth], list[ReservePosition]]:
    """Every account's health and positions at `block`, rebuilt from the events up to it (nothing written)."""
    health: list[AccountHealth] = []
    reserves: list[ReservePosition] = []
    for pool in pools(conn, chain_id):
        accounts, rows = snapshot(conn, chain_id, pool, block)
        health += [AccountHealth(pool, str(a[2]), _int(a[4]), _int(a[5]), _int(a[9])) for a in accounts]
        reserves += [_reserve((r[1], r[2], r[3], r[5], r[6], r[7], r[8])) for r in rows]
    return health, reserves


def pool_labels(conn: Conn, chain_id: int) -> dict[str, str]:
    """Pool address → label where the address book names the pool (e.g. 'aave-pool')."""
    rows = conn.execute(
        "SELECT DISTINCT r.pool, l.label FROM position_reserves r JOIN address_labels l"
        " ON l.chain_id = r.chain_id AND l.address = r.pool WHERE r.chain_id = %s",
        (chain_id,),
    ).fetchall()
    return {str(pool): str(label) for pool, label in rows}


@dataclass(frozen=True, slots=True)
class AtRisk:
    """Accounts with a health factor under 1.1 and their collateral and debt in USD."""

    accounts: int
    collateral_usd: Decimal
    debt_usd: Decimal


def at_risk(conn: Conn, chain_id: int) -> AtRisk:
    """The accounts of the `positions_at_risk` view, in all."""
    count, collateral, debt = _one(
        conn,
        "SELECT count(*), coalesce(sum(collateral_usd), 0), coalesce(sum(debt_usd), 0)"
        " FROM positions_at_risk WHERE chain_id = %s",
        (chain_id,),
    )
    return AtRisk(_int(count), _usd(collateral), _usd(debt))


@dataclass(frozen=True, slots=True)
class BadDebt:
    """Accounts whose debt exceeds their collateral, and the excess in USD."""

    accounts: int
    usd: Decimal


def unrealised_bad_debt(conn: Conn, chain_id: int) -> BadDebt:
    """Bad debt not yet written off: accounts whose debt exceeds their collateral now."""
    count, usd = _one(
        conn,
        "SELECT count(*), coalesce(sum(usd), 0) FROM bad_debt WHERE chain_id = %s AND kind = 'unrealised'",
        (chain_id,),
    )
    return BadDebt(_int(count), _usd(usd))


@dataclass(frozen=True, slots=True)
class Liquidations:
    """Liquidations: how many, of how many borrowers, the debt repaid and collateral seized in USD (at the
    prices in force just before each)."""

    count: int
    borrowers: int
    debt_repaid_usd: Decimal
    collateral_seized_usd: Decimal


def liquidations(conn: Conn) -> Liquidations:
    """The `liquidations` view in all, over every indexed chain."""
    count, borrowers, repaid, seized = _one(
        conn,
        "SELECT count(*), count(DISTINCT borrower), coalesce(sum(debt_repaid_usd), 0),"
        " coalesce(sum(collateral_seized_usd), 0) FROM liquidations",
        (),
    )
    return Liquidations(_int(count), _int(borrowers), _usd(repaid), _usd(seized))


def _one(conn: Conn, query: str, params: tuple[object, ...]) -> tuple[object, ...]:
    row = conn.execute(query, params).fetchone()
    assert row is not None  # an aggregate without GROUP BY always has its one row
    return row


def _reserve(row: tuple[object, ...]) -> ReservePosition:
    pool, user, asset, collateral, debt, enabled, threshold = row
    return ReservePosition(
        str(pool), str(user), str(asset), _int(collateral), _int(debt), bool(enabled), _int(threshold)
    )


def _int(value: object) -> int:
    return int(str(value))


def _usd(value: object) -> Decimal:
    return Decimal(str(value))


def protocol_fees(conn: Conn, chain_id: int, pool: str, block: int) -> dict[str, int]:
    """Each reserve's liquidation protocol fee (bps of the bonus) as of ``block``, from the pool's
    configurators' ``LiquidationProtocolFeeChanged``; a reserve never set has none in the result (0)."""
    _, configurators = reserve_tokens(conn, chain_id, pool, block)
    rows = conn.execute(
        "SELECT DISTINCT ON (asset) asset, new_fee FROM aave_v3_liquidation_protocol_fee_changed"
        " WHERE chain_id = %s AND address = ANY(%s) AND block_number <= %s"
        " ORDER BY asset, block_number DESC, log_index DESC",
        (chain_id, list(configurators), block),
    ).fetchall()
    return {str(asset): _int(fee) for asset, fee in rows}
