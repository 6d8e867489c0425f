"""Morpho Blue's maths and ``liquidate`` in exact integers: hand-worked cases and properties.

The hand-worked market is USDC lent against WETH at LLTV 86 %: 4,000 USDC borrowed for 4,000e12 shares
(one asset per 1e6 shares, the virtual rate), 10,000 USDC supplied. The borrower owes 1,700 USDC
(1,700e12 shares) against 1 WETH.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from graph.morpho import (
    HEALTHY_POSITION,
    INCONSISTENT_INPUT,
    MAX_LIQUIDATION_INCENTIVE_FACTOR,
    WAD,
    MorphoMarket,
    MorphoPosition,
    MorphoReverted,
    accrue_interest,
    borrowed,
    is_healthy,
    liquidate,
    liquidate_max,
    liquidation_incentive_factor,
    max_borrow,
    max_liquidation_args,
    oracle_price,
    scale_factor,
    to_assets_down,
    to_assets_up,
    to_shares_down,
    to_shares_up,
    w_taylor_compounded,
)

E6, E8, E12, E18 = 10**6, 10**8, 10**12, 10**18
MARKET = MorphoMarket(
    id="0x" + "ab" * 32,
    loan_token="0x" + "22" * 20,
    collateral_token="0x" + "11" * 20,
    lltv=86 * 10**16,
    loan_decimals=6,
    collateral_decimals=18,
    total_supply_assets=10_000 * E6,
    total_supply_shares=10_000 * E12,
    total_borrow_assets=4_000 * E6,
    total_borrow_shares=4_000 * E12,
)
POSITION = MorphoPosition(borrow_shares=1_700 * E12, collateral=E18)
WETH_USDC = scale_factor(18, 6)  # 1e24: feeds with 8 decimals, USDC 6, WETH 18


def _price(usd: int) -> int:
    return oracle_price(WETH_USDC, usd * E8, E8)


def test_shares_round_as_shares_math_lib() -> None:
    # (shares + 1e6 virtual) / (assets + 1 virtual): 3 shares of a 10-asset, 10e6-share market.
    assert to_assets_down(3 * E6 + 1, 10, 10 * E6) == 3
    assert to_assets_up(3 * E6 + 1, 10, 10 * E6) == 4
    assert to_shares_down(3, 10, 10 * E6) == 3 * E6
    assert to_shares_up(3, 10, 10 * E6) == 3 * E6
    assert to_shares_up(1, 0, 0) == E6  # an empty market: one asset is worth 1e6 shares
    assert to_assets_down(E6 - 1, 0, 0) == 0


def test_the_incentive_factor_of_the_devnets_markets() -> None:
    # 1 / (1 - 0.3 * (1 - lltv)), wad, rounded down; capped at 1.15.
    assert liquidation_incentive_factor(86 * 10**16) == 10**36 // (958 * 10**15) == 1_043_841_336_116_910_229
    assert (
        liquidation_incentive_factor(945 * 10**15) == 10**36 // (9_835 * 10**14) == 1_016_776_817_488_561_260
    )
    assert liquidation_incentive_factor(0) == MAX_LIQUIDATION_INCENTIVE_FACTOR
    assert liquidation_incentive_factor(WAD) == WAD


def test_the_oracle_gives_loan_units_per_collateral_unit_times_1e36() -> None:
    assert _price(1_900) == 1_900 * E6 * 10**36 // E18
    assert oracle_price(scale_factor(18, 18), 3_500 * E8, 3_000 * E8) == 10**36 * 7 // 6
    assert scale_factor(8, 6) == 10**34  # WBTC (8) against USDC (6)


def test_health_at_1900_and_2000() -> None:
    assert borrowed(MARKET, POSITION) == 1_700 * E6
    # 1 WETH at $2,000 × 86 % = 1,720 ≥ 1,700: healthy; at $1,900, 1,634 < 1,700.
    assert max_borrow(MARKET, POSITION, _price(2_000)) == 1_720 * E6
    assert is_healthy(MARKET, POSITION, _price(2_000))
    assert max_borrow(MARKET, POSITION, _price(1_900)) == 1_634 * E6
    assert not is_healthy(MARKET, POSITION, _price(1_900))
    assert is_healthy(MARKET, MorphoPosition(collateral=0), 1)  # no borrow shares


def test_repaying_every_share_at_1900() -> None:
    # seized = 1,700e6 × LIF (1,774,530,271) × 1e36 / 1.9e27, rounded down.
    outcome = liquidate_max(MARKET, POSITION, _price(1_900))
    assert (outcome.repaid_shares, outcome.repaid_assets) == (1_700 * E12, 1_700 * E6)
    assert outcome.seized_assets == 933_963_300_526_315_789
    assert outcome.position == MorphoPosition(borrow_shares=0, collateral=E18 - 933_963_300_526_315_789)
    assert (outcome.bad_debt_assets, outcome.bad_debt_shares) == (0, 0)
    assert (outcome.market.total_borrow_assets, outcome.market.total_borrow_shares) == (
        2_300 * E6,
        2_300 * E12,
    )


def test_seizing_half_the_collateral_at_1900() -> None:
    # 0.5 WETH quoted at 950e6, divided by LIF rounded up: 910,100,001 assets, × 1e6 shares.
    outcome = liquidate(MARKET, POSITION, _price(1_900), seized_assets=E18 // 2)
    assert (outcome.repaid_assets, outcome.repaid_shares) == (910_100_001, 910_100_001 * E6)
    assert outcome.position == MorphoPosition(borrow_shares=789_899_999 * E6, collateral=E18 // 2)


def test_all_the_collateral_at_1700_realises_bad_debt() -> None:
    # 1 WETH quoted at 1,700e6, / LIF up = 1,628,600,001 repaid; the 71,399,999 left are bad debt.
    assert max_liquidation_args(MARKET, POSITION, _price(1_700)) == (E18, 0)
    outcome = liquidate_max(MARKET, POSITION, _price(1_700))
    assert (outcome.seized_assets, outcome.repaid_assets) == (E18, 1_628_600_001)
    assert (outcome.bad_debt_assets, outcome.bad_debt_shares) == (71_399_999, 71_399_999 * E6)
    assert outcome.position == MorphoPosition(borrow_shares=0, collateral=0)
    assert outcome.market.total_borrow_assets == 2_300 * E6
    assert outcome.market.total_supply_assets == 10_000 * E6 - 71_399_999  # the suppliers bear it


def test_reverts_as_the_contract() -> None:
    with pytest.raises(MorphoReverted) as healthy:
        liquidate(MARKET, POSITION, _price(2_000), repaid_shares=1)
    assert healthy.value.reason == HEALTHY_POSITION
    for seized, shares in ((0, 0), (1, 1)):
        with pytest.raises(MorphoReverted) as both:
            liquidate(MARKET, POSITION, _price(1_900), seized_assets=seized, repaid_shares=shares)
        assert both.value.reason == INCONSISTENT_INPUT
    with pytest.raises(MorphoReverted, match=r"Panic\(0x11\)"):  # more collateral than the position has
        liquidate(MARKET, POSITION, _price(1_900), seized_assets=E18 + 1)
    with pytest.raises(MorphoReverted, match=HEALTHY_POSITION):
        max_liquidation_args(MARKET, POSITION, _price(2_000))


def test_interest_accrues_as_the_contract() -> None:
    rate = 10**18 // (365 * 86_400) // 10  # about 10 % a year, per second
    market = replace(MARKET, last_update=1_000, fee=10**17)
    after, fee_shares = accrue_interest(market, rate, 1_000 + 86_400)
    interest = 4_000 * E6 * w_taylor_compounded(rate, 86_400) // E18
    assert after.total_borrow_assets - MARKET.total_borrow_assets == interest > 0
    assert after.total_supply_assets - MARKET.total_supply_assets == interest
    assert fee_shares == to_shares_down(interest // 10, 10_000 * E6 + interest - interest // 10, 10_000 * E12)
    assert after.last_update == 1_000 + 86_400
    assert accrue_interest(after, rate, 1_000 + 86_400) == (after, 0)


# ------------------------------------------------------------------------------------------- properties


@st.composite
def _books(draw: st.DrawFn) -> tuple[MorphoMarket, MorphoPosition, int]:
    assets = draw(st.integers(1, 10**30))
    shares = assets * draw(st.integers(E6 // 2, 2 * E6)) + draw(st.integers(0, E6))
    mine = draw(st.integers(1, shares))
    lltv = draw(st.integers(1, WAD - 1))
    market = MorphoMarket(
        "0x" + "cd" * 32, "loan", "coll", lltv, 18, 18,
        total_supply_assets=assets + draw(st.integers(0, 10**30)),
        total_supply_shares=assets * E6,
        total_borrow_assets=assets,
        total_borrow_shares=shares,
    )  # fmt: skip
    position = MorphoPosition(borrow_shares=mine, collateral=draw(st.integers(1, 10**30)))
    return market, position, draw(st.integers(1, 10**40))


def _conserved(before: MorphoMarket, position: MorphoPosition, outcome: object) -> None:
    from graph.morpho import MorphoLiquidation

    assert isinstance(outcome, MorphoLiquidation)
    after, left = outcome.market, outcome.position
    assert 0 <= outcome.seized_assets <= position.collateral
    assert left.collateral == position.collateral - outcome.seized_assets
    gone = outcome.repaid_shares + outcome.bad_debt_shares
    assert before.total_borrow_shares - after.total_borrow_shares == gone
    assert position.borrow_shares - left.borrow_shares == gone
    assert after.total_borrow_assets == max(before.total_borrow_assets - outcome.repaid_assets, 0) - (
        outcome.bad_debt_assets
    )
    assert before.total_supply_assets - after.total_supply_assets == outcome.bad_debt_assets
    # Bad debt only when the collateral is gone, and then no borrow shares stay.
    assert (outcome.bad_debt_shares > 0) <= (left.collateral == 0)
    assert left.collateral > 0 or left.borrow_shares == 0


@settings(max_examples=300, deadline=None)
@given(_books())
def test_the_largest_liquidation_conserves_shares_and_assets(
    book: tuple[MorphoMarket, MorphoPosition, int],
) -> None:
    market, position, price = book
    assume(not is_healthy(market, position, price))
    try:
        outcome = liquidate_max(market, position, price)
    except MorphoReverted as reverted:  # only when not even one unit of collateral can be seized
        assert reverted.reason == "Panic(0x11)"
        return
    _conserved(market, position, outcome)
    # It closes the position: every share repaid, or all the collateral seized, or (rounding) one unit
    # more of collateral would cost more shares than the position has.
    seized, shares = max_liquidation_args(market, position, price)
    if shares:
        assert outcome.position.borrow_shares == 0
    elif seized == position.collateral:
        assert outcome.position == MorphoPosition(borrow_shares=0, collateral=0)
    else:
        with pytest.raises(MorphoReverted, match=r"Panic\(0x11\)"):
            liquidate(market, position, price, seized_assets=seized + 1)


@settings(max_examples=300, deadline=None)
@given(_books(), st.integers(1, 10**30), st.booleans())
def test_any_liquidation_conserves_or_reverts(
    book: tuple[MorphoMarket, MorphoPosition, int], amount: int, by_shares: bool
) -> None:
    market, position, price = book
    assume(not is_healthy(market, position, price))
    kwargs = {"repaid_shares": amount} if by_shares else {"seized_assets": amount}
    try:
        outcome = liquidate(market, position, price, **kwargs)
    except MorphoReverted as reverted:
        assert reverted.reason in ("Panic(0x11)", "max uint128 exceeded")
        return
    _conserved(market, position, outcome)
    # The liquidator never gets more collateral value than LIF times what it repaid (both rounded
    # in the protocol's favour).
    quoted = outcome.seized_assets * price // 10**36
    assert quoted * WAD <= (outcome.repaid_assets + 1) * outcome.incentive_factor + WAD


@settings(max_examples=200, deadline=None)
@given(st.integers(0, WAD), st.integers(0, WAD))
def test_the_incentive_factor_lies_in_one_to_1_15_and_falls_with_the_lltv(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert WAD <= liquidation_incentive_factor(high) <= liquidation_incentive_factor(low)
    assert liquidation_incentive_factor(low) <= MAX_LIQUIDATION_INCENTIVE_FACTOR
