"""Morpho Blue in the vectorised cascade against the exact one: the same liquidations and bad debt on
tests/graph/test_cascade_morpho.py's books, and, over drawn scenarios on books holding both protocols
(tests/contagion_book.py's with a Morpho market beside it; the devnet-like book with three Morpho markets),
the same depths and the bad debt and liquidated value within the stated tolerances."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from chainrisk.bench.cascade import address, devnet_book, scenarios
from chainrisk.contagion import runs
from chainrisk.contagion.inputs import Inputs
from chainrisk.contagion.var import scenario_outcomes
from graph.cascade import CascadeResult, LendingMarket, MorphoBook, OracleModel, PoolKey, run_cascade
from graph.fastcascade import FastCascade, FastOutcomes
from graph.morpho import (
    MorphoMarket,
    MorphoPosition,
    accrue_interest,
    is_healthy,
    liquidate_max,
    oracle_price,
    scale_factor,
)
from graph.univ3_pool import Pool
from tests import contagion_book
from tests.graph.test_cascade import CRASH, E6, E8, KEY, USDC, USER_A, USER_B, WETH, _market, _oracles, _pool
from tests.graph.test_cascade_morpho import BOOK, CAROL, DAVE, MORPHO_ID, SCALE, _morpho

# One liquidation through the same maths in floats: the exact path rounds shares and the oracle's price.
AMOUNT_TOLERANCE = 1e-6
# Measured on the mixed books below. Small book (40 scenarios): summed bad debt +0.28 % (Morpho's -0.07 %),
# liquidated value -0.005 %, every depth equal. Devnet-like book with three Morpho markets (30 scenarios of
# three bad days): bad debt -0.67 % (Morpho's -0.77 %), liquidated value -0.41 %, 26 depths of 30 equal.
# Where they differ, Morpho's thin incentive (LIF 1.044 at LLTV 86 %) has sold the pool down to just
# above where Aave's 5 % bonus stops paying, and the fitted curve's error decides a sale a round apart.
# The bounds leave room for the fitted curves' error (up to 1 % at a range's edge).
LIQUIDATED_TOLERANCE = 0.01
BAD_DEBT_TOLERANCE = 0.05
DEVNET_DEPTHS_EQUAL = 0.85


def _fast(markets, oracles=None, pools=None) -> FastCascade:
    return FastCascade.build(markets, pools or {KEY: _pool()}, oracles or _oracles())


def test_a_morpho_liquidation_repays_every_share_as_liquidate_max() -> None:
    book = _morpho(BOOK)
    outcomes = _fast([book], _oracles("fixed")).run([WETH], np.array([[0.8]]))
    expected = liquidate_max(book.market, book.positions[CAROL], oracle_price(SCALE, 1_600 * E8, E8))
    assert outcomes.depth.tolist() == [1]
    assert outcomes.liquidated_in_round(0, 1) == [(MORPHO_ID, CAROL)]
    assert abs(outcomes.liquidated_usd[0] / (expected.repaid_assets / E6) - 1) < AMOUNT_TOLERANCE
    assert outcomes.bad_debt_usd.tolist() == [0.0]


def test_the_cascade_crosses_the_protocols_round_by_round_as_the_exact_one() -> None:
    markets: list[LendingMarket | MorphoBook] = [_market(), _morpho(BOOK)]
    outcomes = _fast(markets).run([WETH], np.array([[0.8]]))
    exact = run_cascade(markets, {KEY: _pool()}, _oracles(), CRASH)
    assert outcomes.depth.tolist() == [exact.depth] == [2]
    assert outcomes.liquidated_in_round(0, 1) == [(MORPHO_ID, CAROL), ("aave", USER_A)]
    assert outcomes.liquidated_in_round(0, 2) == [(MORPHO_ID, DAVE), ("aave", USER_B)]
    repaid = sum(x.debt_repaid_usd for r in exact.rounds for x in r.liquidations) / E8
    assert abs(outcomes.liquidated_usd[0] / repaid - 1) < AMOUNT_TOLERANCE
    # Dave alone is not reached by the shock: only the sales of round 1 (Aave's among them) reach him.
    alone = _fast([_morpho({DAVE: (10, 13_700)})]).run([WETH], np.array([[0.8]]))
    assert alone.depth.tolist() == [0]


def test_morpho_bad_debt_is_realised_when_the_collateral_runs_out() -> None:
    book = _morpho({CAROL: (1, 2_000)})
    outcomes = _fast([_market(), book], _oracles("fixed")).run([WETH], np.array([[0.75]]))
    exact = run_cascade([_market(), book], {KEY: _pool()}, _oracles("fixed"), {WETH: Fraction(3, 4)})
    owed = exact.bad_debt[(MORPHO_ID, USDC)] / E6
    m, a = outcomes.markets.index(MORPHO_ID), outcomes.assets.index(USDC)
    assert abs(outcomes.bad_debt_by_market_asset[0, m, a] / owed - 1) < AMOUNT_TOLERANCE
    assert abs(outcomes.bad_debt_usd[0] / (sum(exact.bad_debt.values()) / E6) - 1) < AMOUNT_TOLERANCE


def test_a_scale_off_the_decimals_moves_health_and_seizure_as_the_oracle_does() -> None:
    # Half the scale: the oracle prices WETH at half its feed, so both positions are liquidatable before
    # any shock, all their collateral goes at that price and the rest is bad debt.
    book = _morpho(BOOK)
    halved = MorphoBook(book.market, book.positions, SCALE // 2)
    assert _fast([book], _oracles("fixed")).run([WETH], np.array([[0.99]])).depth.tolist() == [0]
    exact = run_cascade([halved], {KEY: _pool()}, _oracles("fixed"), {WETH: Fraction(99, 100)})
    outcomes = _fast([halved], _oracles("fixed")).run([WETH], np.array([[0.99]]))
    assert outcomes.depth.tolist() == [exact.depth] == [1]
    assert outcomes.liquidated_in_round(0, 1) == [(MORPHO_ID, CAROL), (MORPHO_ID, DAVE)]
    repaid = sum(x.debt_repaid_usd for r in exact.rounds for x in r.liquidations) / E8
    assert abs(outcomes.liquidated_usd[0] / repaid - 1) < AMOUNT_TOLERANCE
    owed = exact.bad_debt[(MORPHO_ID, USDC)] / E6
    assert owed > 0 and abs(outcomes.bad_debt_usd[0] / owed - 1) < AMOUNT_TOLERANCE


def test_an_empty_morpho_book_changes_nothing() -> None:
    empty = MorphoBook(_morpho(BOOK).market, {}, SCALE)
    with_empty = _fast([_market(), empty]).run([WETH], np.array([[0.8], [0.95]]))
    alone = _fast([_market()]).run([WETH], np.array([[0.8], [0.95]]))
    assert with_empty.depth.tolist() == alone.depth.tolist() == [2, 0]
    assert np.allclose(with_empty.liquidated_usd, alone.liquidated_usd)


# ------------------------------------------------------------------------------------------- mixed books


def morpho_book(
    market_id: str,
    tokens: tuple[str, str],
    decimals: tuple[int, int],
    prices: tuple[int, int],
    positions: int,
    seed: int,
) -> MorphoBook:
    """``positions`` borrowers of ``loan`` against ``collateral`` (tokens, decimals and USD prices in that
    order) at LLTV 86 %, health 1.0 to 1.5 at ``prices``; shares at 1e6 per asset, a day of interest
    to accrue at about 10 % a year."""
    (collateral, loan), (c_dec, l_dec), (c_price, l_price) = tokens, decimals, prices
    rng = np.random.default_rng(seed)
    lltv = 86 * 10**16
    book = {}
    for i in range(positions):
        held = int(rng.lognormal(0.0, 1.0) * 20_000 * E8 // c_price * 10**c_dec)  # about $20,000
        health = 1.0 + 0.5 * float(rng.random())
        owed = int(held * c_price / l_price / 10**c_dec * 0.86 / health * 10**l_dec)
        book[f"0x{seed:04x}{i:036x}"] = MorphoPosition(borrow_shares=owed * 10**6, collateral=held)
    borrowed = sum(p.borrow_shares for p in book.values()) // 10**6
    market = MorphoMarket(
        market_id, loan, collateral, lltv, l_dec, c_dec,
        total_supply_assets=2 * borrowed, total_supply_shares=2 * borrowed * 10**6,
        total_borrow_assets=borrowed, total_borrow_shares=borrowed * 10**6,
    )  # fmt: skip
    return MorphoBook(market, book, scale_factor(c_dec, l_dec), borrow_rate=3 * 10**9, timestamp=86_400)


Mixed = tuple[list[str], np.ndarray, FastOutcomes, list[CascadeResult]]


def _compare(
    markets: list[LendingMarket | MorphoBook],
    pools: dict[PoolKey, Pool],
    oracles: dict[str, OracleModel],
    assets: list[str],
    factors: np.ndarray,
) -> Mixed:
    outcomes = FastCascade.build(markets, pools, oracles, memory_bytes=2**20).run(assets, factors)
    exact = []
    for row in factors:
        shock = {a: Fraction(float(f)).limit_denominator(10**12) for a, f in zip(assets, row, strict=True)}
        exact.append(run_cascade(markets, pools, oracles, shock))
    return assets, factors, outcomes, exact


@pytest.fixture(scope="module")
def small() -> Mixed:
    """tests/contagion_book.py's two Aave markets and a Morpho market on its WETH/USDC pool."""
    inputs = contagion_book.book()
    weth, usdc = contagion_book.WETH, contagion_book.USDC
    morpho = morpho_book("0x" + "ab" * 32, (weth, usdc), (18, 6), (2_000 * E8, E8), 20, seed=1)
    assets, factors = contagion_book.factors(40, seed=5)
    return _compare([*inputs.markets, morpho], dict(inputs.pools), dict(inputs.oracles), assets, factors)


