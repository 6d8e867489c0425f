"""The liquidation cascade on synthetic books: a WETH/USDC market and one Uniswap v3 WETH/USDC pool.

Positions use LT 82.5 %, bonus 5 % (WETH) and a 10 % protocol fee on the bonus, as the liquidation
vectors do; the pool holds full-range liquidity at $2,000 (1,000 WETH a side unless said otherwise).
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import pytest

from graph.cascade import (
    CascadeInputError,
    CascadeResult,
    LendingMarket,
    OracleModel,
    PoolKey,
    market_from_state,
    run_cascade,
)
from graph.errors import GraphError
from graph.liquidation import ReserveTerms, Rules, liquidate, max_debt_to_cover
from graph.univ3 import tick_at_sqrt_ratio
from graph.univ3_pool import Pool
from indexer.lending.positions import Balance, MarketState, ReserveConfig, ReserveState, ReserveTokens
from indexer.protocols.aave_math import RAY, UserReserve

WETH, USDC = "0x" + "11" * 20, "0x" + "22" * 20  # WETH sorts first: the pool's token0
E6, E8, E18 = 10**6, 10**8, 10**18
TERMS = {WETH: ReserveTerms(10_500, 1_000), USDC: ReserveTerms(10_450, 1_000)}
KEY: PoolKey = (WETH, USDC)
CRASH = {WETH: Fraction(4, 5)}  # WETH $2,000 → $1,600
# At $1,600 and 10 WETH: A at HF 0.98 (liquidated at once), B at HF 1.005 (only if the oracle follows).
USER_A, USER_B = "0x" + "aa" * 20, "0x" + "bb" * 20


def _pool(weth_per_side: int = 1_000, usd: int = 2_000) -> Pool:
    sqrt_price = math.isqrt(usd * E6 * 2**192 // E18)
    pool = Pool(fee=3_000, tick_spacing=60, sqrt_price=sqrt_price, tick=tick_at_sqrt_ratio(sqrt_price))
    # Full range: liquidity = token0 reserve × sqrt(price).
    pool.update_position(-887_220, 887_220, weth_per_side * E18 * sqrt_price >> 96)
    return pool


def _reserve(asset: str, decimals: int, supplied: int = 0, borrowed: int = 0) -> UserReserve:
    return UserReserve(
        asset=asset,
        decimals=decimals,
        price=1,  # replaced by the oracle's
        scaled_atoken_balance=supplied,
        scaled_vdebt_balance=borrowed,
        liquidity_index=RAY,
        variable_borrow_index=RAY,
        liquidity_rate=0,
        variable_borrow_rate=0,
        last_update_timestamp=1_000,
        now_timestamp=1_000,
        ltv_bps=8_000,
        liquidation_threshold_bps=8_250,
        usage_as_collateral_enabled=supplied > 0,
    )


def _account(weth: int, usdc: int) -> tuple[UserReserve, ...]:
    return _reserve(WETH, 18, supplied=weth * E18), _reserve(USDC, 6, borrowed=usdc * E6)


def _market(rules: Rules = "3.0", **accounts: tuple[UserReserve, ...]) -> LendingMarket:
    positions = accounts or {USER_A: _account(10, 13_469), USER_B: _account(10, 13_134)}
    return LendingMarket("aave", rules, positions, TERMS)


def _oracles(kind: str = "feed", deviation_bps: int = 50, heartbeat_s: int = 3_600) -> dict[str, OracleModel]:
    weth = (
        OracleModel(2_000 * E8, "feed", USDC, deviation_bps, heartbeat_s)
        if kind == "feed"
        else OracleModel(2_000 * E8)
    )
    return {WETH: weth, USDC: OracleModel(E8)}


def _run(
    market: LendingMarket | None = None,
    pool: Pool | None = None,
    oracles: dict[str, OracleModel] | None = None,
    shock: dict[str, Fraction] | None = None,
    **options: int,
) -> CascadeResult:
    return run_cascade(
        [market or _market()],
        {KEY: pool or _pool()},
        oracles or _oracles(),
        CRASH if shock is None else shock,
        **options,
    )


def test_a_shock_with_no_liquidatable_account_has_depth_zero() -> None:
    result = _run(shock={WETH: Fraction(99, 100)})
    assert result.depth == 0 and result.rounds == () and result.bad_debt == {}
    assert result.oracle_prices == {WETH: 1_980 * E8, USDC: E8}
    assert result.pool_prices[KEY] < _pool().sqrt_price  # the arbitrage followed the shock


def test_a_single_liquidation_equals_the_liquidation_maths() -> None:
    result = _run(oracles=_oracles("fixed"))
    assert result.depth == 1
    [done] = result.rounds[0].liquidations
    weth, usdc = _account(10, 13_469)
    priced = [replace(weth, price=1_600 * E8), replace(usdc, price=E8)]
    amount = max_debt_to_cover(priced, WETH, USDC, TERMS, rules="3.0")
    expected = liquidate(priced, WETH, USDC, amount, TERMS, rules="3.0")
    assert (done.market, done.user, done.collateral_asset, done.debt_asset) == ("aave", USER_A, WETH, USDC)
    assert done.debt_repaid == expected.debt_repaid == 6_734_500_000
    assert done.collateral_seized == expected.collateral_to_liquidator
    assert done.protocol_fee == expected.protocol_fee
    assert done.debt_repaid_usd == 6_734_500_000 * E8 // E6
    seized = expected.collateral_to_liquidator + expected.protocol_fee
    assert done.collateral_seized_usd == seized * 1_600 * E8 // E18
    assert done.proceeds > done.debt_repaid  # worth it: the sale beat the repaid debt


def test_the_second_round_comes_from_the_sale_moving_the_pool_and_the_feed() -> None:
    result = _run()
    assert result.depth == 2
    assert [[d.user for d in r.liquidations] for r in result.rounds] == [[USER_A], [USER_B]]
    # The first sale moved the pool by more than the 50 bps threshold, and the feed followed it.
    assert result.rounds[0].oracle_prices[WETH] < 1_600 * E8 * 9_950 // 10_000


@pytest.mark.parametrize(
    ("oracles", "pool"),
    [(_oracles("fixed"), _pool()), (_oracles("feed"), _pool(weth_per_side=100_000))],
    ids=["fixed-oracle", "deep-pool"],
)
def test_no_second_round_without_a_moving_oracle(oracles: dict[str, OracleModel], pool: Pool) -> None:
    result = _run(pool=pool, oracles=oracles)
    assert result.depth == 1
    assert [d.user for d in result.rounds[0].liquidations] == [USER_A]


def test_the_heartbeat_updates_a_feed_under_its_threshold() -> None:
    wide = _run(oracles=_oracles(deviation_bps=5_000))
    assert wide.depth == 1
    beating = _run(oracles=_oracles(deviation_bps=5_000, heartbeat_s=12), round_seconds=12)
    assert beating.depth == 2


def test_collateral_seized_is_sold_and_debt_repaid_reduces_debt_exactly() -> None:
    market = _market()
    result = _run(market)
    done = [d for r in result.rounds for d in r.liquidations]
    for round_ in result.rounds:
        assert round_.sold == {(KEY, WETH): sum(d.collateral_seized for d in round_.liquidations)}
    for user, reserves in market.positions.items():
        repaid = sum(d.debt_repaid for d in done if d.user == user)
        taken = sum(d.collateral_seized + d.protocol_fee for d in done if d.user == user)
        weth, usdc = result.positions["aave"][user]
        assert usdc.scaled_vdebt_balance == reserves[1].scaled_vdebt_balance - repaid
        assert weth.scaled_atoken_balance == reserves[0].scaled_atoken_balance - taken


def test_same_inputs_give_the_same_outputs_and_inputs_stay_unchanged() -> None:
    pool, oracles, market = _pool(), _oracles(), _market()
    before = pool.sqrt_price
    first = run_cascade([market], {KEY: pool}, oracles, CRASH)
    second = run_cascade([market], {KEY: pool}, oracles, CRASH)
    assert first == second
    assert first.depth == 2 and first.rounds == second.rounds and first.pool_prices == second.pool_prices
    assert pool.sqrt_price == before  # the engine worked on a copy


# 1 WETH against 2,000 USDC at $1,500: the liquidation takes all the collateral for 1,428.571429 USDC.
_UNDERWATER = {USER_A: _account(1, 2_000)}


def test_bad_debt_is_the_3_3_deficit_when_the_collateral_runs_out() -> None:
    result = _run(_market("3.3", **_UNDERWATER), shock={WETH: Fraction(3, 4)})
    [done] = result.rounds[0].liquidations
    assert done.debt_repaid == 1_428_571_429
    assert done.collateral_seized == 995_238_095_238_095_238
    assert done.deficits == ((USDC, 571_428_571),)
    assert result.bad_debt == {("aave", USDC): 571_428_571}
    assert result.positions["aave"][USER_A][1].scaled_vdebt_balance == 0


def test_bad_debt_is_the_debt_left_without_collateral_under_3_0() -> None:
    result = _run(_market("3.0", **_UNDERWATER), shock={WETH: Fraction(3, 4)})
    [done] = result.rounds[0].liquidations
    assert done.deficits == ()
    assert result.positions["aave"][USER_A][0].scaled_atoken_balance == 0
    assert result.bad_debt == {("aave", USDC): 2_000 * E6 - done.debt_repaid}


def test_gas_can_make_a_liquidation_not_worth_it() -> None:
    assert _run(oracles=_oracles("fixed"), gas_cost_usd=1_000_000 * E8).depth == 0


def test_inputs_that_do_not_fit_raise_a_graph_error() -> None:
    no_pool = {WETH: OracleModel(2_000 * E8, "feed", USDC), USDC: OracleModel(E8)}
    with pytest.raises(CascadeInputError):
        run_cascade([_market()], {}, no_pool, CRASH)
    with pytest.raises(GraphError):
        _run(shock={WETH: Fraction(-1)})
    with pytest.raises(CascadeInputError):
        run_cascade([_market()], {KEY: _pool()}, {WETH: OracleModel(2_000 * E8)}, CRASH)


def test_a_market_from_an_indexed_state_runs_as_the_same_book() -> None:
    state = MarketState(
        chain_id=1,
        pool="0x" + "99" * 20,
        block=1,
        timestamp=1_000,
        reserves={a: ReserveTokens(a, a, a) for a in (WETH, USDC)},
        decimals={WETH: 18, USDC: 6},
        states={
            WETH: ReserveState(last_update_timestamp=1_000),
            USDC: ReserveState(last_update_timestamp=1_000),
        },
        configs={WETH: ReserveConfig(8_000, 8_250, 10_500), USDC: ReserveConfig(8_000, 8_250, 10_450)},
        emode_categories={},
        prices={WETH: 2_000 * E8, USDC: E8},
        balances={
            USER_A: {WETH: Balance(scaled_atoken=10 * E18), USDC: Balance(scaled_vdebt=13_469 * E6)},
            USER_B: {WETH: Balance(scaled_atoken=10 * E18), USDC: Balance(scaled_vdebt=13_134 * E6)},
        },
        collateral={USER_A: {WETH: True}, USER_B: {WETH: True}},
    )
    market = market_from_state("aave", state, rules="3.0", protocol_fees={WETH: 1_000, USDC: 1_000})
    assert market.terms == TERMS
    assert _run(market).rounds == _run().rounds
