"""A cheap physical prior for the surrogates: the cascade in a few float rounds, without pools or oracles.

    approx = approximate_cascade(static, shocks)
    approx.first_round      # (scenarios, accounts): 0 = never below 1 here, else the round
    approx.bad_debt_usd     # (scenarios,) the debt left when an account's collateral runs out
    approx.bad_debt_account # (scenarios, accounts) the same, per account

Each round, every account below a health factor of 1 repays half its debt (all of it at 0.95 or below)
and loses that value times ``BONUS`` of its collateral, spread over its collateral assets; what is seized
is sold into the asset's pools, modelled as one constant-product pool per asset holding half the asset's
depth, and an asset whose oracle follows a pool takes the price the sales leave. Positions shrink
uniformly (a fraction of debt and of collateral left per account), so the whole state is a few
(scenarios × accounts) arrays and each round is two matrix products.

It ignores what the engines model exactly (ticks, fees, the oracle's deviation threshold and heartbeat,
per-reserve close factors and bonuses, the order of sales within a round), so its numbers are not
outcomes: they are features. What they add over the shocked health factor is the second round: which
accounts the first round's sales push below 1, and how the bad debt grows with the depth of the pools.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graph.gnn.features import FloatArray, IntArray, StaticGraph

ROUNDS = 6
BONUS = 1.05
CLOSE_ALL_HF = 0.95
TINY = 1e-9


@dataclass(frozen=True)
class Approximation:
    """The approximate cascade's outcome per scenario and account."""

    first_round: IntArray  # (scenarios, accounts)
    price: FloatArray  # (scenarios, assets) multipliers at the end
    bad_debt_account: FloatArray  # (scenarios, accounts) USD at the prices the sales leave
    liquidated_usd: FloatArray  # (scenarios,) debt repaid

    @property
    def bad_debt_usd(self) -> FloatArray:
        """(scenarios,) bad debt, USD."""
        found: FloatArray = self.bad_debt_account.sum(axis=1)
        return found

    @property
    def depth(self) -> IntArray:
        """Rounds with a liquidation, per scenario."""
        found: IntArray = self.first_round.max(axis=1)
        return found


def _impact(static: StaticGraph, shocks: FloatArray, sold: FloatArray) -> FloatArray:
    """Price multipliers after selling ``sold`` (USD at the prices before the shock) of each asset."""
    reserve = static.asset_depth / 2.0
    kept = np.where(reserve > 0, reserve / np.maximum(reserve + sold, TINY), 1.0) ** 2
    moved: FloatArray = shocks * np.where(static.feed > 0, kept, 1.0)
    return moved


def approximate_cascade(static: StaticGraph, shocks: FloatArray, rounds: int = ROUNDS) -> Approximation:
    """The cascade of :mod:`graph.gnn.approx` on every scenario at once."""
    s, n = shocks.shape[0], len(static.accounts)
    debt_left, coll_left = np.ones((s, n)), np.ones((s, n))
    first = np.zeros((s, n), dtype=np.int64)
    sold = np.zeros_like(shocks)
    repaid_total = np.zeros(s)
    price = shocks
    for r in range(1, rounds + 1):
        owed = debt_left * (price @ static.debt_usd.T)
        held = coll_left * (price @ static.collateral_usd.T)
        health = coll_left * (price @ static.weighted_usd.T) / np.maximum(owed, TINY)
        hit = (health < 1.0) & (owed > 1.0) & (held > 1.0)
        if not hit.any():
            break
        first = np.where(hit & (first == 0), r, first)
        close = np.where(health <= CLOSE_ALL_HF, 1.0, 0.5)
        repaid = np.where(hit, np.minimum(close * owed, held / BONUS), 0.0)
        seized_share = np.where(hit, repaid * BONUS / np.maximum(held, TINY), 0.0)
        # Seized collateral in USD at the prices before the shock: the pools' reserves are in those units.
        sold = sold + (seized_share * coll_left) @ static.collateral_usd
        debt_left = debt_left * (1.0 - repaid / np.maximum(owed, TINY))
        coll_left = coll_left * (1.0 - seized_share)
        repaid_total += repaid.sum(axis=1)
        price = _impact(static, shocks, sold)
    owed = debt_left * (price @ static.debt_usd.T)
    held = coll_left * (price @ static.collateral_usd.T)
    # Bad debt: an account the cascade reached whose collateral no longer covers its debt.
    bad = np.where(first > 0, np.maximum(owed - held / BONUS, 0.0), 0.0)
    return Approximation(first, price, bad, repaid_total)
