"""Liquidation maths against the published v3.3 vectors and the v3.0/v3.3 rules worked by hand.

The devnet runs v3.0, so the 3.3 rule set is checked here only: the vectors V1–V4 (WETH collateral at
LT 82.5 %, bonus 5 %, protocol fee 10 % of the bonus; USDC debt at $1), derived from aave-v3-origin's
LiquidationLogic. tests/devnet/test_liquidation.py checks 3.0 against the chain.
"""

from __future__ import annotations

import random

import pytest

from graph.errors import GraphError
from graph.liquidation import (
    MAX_UINT,
    LiquidationInputError,
    LiquidationReverted,
    ReserveTerms,
    liquidate,
    liquidation_profit,
    max_debt_to_cover,
    worth_liquidating,
)
from indexer.protocols.aave_math import RAY, EModeCategory, UserReserve

WETH, USDC, DAI = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
E8, E6, E18 = 10**8, 10**6, 10**18
TERMS = {WETH: ReserveTerms(10_500, 1_000), USDC: ReserveTerms(10_450, 1_000), DAI: ReserveTerms(10_500)}


def _reserve(
    asset: str,
    decimals: int,
    price: int,
    supplied: int = 0,
    borrowed: int = 0,
    lt: int = 8_250,
    category: int = 0,
) -> UserReserve:
    return UserReserve(
        asset=asset,
        decimals=decimals,
        price=price,
        scaled_atoken_balance=supplied,
        scaled_vdebt_balance=borrowed,
        liquidity_index=RAY,
        variable_borrow_index=RAY,
        liquidity_rate=0,
        variable_borrow_rate=0,
        last_update_timestamp=1_000,
        now_timestamp=1_000,
        ltv_bps=8_000,
        liquidation_threshold_bps=lt,
        usage_as_collateral_enabled=supplied > 0,
        emode_category=category,
    )


def _position(weth_usd: int, weth: int, usdc: int, dai: int = 0) -> list[UserReserve]:
    reserves = [_reserve(WETH, 18, weth_usd * E8, supplied=weth), _reserve(USDC, 6, E8, borrowed=usdc)]
    if dai:
        reserves.append(_reserve(DAI, 18, E8, borrowed=dai))
    return reserves


def test_v1_half_of_the_total_debt() -> None:
    out = liquidate(_position(2_000, 10 * E18, 17_000 * E6), WETH, USDC, MAX_UINT, TERMS, rules="3.3")
    assert out.health_factor == 970_588_235_294_117_647
    assert out.debt_repaid == 8_500_000_000
    assert out.collateral_to_liquidator == 4_441_250_000_000_000_000
    assert out.protocol_fee == 21_250_000_000_000_000
    assert out.scaled_collateral_after == 10 * E18 - 4_462_500_000_000_000_000
    assert out.scaled_debt_after == 8_500_000_000
    assert out.treasury_scaled_atoken == out.protocol_fee
    assert (out.deficits, out.collateral_disabled, out.debt_cleared) == ((), False, False)


def test_v2_full_debt_at_or_below_095() -> None:
    out = liquidate(_position(1_900, 10 * E18, 17_000 * E6), WETH, USDC, MAX_UINT, TERMS, rules="3.3")
    assert out.health_factor // 10**12 == 922_058
    assert out.debt_repaid == 17_000_000_000
    assert out.collateral_to_liquidator == 9_349_999_999_999_999_999
    assert out.protocol_fee == 44_736_842_105_263_158
    assert out.debt_cleared and out.scaled_debt_after == 0


def test_v3_collateral_bound_creates_deficit() -> None:
    out = liquidate(_position(1_500, E18, 2_000 * E6), WETH, USDC, MAX_UINT, TERMS, rules="3.3")
    assert out.health_factor == 618_750_000_000_000_000
    assert out.debt_repaid == 1_428_571_429
    assert out.collateral_to_liquidator == 995_238_095_238_095_238
    assert out.protocol_fee == 4_761_904_761_904_762
    assert out.deficits == ((USDC, 571_428_571),)
    assert out.scaled_debt_after == 0 and out.scaled_collateral_after == 0
    assert out.collateral_disabled and out.debt_cleared


def test_v3_deficit_burns_every_other_debt() -> None:
    out = liquidate(_position(500, E18, 1_000 * E6, 1_000 * E18), WETH, USDC, MAX_UINT, TERMS, rules="3.3")
    assert dict(out.deficits)[DAI] == 1_000 * E18
    assert out.debt_repaid + dict(out.deficits)[USDC] == 1_000 * E6


def test_v4_dust_reverts() -> None:
    with pytest.raises(LiquidationReverted) as caught:
        liquidate(_position(1_900, 10 * E18, 17_000 * E6), WETH, USDC, 16_500 * E6, TERMS, rules="3.3")
    assert caught.value.code == "103"
    assert isinstance(caught.value, GraphError)


def test_v30_closes_half_of_this_reserve_and_never_leaves_a_deficit() -> None:
    one = liquidate(_position(2_000, 10 * E18, 17_000 * E6), WETH, USDC, MAX_UINT, TERMS, rules="3.0")
    assert (one.debt_repaid, one.collateral_to_liquidator) == (8_500_000_000, 4_441_250_000_000_000_000)
    two = _position(2_000, 10 * E18, 9_000 * E6, 8_000 * E18)
    assert liquidate(two, WETH, USDC, MAX_UINT, TERMS, rules="3.0").debt_repaid == 4_500 * E6
    bound = liquidate(_position(1_500, E18, 2_000 * E6), WETH, USDC, MAX_UINT, TERMS, rules="3.0")
    assert bound.debt_repaid == 1_428_571_429 and bound.deficits == ()
    assert bound.scaled_debt_after == 2_000 * E6 - 1_428_571_429 and not bound.debt_cleared


