"""Read API of the lending tables: positions per reserve and account health, now or at a past block.

Amounts are exact integers in the pool's base currency (Aave v3 on Ethereum: USD with 8 decimals,
`BASE_UNIT`); health factors are wads.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from indexer.lending.health import pools, snapshot

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


def _reserve(row: tuple[object, ...]) -> ReservePosition:
    pool, user, asset, collateral, debt, enabled, threshold = row
    return ReservePosition(
        str(pool), str(user), str(asset), _int(collateral), _int(debt), bool(enabled), _int(threshold)
    )


def _int(value: object) -> int:
    return int(str(value))