@pytest.fixture(scope="module")
def devnet() -> Mixed:
    """The devnet-like book (1,000 lines, both Aave markets) with Morpho markets of WETH, WBTC and wstETH."""
    book = devnet_book(1_000, seed=3)
    weth, wbtc, steth, usdc = (address(s) for s in ("WETH", "WBTC", "wstETH", "USDC"))
    morpho = [
        morpho_book("0x" + "a1" * 32, (weth, usdc), (18, 6), (3_000 * E8, E8), 80, seed=2),
        morpho_book("0x" + "b2" * 32, (wbtc, usdc), (8, 6), (60_000 * E8, E8), 40, seed=3),
        morpho_book("0x" + "c3" * 32, (steth, weth), (18, 18), (3_500 * E8, 3_000 * E8), 40, seed=4),
    ]
    assets, factors = scenarios(30, seed=3)
    factors = factors**3  # three bad days at once: deep enough for cascades and bad debt
    return _compare([*book.markets, *morpho], book.pools, book.oracles, assets, factors)


def _exact_usd(exact: list[CascadeResult], decimals: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    bad = np.array(
        [
            sum(v * r.oracle_prices[a] / 10 ** decimals[a] / E8 for (_, a), v in r.bad_debt.items())
            for r in exact
        ]
    )
    liquidated = np.array(
        [sum(x.debt_repaid_usd for d in r.rounds for x in d.liquidations) / E8 for r in exact]
    )
    return bad, liquidated


def _errors(mixed: Mixed) -> dict[str, float]:
    _, _, outcomes, exact = mixed
    decimals = {a: 0 for a in outcomes.assets}
    for r in exact:
        for users in r.positions.values():
            for reserves in users.values():
                decimals |= {x.asset: x.decimals for x in reserves}
        for book in r.morpho.values():
            decimals[book.market.loan_token] = book.market.loan_decimals
    bad, liquidated = _exact_usd(exact, decimals)
    protocols = {name: p for r in exact for name, p in r.protocols.items()}
    morpho = [m for m, name in enumerate(outcomes.markets) if protocols.get(name) == "morpho_blue"]
    exact_morpho = sum(
        v * r.oracle_prices[a] / 10 ** decimals[a] / E8
        for r in exact
        for (name, a), v in r.bad_debt.items()
        if r.protocols.get(name) == "morpho_blue"
    )
    return {
        "bad": float(outcomes.bad_debt_usd.sum() / bad.sum() - 1) if bad.sum() else 0.0,
        "liquidated": float(outcomes.liquidated_usd.sum() / liquidated.sum() - 1),
        "morpho_bad": float(outcomes.bad_debt_by_market[:, morpho].sum() / exact_morpho - 1)
        if exact_morpho
        else 0.0,
        "exact_bad": float(bad.sum()),
        "exact_morpho_bad": float(exact_morpho),
        "depth_equal": float((outcomes.depth == np.array([r.depth for r in exact])).mean()),
    }


def test_the_small_mixed_book_within_the_tolerances_every_depth_equal(small: Mixed) -> None:
    errors = _errors(small)
    assert errors["exact_bad"] > 0 and errors["exact_morpho_bad"] > 0
    assert abs(errors["bad"]) < BAD_DEBT_TOLERANCE and abs(errors["morpho_bad"]) < BAD_DEBT_TOLERANCE
    assert abs(errors["liquidated"]) < LIQUIDATED_TOLERANCE
    assert errors["depth_equal"] == 1.0


def test_the_devnet_mixed_book_within_the_tolerances(devnet: Mixed) -> None:
    _, _, outcomes, _ = devnet
    errors = _errors(devnet)
    assert errors["exact_bad"] > 0 and errors["exact_morpho_bad"] > 0
    assert abs(errors["bad"]) < BAD_DEBT_TOLERANCE and abs(errors["morpho_bad"]) < BAD_DEBT_TOLERANCE
    assert abs(errors["liquidated"]) < LIQUIDATED_TOLERANCE
    assert errors["depth_equal"] >= DEVNET_DEPTHS_EQUAL
    assert np.allclose(outcomes.bad_debt_by_market.sum(axis=1), outcomes.bad_debt_usd)


def test_the_first_round_takes_the_exact_accounts_of_both_protocols(small: Mixed) -> None:
    _, _, outcomes, exact = small
    protocols = set()
    for s, result in enumerate(exact):
        want = {(x.market, x.user) for x in result.rounds[0].liquidations} if result.rounds else set()
        assert set(outcomes.liquidated_in_round(s, 1)) == want
        protocols |= {x.protocol for x in result.rounds[0].liquidations} if result.rounds else set()
    assert protocols == {"aave_v3", "morpho_blue"}


# ------------------------------------------------------------------------------------------- contagion var


def _mixed_inputs() -> Inputs:
    morpho = morpho_book(
        "0x" + "ab" * 32, (contagion_book.WETH, contagion_book.USDC), (18, 6), (2_000 * E8, E8), 20, seed=1
    )
    return replace(contagion_book.book(), morpho=(morpho,))


def test_var_fast_with_every_scenario_replayed_equals_the_exact_engine_with_morpho() -> None:
    """`contagion var --engine fast --exact-worst N` (all N scenarios) on Aave and Morpho: every outcome
    is the exact engine's, Morpho's bad debt and liquidations included."""
    inputs = _mixed_inputs()
    assets, factors = contagion_book.factors(40, seed=5)
    exact = scenario_outcomes(inputs, assets, factors)
    assert sum(o.by_market.get("0x" + "ab" * 32, 0.0) for o in exact) > 0
    outcomes, error = runs._fast(inputs, assets, factors, 40, None, None)
    assert outcomes == exact
    assert error["exact_scenarios"] == 40
    assert error["bad_debt_max_error_of_worst"] < BAD_DEBT_TOLERANCE


def test_var_fast_ranks_the_scenarios_with_morphos_bad_debt() -> None:
    """Without replays the fast outcomes hold Morpho's bad debt per market, near the exact engine's."""
    inputs = _mixed_inputs()
    assets, factors = contagion_book.factors(40, seed=5)
    exact = scenario_outcomes(inputs, assets, factors)
    outcomes, _ = runs._fast(inputs, assets, factors, 0, None, None)
    morpho = "0x" + "ab" * 32
    fast_morpho = sum(o.by_market.get(morpho, 0.0) for o in outcomes)
    exact_morpho = sum(o.by_market.get(morpho, 0.0) for o in exact)
    assert exact_morpho > 0 and abs(fast_morpho / exact_morpho - 1) < BAD_DEBT_TOLERANCE
    worst = max(range(len(exact)), key=lambda i: exact[i].bad_debt)
    assert max(range(len(outcomes)), key=lambda i: outcomes[i].bad_debt) == worst


def test_the_curve_has_points_for_morpho_markets() -> None:
    """`contagion curve`: a Morpho market gets its points beside Aave's, first round and cascade."""
    from chainrisk.contagion.curve import curve

    inputs = _mixed_inputs()
    document = curve(inputs, [contagion_book.WETH], [Fraction(0), Fraction(20)])
    morpho = [p for p in document["points"] if p["market"] == "0x" + "ab" * 32]
    assert [p["drop_percent"] for p in morpho] == [0.0, 20.0]
    assert {p["protocol"] for p in document["points"]} == {"aave_v3", "morpho_blue"}
    calm, crash = morpho
    assert calm["first_round"]["accounts"] == 0 and crash["first_round"]["accounts"] > 0
    assert crash["first_round"]["debt_usd"] > 0 and crash["cascade"]["liquidations"] > 0
    # The first round is the exact health test at the ratio of the two shocked feeds.
    book = inputs.morpho[0]
    market, _ = accrue_interest(book.market, book.borrow_rate, book.timestamp)
    price = oracle_price(book.scale_factor, 1_600 * E8, E8)
    unhealthy = sum(not is_healthy(market, p, price) for p in book.positions.values())
    assert crash["first_round"]["accounts"] == unhealthy
