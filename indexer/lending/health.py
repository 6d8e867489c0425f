"""Materialise account health and per-reserve positions of every Aave v3 user from the indexed events.

`refresh` rebuilds a pool's snapshot at one block with the exact protocol maths (equal to
Pool.getUserAccountData) and records what changed in the history tables in one transaction, so readers
never see half a snapshot; `account_health` and `position_reserves` are the history's open rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psycopg

from indexer.lending import morpho
from indexer.lending.history import write_snapshot
from indexer.lending.positions import MarketState, PositionsError, block_timestamp, market_state
from indexer.protocols.aave_math import UserReserve, Version, collateral_base, debt_base


@dataclass(frozen=True)
class Refreshed:
    pool: str
    block: int
    users: int
    at_risk: int


def pools(conn: psycopg.Connection[tuple[object, ...]], chain_id: int) -> list[str]:
    """Pools with indexed reserve updates on a chain."""
    rows = conn.execute(
        "SELECT DISTINCT address FROM aave_v3_reserve_data_updated WHERE chain_id = %s ORDER BY 1",
        (chain_id,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def indexed_head(conn: psycopg.Connection[tuple[object, ...]], chain_id: int) -> int | None:
    """The highest block every cursor of the chain has reached."""
    row = conn.execute("SELECT max(block_number) FROM cursors WHERE chain_id = %s", (chain_id,)).fetchone()
    return None if row is None or row[0] is None else int(str(row[0]))


def refresh(
    conn: psycopg.Connection[tuple[object, ...]],
    chain_id: int,
    pool: str,
    block: int,
    decimals: Mapping[str, int] | None = None,
    version: Version = "3.0",
) -> Refreshed:
    """Recompute every user of `pool` at `block` and record what changed in the history, atomically."""
    state = market_state(conn, chain_id, pool, block, decimals)
    health, reserves = _rows(state, version)
    write_snapshot(conn, chain_id, state.pool, block, state.timestamp, health, reserves)
    at_risk = sum(1 for row in health if _hf(row) < 11 * 10**17)
    return Refreshed(state.pool, block, len(health), at_risk)


def refresh_morpho(
    conn: psycopg.Connection[tuple[object, ...]],
    chain_id: int,
    contract: str,
    block: int,
    replay: morpho.MorphoReplay | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> list[Refreshed]:
    """Recompute every position of every market of a Morpho Blue contract at `block` into the history.

    Each market is a pool (its id) with protocol morpho_blue. `replay`, when given, must not be past
    `block`; it is advanced to it (the keeper keeps one per contract instead of replaying from the start).
    A market that cannot be valued (its oracle or a token's price not configured) is left as it was and
    reported to `on_skip(market id, reason)`; the others are written.
    """
    replay = replay or morpho.MorphoReplay(chain_id, contract)
    replay.advance(conn, block)
    timestamp = block_timestamp(conn, chain_id, block)
    done = []
    for market in replay.markets(conn):
        try:
            health, reserves = morpho.snapshot_rows(conn, market)
        except PositionsError as exc:
            if on_skip is not None:
                on_skip(market.id, str(exc))
            continue
        write_snapshot(conn, chain_id, market.id, block, timestamp, health, reserves, morpho.PROTOCOL)
        at_risk = sum(1 for row in health if _hf(row) < 11 * 10**17)
        done.append(Refreshed(market.id, block, len(health), at_risk))
    return done


def snapshot(
    conn: psycopg.Connection[tuple[object, ...]],
    chain_id: int,
    pool: str,
    block: int,
    decimals: Mapping[str, int] | None = None,
    version: Version = "3.0",
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Rows of `account_health` and `position_reserves` for every user of `pool` at `block`, unwritten."""
    return _rows(market_state(conn, chain_id, pool, block, decimals), version)


def _rows(state: MarketState, version: Version) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    chain_id, pool, block = state.chain_id, state.pool, state.block
    health: list[tuple[object, ...]] = []
    reserves: list[tuple[object, ...]] = []
    for user in state.users:
        data = state.account_data(user, version)
        emode = state.user_emode.get(user, 0)
        health.append((chain_id, pool, user, block, *data, emode))
        reserves.extend(_reserve_rows(state, user, emode, version))
    return health, reserves


def _hf(row: tuple[object, ...]) -> int:
    return int(str(row[9]))


def _reserve_rows(state: MarketState, user: str, emode: int, version: Version) -> list[tuple[object, ...]]:
    category = state.emode_categories.get(emode) if emode else None
    rows: list[tuple[object, ...]] = []
    for reserve in state.user_reserves(user):
        threshold = _threshold(reserve, emode, category.liquidation_threshold_bps if category else None)
        rows.append(
            (
                state.chain_id, state.pool, user, reserve.asset, state.block,
                collateral_base(reserve, reserve.price, version) if reserve.scaled_atoken_balance else 0,
                debt_base(reserve, reserve.price, version) if reserve.scaled_vdebt_balance else 0,
                reserve.usage_as_collateral_enabled, threshold, reserve.price,
            )
        )  # fmt: skip
    return rows


def _threshold(reserve: UserReserve, emode: int, emode_threshold: int | None) -> int:
    if emode and reserve.emode_category == emode and emode_threshold is not None:
        return emode_threshold
    return reserve.liquidation_threshold_bps
