"""Morpho Blue maths: roundings, health, liquidation price and incentive, and the event ledger."""

from __future__ import annotations

from fractions import Fraction
from math import ceil, floor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.protocols import morpho_blue as mb

amounts = st.integers(0, 10**30)
lltvs = st.integers(1, mb.WAD - 1)
prices = st.integers(1, 10**42)


@settings(max_examples=300, deadline=None)
@given(amount=amounts, total_assets=amounts, total_shares=st.integers(0, 10**36))
def test_shares_conversions_round_as_named(amount: int, total_assets: int, total_shares: int) -> None:
    to_shares = Fraction(amount * (total_shares + mb.VIRTUAL_SHARES), total_assets + mb.VIRTUAL_ASSETS)
    to_assets = Fraction(amount * (total_assets + mb.VIRTUAL_ASSETS), total_shares + mb.VIRTUAL_SHARES)
    assert mb.to_shares_down(amount, total_assets, total_shares) == floor(to_shares)
    assert mb.to_shares_up(amount, total_assets, total_shares) == ceil(to_shares)
    assert mb.to_assets_down(amount, total_assets, total_shares) == floor(to_assets)
    assert mb.to_assets_up(amount, total_assets, total_shares) == ceil(to_assets)


def test_first_supply_gets_a_million_shares_per_asset_unit() -> None:
    assert mb.to_shares_down(10**18, 0, 0) == 10**24
    assert mb.to_assets_up(1, 0, 0) == 1  # one virtual share is worth a whole (rounded-up) asset unit


@settings(max_examples=300, deadline=None)
@given(
    collateral=st.integers(1, 10**30), borrowed=st.integers(1, 10**30), lltv=st.integers(10**16, mb.WAD - 1)
)
def test_liquidation_price_is_the_exact_threshold(collateral: int, borrowed: int, lltv: int) -> None:
    price = mb.liquidation_price(collateral, borrowed, lltv)
    assert price is not None and price >= 1
    assert mb.max_borrow(collateral, price, lltv) >= borrowed
    assert mb.max_borrow(collateral, price - 1, lltv) < borrowed


def test_liquidation_price_edges() -> None:
    assert mb.liquidation_price(10**18, 0, 86 * 10**16) == 0
    assert mb.liquidation_price(0, 1, 86 * 10**16) is None


@settings(max_examples=300, deadline=None)
@given(
    collateral=amounts,
    shares=st.integers(0, 10**36),
    total_assets=st.integers(0, 10**30),
    extra_shares=st.integers(0, 10**36),
    price=prices,
    lltv=lltvs,
)
def test_health_factor_below_one_exactly_when_unhealthy(
    collateral: int, shares: int, total_assets: int, extra_shares: int, price: int, lltv: int
) -> None:
    totals = mb.MarketTotals(total_borrow_assets=total_assets, total_borrow_shares=shares + extra_shares)
    position = mb.Position(borrow_shares=shares, collateral=collateral)
    hf = mb.health_factor(position, totals, price, lltv)
    assert (hf < mb.WAD) == (not mb.is_healthy(position, totals, price, lltv))
    if shares == 0:
        assert hf == mb.NO_DEBT_HEALTH_FACTOR


def test_liquidation_incentive_factor() -> None:
    assert mb.liquidation_incentive_factor(86 * 10**16) == 10**36 // (958 * 10**15)
    assert mb.liquidation_incentive_factor(945 * 10**15) == 10**36 // (9835 * 10**14)
    assert mb.liquidation_incentive_factor(0) == mb.MAX_LIQUIDATION_INCENTIVE_FACTOR
    assert mb.liquidation_incentive_factor(mb.WAD - 1) == mb.WAD


def test_liquidation_amounts_invert_each_other_within_a_share() -> None:
    totals = mb.MarketTotals(total_borrow_assets=5 * 10**9, total_borrow_shares=5 * 10**15)
    price, lltv = 3000 * 10**24, 86 * 10**16  # 3000 USDC (6 decimals) per WETH (18 decimals)
    seized = mb.seized_for_repaid_shares(10**15, totals, price, lltv)
    assert seized == 1000 * 10**6 * mb.liquidation_incentive_factor(lltv) // mb.WAD * 10**36 // price
    assert mb.repaid_shares_for_seized(seized, totals, price, lltv) <= 10**15


def test_ledger_follows_the_contract_order() -> None:
    alice, bob, fees = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "fe" * 20
    ledger = mb.Ledger()
    ledger.supply(alice, 1000, 1000 * 10**6)
    ledger.supply_collateral(bob, 10)
    ledger.borrow(bob, 500, 500 * 10**6)
    ledger.accrue_interest(50, 10**6, fees)
    t = ledger.totals
    assert (t.total_supply_assets, t.total_supply_shares) == (1050, 1001 * 10**6)
    assert (t.total_borrow_assets, t.total_borrow_shares) == (550, 500 * 10**6)
    assert ledger.positions[fees].supply_shares == 10**6
    # A repay one over the total floors it at zero (zeroFloorSub), shares as the event says.
    ledger.repay(bob, 551, 300 * 10**6)
    assert (t.total_borrow_assets, t.total_borrow_shares) == (0, 200 * 10**6)
    ledger.liquidate(
        bob, mb.LiquidateAmounts(0, 100 * 10**6, 10, bad_debt_assets=0, bad_debt_shares=100 * 10**6)
    )
    assert ledger.positions[bob] == mb.Position(0, 0, 0) and ledger.positions[bob].empty
    assert t.total_borrow_shares == 0
    with pytest.raises(OverflowError):
        ledger.withdraw_collateral(bob, 1)


def test_oracle_price_is_scale_times_base_over_quote() -> None:
    assert mb.oracle_price(10**24, 3000 * 10**8, 10**8) == 3000 * 10**24
    assert mb.oracle_price(10**36, 7, 3) == 7 * 10**36 // 3
    assert mb.oracle_price(10**36, None, None) == 10**36
    with pytest.raises(ValueError):
        mb.oracle_price(10**36, -1, 1)
