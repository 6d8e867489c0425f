"""The float screen of the exact cascade never hides an account: every account below health factor 1
(exactly) is a candidate, every account without collateral is looked at, and a cascade that checks every
account exactly gives the same result as one that checks only the candidates."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from chainrisk.bench.cascade import devnet_book, devnet_oracles, devnet_pools
from graph.cascade import run_cascade
from graph.cascade_screen import Screen, emodes_of
from indexer.protocols.aave_math import (
    HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
    collateral_base,
    user_account_data,
)


@pytest.fixture(scope="module")
def book() -> Any:
    return devnet_book(3_000, seed=4)


def _screen(book: Any) -> tuple[Screen, dict[str, dict[str, dict[str, Any]]]]:
    positions = {m.name: {u: {r.asset: r for r in rs} for u, rs in m.positions.items()} for m in book.markets}
    decimals = {r.asset: r.decimals for m in book.markets for rs in m.positions.values() for r in rs}
    return Screen(positions, emodes_of([(m.name, m.emodes) for m in book.markets]), decimals), positions


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_account_below_one_is_a_candidate(book: Any, seed: int) -> None:
    screen, positions = _screen(book)
    rng = np.random.default_rng(seed)
    prices = {a: int(o.price * rng.uniform(0.3, 1.1)) for a, o in devnet_oracles().items()}
    emodes = {m.name: m.emodes for m in book.markets}
    below, empty = set(), set()
    for market, users in positions.items():
        for user, reserves in users.items():
            priced = [replace(r, price=prices[r.asset]) for r in reserves.values()]
            category = emodes[market].get(user, (None, 0))[0]
            account = user_account_data(priced, "3.0", category)
            if account.total_debt_base and account.health_factor < HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
                below.add((market, user))
            enabled = [collateral_base(r, r.price) for r in priced if r.usage_as_collateral_enabled]
            if account.total_debt_base and not any(enabled):
                empty.add((market, user))
    candidates = set(screen.candidates(prices))
    assert below and below <= candidates
    assert empty <= set(screen.maybe_without_collateral(prices))
    # It screens: most accounts never get the exact check.
    assert len(candidates) < 1.2 * len(below) + 0.05 * len(screen.accounts)


def test_the_screened_cascade_equals_the_exhaustive_one(book: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pools, oracles = devnet_pools(), devnet_oracles()
    weth = next(a for a, o in oracles.items() if o.kind == "feed" and o.quote is not None)
    shocks = [{weth: 0.55}, {weth: 0.7}, {a: 0.6 for a, o in oracles.items() if o.kind == "feed"}]
    screened = [run_cascade(book.markets, pools, oracles, s) for s in shocks]
    every = lambda self, prices: [a for a in self.accounts]  # noqa: E731
    monkeypatch.setattr(Screen, "candidates", every)
    monkeypatch.setattr(Screen, "maybe_without_collateral", every)
    exhaustive = [run_cascade(book.markets, pools, oracles, s) for s in shocks]
    assert screened == exhaustive
    assert any(r.depth >= 2 for r in screened) and any(r.bad_debt for r in screened)
