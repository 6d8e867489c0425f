"""Liquidation-at-risk of the indexed Aave positions under price shocks to a group of assets.

Reads `position_reserves` (exact per-reserve collateral and debt in base currency, rebuilt from events)
and runs the vectorised engine: each (pool, user) account is one borrower, each position keeps its own
liquidation threshold (eMode applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg

from graph.hf_engine import Positions, shock_grid

BASE_UNIT = 1e8  # Aave's base currency (USD) has 8 decimals


@dataclass(frozen=True)
class AtRisk:
    """One scenario: the shocked assets fall by `move` (e.g. -0.2)."""

    move: float
    liquidatable_accounts: int
    collateral_at_risk_usd: float
    debt_at_risk_usd: float


def load_positions(
    conn: psycopg.Connection[tuple[object, ...]], chain_id: int
) -> tuple[Positions, list[str]]:
    """The chain's positions as engine input (prices of 1: amounts are already in base currency)."""
    rows = conn.execute(
        "SELECT pool || ':' || user_address, asset, collateral_base, debt_base, collateral_enabled,"
        " liquidation_threshold_bps FROM position_reserves WHERE chain_id = %s ORDER BY 1, 2",
        (chain_id,),
    ).fetchall()
    return positions_from_rows(rows)


def positions_from_rows(rows: Sequence[Sequence[object]]) -> tuple[Positions, list[str]]:
    """Engine input from (account, asset, collateral_base, debt_base, collateral_enabled, lt_bps) rows."""
    accounts = {key: i for i, key in enumerate(dict.fromkeys(str(r[0]) for r in rows))}
    assets = sorted({str(r[1]) for r in rows})
    index = {a: i for i, a in enumerate(assets)}
    positions = Positions(
        user=np.array([accounts[str(r[0])] for r in rows], dtype=np.int64),
        asset=np.array([index[str(r[1])] for r in rows], dtype=np.int64),
        collateral=np.array([float(str(r[2])) / BASE_UNIT for r in rows]),
        debt=np.array([float(str(r[3])) / BASE_UNIT for r in rows]),
        liquidation_threshold_bps=np.array([int(str(r[5])) for r in rows], dtype=np.int64),
        collateral_enabled=np.array([bool(r[4]) for r in rows]),
        n_users=len(accounts),
    )
    return positions, assets


def at_risk(
    conn: psycopg.Connection[tuple[object, ...]],
    chain_id: int,
    shocked: Sequence[str],
    moves: Sequence[float],
) -> list[AtRisk]:
    """Accounts that become liquidatable, and their collateral and debt, when `shocked` assets move."""
    positions, assets = load_positions(conn, chain_id)
    return shocked_at_risk(positions, assets, shocked, moves)


def shocked_at_risk(
    positions: Positions, assets: Sequence[str], shocked: Sequence[str], moves: Sequence[float]
) -> list[AtRisk]:
    """`at_risk` on positions already loaded (e.g. a snapshot at a past block)."""
    if not assets:
        return [AtRisk(m, 0, 0.0, 0.0) for m in moves]
    wanted = {a.lower() for a in shocked}
    mask = np.array([a in wanted for a in assets])
    shocks = np.ones((len(moves), len(assets)))
    for row, move in enumerate(moves):
        shocks[row, mask] = 1.0 + move
    result = shock_grid(positions, np.ones(len(assets)), shocks)
    return [
        AtRisk(
            move=float(move),
            liquidatable_accounts=int(result.liquidatable_users[row]),
            collateral_at_risk_usd=float(result.collateral_at_risk[row].sum()),
            debt_at_risk_usd=float(result.debt_at_risk[row].sum()),
        )
        for row, move in enumerate(moves)
    ]
