"""Morpho Blue markets in the exact cascade, beside Aave's, on one WETH/USDC pool and one WETH feed.

The Aave book and the pool are tests/graph/test_cascade.py's (WETH $2,000 → $1,600; A at HF 0.98). The
Morpho market lends USDC against WETH at LLTV 86 %; its oracle is the ratio of the WETH and USDC feeds.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph.cascade import CascadeInputError, MorphoBook, OracleModel, run_cascade
from graph.cascade_screen import MorphoScreen
from graph.morpho import (
    MorphoMarket,
    MorphoPosition,
    accrue_interest,
    is_healthy,
    liquidate_max,
    oracle_price,
    scale_factor,
)
from tests.graph.test_cascade import (
    CRASH,
    E6,
    E8,
    E18,
    KEY,
    USDC,
    USER_A,
    USER_B,
    WETH,
    _market,
    _oracles,
    _pool,
)

MORPHO_ID = "0x" + "ab" * 32
CAROL, DAVE = "0x" + "cc" * 20, "0x" + "dd" * 20
SCALE = scale_factor(18, 6)


def _morpho(positions: dict[str, tuple[int, int]]) -> MorphoBook:
    """Positions as (WETH collateral, USDC debt) in whole units; shares at 1e6 per asset."""
    borrowed = sum(debt for _, debt in positions.values()) * E6
    state = MorphoMarket(
        MORPHO_ID, USDC, WETH, 86 * 10**16, 6, 18,
        total_supply_assets=10 * borrowed, total_supply_shares=10 * borrowed * E6,
        total_borrow_assets=borrowed, total_borrow_shares=borrowed * E6,
    )  # fmt: skip
    book = {
        user: MorphoPosition(borrow_shares=debt * E6 * E6, collateral=weth * E18)
        for user, (weth, debt) in positions.items()
    }
    return MorphoBook(state, book, SCALE)


def _price(usd: int) -> int:
    return oracle_price(SCALE, usd, E8)


# At $1,600 and 10 WETH, max borrow is 13,760: Carol owes 13,900 (liquidated at once), Dave 13,700 (not
# until the feed falls below ~$1,593).
BOOK = {CAROL: (10, 13_900), DAVE: (10, 13_700)}


def test_a_morpho_liquidation_is_the_contracts_at_the_shocked_oracle_price() -> None:
    book = _morpho(BOOK)
    result = run_cascade([book], {KEY: _pool()}, _oracles("fixed"), CRASH)
    assert result.depth == 1
    [done] = result.rounds[0].liquidations
    expected = liquidate_max(book.market, book.positions[CAROL], _price(1_600 * E8))
    assert (done.protocol, done.market, done.user) == ("morpho_blue", MORPHO_ID, CAROL)
    assert (done.collateral_asset, done.debt_asset) == (WETH, USDC)
    assert (done.debt_repaid, done.collateral_seized) == (expected.repaid_assets, expected.seized_assets)
    assert done.debt_repaid == 13_900 * E6 and done.protocol_fee == 0  # every share: no close factor
    assert done.debt_repaid_usd == 13_900 * E8
    assert result.morpho[MORPHO_ID].positions[CAROL] == expected.position
    assert result.morpho[MORPHO_ID].market == expected.market
    assert result.rounds[0].sold == {(KEY, WETH): expected.seized_assets}
    assert result.bad_debt == {} and result.protocols == {MORPHO_ID: "morpho_blue"}


def test_aave_sales_move_the_feed_under_a_morpho_position() -> None:
    """Round 1: Aave's A and Morpho's Carol; their sales pull the pool and the WETH feed down, and round 2
    takes Aave's B and Morpho's Dave: the shock cascades across the protocols through the pool."""
    alone = run_cascade([_market()], {KEY: _pool()}, _oracles(), CRASH)
    assert [[(x.protocol, x.user) for x in r.liquidations] for r in alone.rounds] == [
        [("aave_v3", USER_A)],
        [("aave_v3", USER_B)],
    ]
    result = run_cascade([_market(), _morpho(BOOK)], {KEY: _pool()}, _oracles(), CRASH)
    rounds = [[(x.protocol, x.user) for x in r.liquidations] for r in result.rounds]
    # Largest debt first across protocols: Carol's 13,900 USDC before A's 13,469.
    assert rounds[0] == [("morpho_blue", CAROL), ("aave_v3", USER_A)]
    assert ("morpho_blue", DAVE) in rounds[1]
    feed = result.rounds[0].oracle_prices[WETH]
    assert not is_healthy(_morpho(BOOK).market, _morpho(BOOK).positions[DAVE], _price(feed))
    # The shock alone does not reach Dave: only the sales of round 1 do.
    only = run_cascade([_morpho({DAVE: (10, 13_700)})], {KEY: _pool()}, _oracles(), CRASH)
    assert only.depth == 0


def test_morpho_bad_debt_is_realised_when_the_collateral_runs_out() -> None:
    # 1 WETH against 2,000 USDC at $1,500: all the collateral goes for 1,500 / LIF; the rest is bad debt.
    book = _morpho({CAROL: (1, 2_000)})
    result = run_cascade([book], {KEY: _pool()}, _oracles("fixed"), {WETH: Fraction(3, 4)})
    [done] = result.rounds[0].liquidations
    expected = liquidate_max(book.market, book.positions[CAROL], _price(1_500 * E8))
    assert done.collateral_seized == E18 and expected.bad_debt_assets > 0
    assert done.deficits == ((USDC, expected.bad_debt_assets),)
    assert result.bad_debt == {(MORPHO_ID, USDC): expected.bad_debt_assets}
    assert result.bad_debt_by_protocol() == {("morpho_blue", USDC): expected.bad_debt_assets}
    assert result.morpho[MORPHO_ID].positions[CAROL] == MorphoPosition()
    assert result.morpho[MORPHO_ID].market.total_supply_assets == book.market.total_supply_assets - (
        expected.bad_debt_assets
    )


def test_gas_and_a_missing_pool_leave_a_morpho_position_alone() -> None:
    book = _morpho(BOOK)
    costly = run_cascade([book], {KEY: _pool()}, _oracles("fixed"), CRASH, gas_cost_usd=10**6 * E8)
    assert costly.depth == 0
    other = replace(book, market=replace(book.market, collateral_token="0x" + "33" * 20))
    oracles = {**_oracles("fixed"), "0x" + "33" * 20: OracleModel(1_600 * E8)}
    assert run_cascade([other], {KEY: _pool()}, oracles, CRASH).depth == 0


def test_interest_accrues_once_up_to_the_books_timestamp() -> None:
    rate = 3 * 10**9  # about 10 % a year per second
    book = replace(_morpho(BOOK), borrow_rate=rate, timestamp=86_400)
    result = run_cascade([book], {KEY: _pool()}, _oracles("fixed"), CRASH)
    accrued, _ = accrue_interest(book.market, rate, 86_400)
    [done] = result.rounds[0].liquidations
    assert done.debt_repaid == liquidate_max(accrued, book.positions[CAROL], _price(1_600 * E8)).repaid_assets
    assert done.debt_repaid > 13_900 * E6


def test_inputs_that_do_not_fit_are_refused() -> None:
    book = _morpho(BOOK)
    with pytest.raises(CascadeInputError, match="given twice"):
        run_cascade([book, book], {KEY: _pool()}, _oracles(), CRASH)
    with pytest.raises(CascadeInputError, match="scale factor"):
        run_cascade([replace(book, scale_factor=0)], {KEY: _pool()}, _oracles(), CRASH)
    with pytest.raises(CascadeInputError, match="no oracle"):
        run_cascade([book], {KEY: _pool()}, {USDC: OracleModel(E8)}, {})


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10**24), st.integers(1, 10**30)), min_size=1, max_size=30),
    st.integers(1, 10**40),
    st.integers(1, 10**18 - 1),
    st.integers(1, 10**30),
)
def test_the_screen_keeps_every_unhealthy_position(
    held: list[tuple[int, int]], price: int, lltv: int, assets: int
) -> None:
    """Every position that the exact health check finds unhealthy is a candidate, at any share price."""
    positions = {
        f"0x{i:040x}": MorphoPosition(borrow_shares=s, collateral=c) for i, (c, s) in enumerate(held)
    }
    shares = sum(p.borrow_shares for p in positions.values())
    market = replace(_morpho({}).market, lltv=lltv, total_borrow_assets=assets, total_borrow_shares=shares)
    screen = MorphoScreen({market.id: positions})
    unhealthy = {u for u, p in positions.items() if not is_healthy(market, p, price)}
    assert unhealthy <= set(screen.candidates(market, price))


def test_the_screened_cascade_liquidates_exactly_the_unhealthy_positions() -> None:
    # 40 positions either side of the line (max borrow 13,760 at $1,600), a pool deep enough for every sale.
    book = _morpho({f"0x{i:040x}": (10, 13_600 + 10 * i) for i in range(40)})
    result = run_cascade([book], {KEY: _pool(weth_per_side=100_000)}, _oracles("fixed"), CRASH)
    unhealthy = {u for u, p in book.positions.items() if not is_healthy(book.market, p, _price(1_600 * E8))}
    assert len(unhealthy) == 23  # 13,600 + 10·i > 13,760 from i = 17 on
    assert [x.user for x in result.rounds[0].liquidations] == sorted(
        unhealthy, reverse=True
    )  # largest debt first
