"""Liquidation-at-risk of the indexed Aave positions under price shocks to a group of assets.

Reads the lending layer's positions (exact per-reserve collateral and debt in base currency, rebuilt
from events) and runs the vectorised engine: each (pool, user) account is one borrower, each position
keeps its own liquidation threshold (eMode applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg

from graph.hf_engine import Positions, shock_grid
from indexer.lending.read import BASE_UNIT, ReservePosition, reserve_positions


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
    return positions_from_reserves(reserve_positions(conn, chain_id))


def positions_from_reserves(reserves: Sequence[ReservePosition]) -> tuple[Positions, list[str]]:
    """Engine input from the lending layer's positions: one borrower per (pool, user) account."""
    ordered = sorted(reserves, key=lambda r: (r.account, r.asset))
    accounts = {key: i for i, key in enumerate(dict.fromkeys(r.account for r in ordered))}
    assets = sorted({r.asset for r in ordered})
    index = {a: i for i, a in enumerate(assets)}
    positions = Positions(
        user=np.array([accounts[r.account] for r in ordered], dtype=np.int64),
        asset=np.array([index[r.asset] for r in ordered], dtype=np.int64),
        collateral=np.array([r.collateral_base / BASE_UNIT for r in ordered]),
        debt=np.array([r.debt_base / BASE_UNIT for r in ordered]),
        liquidation_threshold_bps=np.array([r.liquidation_threshold_bps for r in ordered], dtype=np.int64),
        collateral_enabled=np.array([r.collateral_enabled for r in ordered]),
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
