"""Float bounds on every account's health, so the exact cascade computes exact health factors only where
they can decide something.

A round of :func:`graph.cascade.run_cascade` must find every account below health factor 1 at the oracle
prices. Computing each one's exact (integer) account data every round is what made a large book slow:
tens of thousands of accounts × tens of rounds. Between liquidations an account's balances do not move (the
cascade holds indices still), so its collateral and debt are linear in the prices:

    weighted collateral ≈ Σ_assets amount · LT · price,     debt ≈ Σ_assets amount · price

— one matrix product per round for every account. The exact health factor differs from this float one by
the contracts' roundings: base amounts floored to 1e-8 USD per reserve and the average LT floored to a
whole basis point (up to 1/LT ≈ 1.3e-4 relative). An account is a *candidate* when its float margin is
within ``RELATIVE_SLACK`` (1e-3, eight times that) plus two base units per reserve of going under; only
candidates get the exact check, which alone decides. Nothing is approximated in the result: an account
outside the slack cannot be below 1 exactly.

Morpho Blue positions (:class:`MorphoScreen`) the same way, per market: a position's debt is its borrow
shares at the market's share price and its limit its collateral times the oracle price and the LLTV, so
one vector expression per market and round bounds them all; the contract's roundings (``toAssetsUp``,
``mulDivDown``, ``wMulDown``) are a few units, within the same relative slack plus two units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from graph.morpho import MorphoMarket, MorphoPosition
from indexer.protocols.aave_math import (
    EModeCategory,
    UserReserve,
    collateral_base,
    debt_base,
    liquidation_threshold,
)

FloatArray = NDArray[np.float64]
Account = tuple[str, str]  # (market, user)

RELATIVE_SLACK = 1e-3
BASE_UNITS_PER_RESERVE = 2.0


class Screen:
    """Per account and asset: collateral amount × LT and debt amount (whole tokens), as matrices."""

    def __init__(
        self,
        positions: Mapping[str, Mapping[str, Mapping[str, UserReserve]]],
        emodes: Mapping[str, Mapping[str, EModeCategory | None]],
        decimals: Mapping[str, int],
    ) -> None:
        self.assets = sorted(decimals)
        self._column = {asset: j for j, asset in enumerate(self.assets)}
        self.accounts: list[Account] = [(m, u) for m in sorted(positions) for u in sorted(positions[m])]
        self._row = {account: i for i, account in enumerate(self.accounts)}
        shape = (len(self.accounts), len(self.assets))
        self._collateral, self._weighted, self._debt = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self._reserves = np.zeros(len(self.accounts))
        self._emodes = emodes
        for market, user in self.accounts:
            self.update(market, user, positions[market][user])

    def update(self, market: str, user: str, reserves: Mapping[str, UserReserve]) -> None:
        """The account's rows from its (new) balances."""
        row = self._row[(market, user)]
        emode = self._emodes.get(market, {}).get(user)
        for matrix in (self._collateral, self._weighted, self._debt):
            matrix[row] = 0.0
        for asset, reserve in reserves.items():
            unit, j = 10**reserve.decimals, self._column[asset]
            # At a price of one unit the base amount is the balance itself, exactly as the contracts round it.
            threshold = liquidation_threshold(reserve, emode)
            if threshold:
                amount = collateral_base(reserve, unit) / unit
                self._collateral[row, j] = amount
                self._weighted[row, j] = amount * threshold / 10_000
            self._debt[row, j] = debt_base(reserve, unit) / unit if reserve.scaled_vdebt_balance else 0.0
        self._reserves[row] = len(reserves)

    def _vector(self, prices: Mapping[str, int]) -> FloatArray:
        return np.array([float(prices[a]) for a in self.assets])

    def candidates(self, prices: Mapping[str, int]) -> list[Account]:
        """Accounts with debt whose exact health factor may be below 1 at ``prices`` (base currency)."""
        vector = self._vector(prices)
        weighted, debt = self._weighted @ vector, self._debt @ vector
        slack = debt * RELATIVE_SLACK + BASE_UNITS_PER_RESERVE * self._reserves
        hit = np.flatnonzero((debt > 0) & (weighted < debt + slack))
        return [self.accounts[i] for i in hit]

    def maybe_without_collateral(self, prices: Mapping[str, int]) -> list[Account]:
        """Accounts with debt whose enabled collateral may be worth nothing (under two base units)."""
        vector = self._vector(prices)
        collateral, debt = self._collateral @ vector, self._debt @ vector
        hit = np.flatnonzero((debt > 0) & (collateral < BASE_UNITS_PER_RESERVE * (1 + self._reserves)))
        return [self.accounts[i] for i in hit]


def emodes_of(
    markets: Sequence[tuple[str, Mapping[str, tuple[EModeCategory, int]]]],
) -> dict[str, dict[str, EModeCategory | None]]:
    """Per market and user the eMode category the screen applies (users not in eMode are absent)."""
    return {name: {user: category for user, (category, _) in by_user.items()} for name, by_user in markets}


class MorphoScreen:
    """Per Morpho market, the borrowers' borrow shares and collateral as float vectors."""

    def __init__(self, positions: Mapping[str, Mapping[str, MorphoPosition]]) -> None:
        self.users = {m: sorted(u for u, p in ps.items() if p.borrow_shares) for m, ps in positions.items()}
        self._row = {m: {u: i for i, u in enumerate(users)} for m, users in self.users.items()}
        self._shares = {
            m: np.array([float(positions[m][u].borrow_shares) for u in us]) for m, us in self.users.items()
        }
        self._collateral = {
            m: np.array([float(positions[m][u].collateral) for u in us]) for m, us in self.users.items()
        }

    def update(self, market: str, user: str, position: MorphoPosition) -> None:
        """The position's entries from its (new) state."""
        row = self._row[market].get(user)
        if row is not None:
            self._shares[market][row] = float(position.borrow_shares)
            self._collateral[market][row] = float(position.collateral)

    def candidates(self, market: MorphoMarket, price: int) -> list[str]:
        """Borrowers of ``market`` that may be unhealthy at the oracle ``price`` (1e36 scale)."""
        shares = self._shares[market.id]
        borrowed = shares * ((market.total_borrow_assets + 1) / (market.total_borrow_shares + 1e6))
        limit = self._collateral[market.id] * (price / 1e36) * (market.lltv / 1e18)
        hit = np.flatnonzero(
            (shares > 0) & (limit < borrowed * (1 + RELATIVE_SLACK) + BASE_UNITS_PER_RESERVE)
        )
        return [self.users[market.id][i] for i in hit]