def test_max_debt_to_cover_shrinks_to_leave_no_dust() -> None:
    # USDC 9,000 of 17,000: half the total (8,500) would leave $500 of USDC debt, so at most 8,000.
    reserves = _position(2_000, 10 * E18, 9_000 * E6, 8_000 * E18)
    with pytest.raises(LiquidationReverted):
        liquidate(reserves, WETH, USDC, MAX_UINT, TERMS, rules="3.3")
    best = max_debt_to_cover(reserves, WETH, USDC, TERMS, rules="3.3")
    assert best == 8_000 * E6
    assert liquidate(reserves, WETH, USDC, best, TERMS, rules="3.3").debt_repaid == best
    with pytest.raises(LiquidationReverted):
        liquidate(reserves, WETH, USDC, best + 1, TERMS, rules="3.3")
    assert max_debt_to_cover(reserves, WETH, USDC, TERMS, rules="3.0") == 4_500 * E6


def test_emode_bonus_and_v30_price_source() -> None:
    reserves = [
        _reserve(WETH, 18, 2_000 * E8, supplied=10_000 * E18, category=1),
        _reserve(DAI, 18, E8, borrowed=9_600 * E18, category=1),
    ]
    emode = EModeCategory(1, 9_300, 9_500, price=E8 * 2)  # a category price of $2 for both assets
    out = liquidate(reserves, WETH, DAI, 1_000 * E18, TERMS, emode=emode, emode_bonus_bps=10_100)
    assert (out.collateral_price, out.debt_price, out.liquidation_bonus_bps) == (2 * E8, 2 * E8, 10_100)
    assert out.collateral_to_liquidator + out.protocol_fee == 1_010 * E18
    with pytest.raises(LiquidationInputError):
        liquidate(reserves, WETH, DAI, E18, TERMS, rules="3.3", emode=emode, emode_bonus_bps=10_100)


def test_reverts_as_the_pool_does() -> None:
    healthy = _position(3_000, 10 * E18, 17_000 * E6)
    with pytest.raises(LiquidationReverted, match="45"):
        liquidate(healthy, WETH, USDC, MAX_UINT, TERMS)
    with pytest.raises(LiquidationReverted, match="46"):
        liquidate(_position(2_000, 10 * E18, 17_000 * E6), USDC, USDC, MAX_UINT, TERMS)
    with pytest.raises(LiquidationInputError):
        liquidate(healthy, DAI, USDC, MAX_UINT, TERMS)
    with pytest.raises(LiquidationInputError):
        liquidate(healthy, WETH, USDC, -1, TERMS)
    with pytest.raises(LiquidationInputError):
        liquidate(healthy, WETH, USDC, 1, TERMS, rules="3.9")  # type: ignore[arg-type]


def test_profit_after_slippage_and_gas() -> None:
    out = liquidate(_position(2_000, 10 * E18, 17_000 * E6), WETH, USDC, MAX_UINT, TERMS, rules="3.3")

    def quote(amount: int) -> int:  # $2,000 less 2 % slippage, in USDC units
        return amount * 2_000 * 98 // 100 // 10**12

    assert (
        liquidation_profit(out, quote, 20 * E6)
        == quote(out.collateral_to_liquidator) - out.debt_repaid - 20 * E6
    )
    assert worth_liquidating(out, quote, 20 * E6)
    assert not worth_liquidating(out, 8_510 * E6, 20 * E6)
    assert not worth_liquidating(out, quote, 20 * E6, min_profit=10_000 * E6)


def test_v33_small_reserve_debt_closes_fully() -> None:
    # HF 0.97 > 0.95, but the USDC debt is worth under $2,000: all of it may go (3.0: half of it).
    reserves = _position(2_000, 10 * E18, 1_500 * E6, 15_500 * E18)
    assert liquidate(reserves, WETH, USDC, MAX_UINT, TERMS, rules="3.3").debt_repaid == 1_500 * E6
    assert liquidate(reserves, WETH, USDC, MAX_UINT, TERMS, rules="3.0").debt_repaid == 750 * E6


def test_largest_amount_never_reverts_and_one_more_does_not_repay_more() -> None:
    rng = random.Random(7)
    checked = 0
    for _ in range(300):
        reserves = _position(
            rng.randint(900, 2_100),
            rng.randint(1, 20) * E18,
            rng.randint(500, 20_000) * E6,
            rng.randint(0, 9_000) * E18,
        )
        for rules in ("3.0", "3.3"):
            try:
                best = max_debt_to_cover(reserves, WETH, USDC, TERMS, rules=rules)
            except LiquidationReverted as exc:
                assert exc.code in {"45", "103"}
                continue
            repaid = liquidate(reserves, WETH, USDC, best, TERMS, rules=rules).debt_repaid
            try:
                more = liquidate(reserves, WETH, USDC, best + 1, TERMS, rules=rules).debt_repaid
            except LiquidationReverted as exc:
                assert exc.code == "103"
            else:
                assert more == repaid
            checked += 1
    assert checked > 200
