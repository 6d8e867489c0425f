"""A small synthetic book for contagion runs: two Aave v3.0 markets of WETH-collateral USDC borrowers and one
Uniswap v3 WETH/USDC pool with a Chainlink-style WETH feed, so the real cascade liquidates, sells, moves the
feed and leaves bad debt in the tail of drawn scenarios (WETH at 10% a day)."""

from __future__ import annotations

import math
from typing import Any

from chainrisk.contagion.inputs import Inputs
from chainrisk.contagion.var import Outcome, scenario_outcomes
from graph.cascade import LendingMarket, OracleModel
from graph.liquidation import ReserveTerms
from graph.univ3 import tick_at_sqrt_ratio
from graph.univ3_pool import Pool
from indexer.protocols.aave_math import RAY, UserReserve

CHAIN, BLOCK = 31337, 4_242
WETH, USDC = "0x" + "11" * 20, "0x" + "22" * 20  # WETH sorts first: the pool's token0
MARKETS = ("0x" + "a1" * 20, "0x" + "b2" * 20)
E6, E8, E18 = 10**6, 10**8, 10**18
TERMS = {WETH: ReserveTerms(10_500, 1_000), USDC: ReserveTerms(10_450, 1_000)}
WALLETS = 10  # per market


def wallet(market: int, i: int) -> str:
    return f"0x{market:02x}{i:038x}"


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


def _market(index: int) -> LendingMarket:
    """Borrowers at health factors from 1.02 upwards, with 1 to 12 WETH each at $2,000."""
    positions = {}
    for i in range(WALLETS):
        weth = 1 + (i * 5 + index) % 12
        health = 1.03 + 0.04 * i
        usdc = int(weth * 2_000 * 0.825 / health)
        positions[wallet(index, i)] = (
            _reserve(WETH, 18, supplied=weth * E18),
            _reserve(USDC, 6, borrowed=usdc * E6),
        )
    return LendingMarket(MARKETS[index], "3.0", positions, TERMS)


def _pool(weth_per_side: int = 2_000) -> Pool:
    sqrt_price = math.isqrt(2_000 * E6 * 2**192 // E18)
    pool = Pool(fee=3_000, tick_spacing=60, sqrt_price=sqrt_price, tick=tick_at_sqrt_ratio(sqrt_price))
    pool.update_position(-887_220, 887_220, weth_per_side * E18 * sqrt_price >> 96)
    return pool


def book() -> Inputs:
    oracles = {WETH: OracleModel(2_000 * E8, "feed", USDC, 50, 3_600), USDC: OracleModel(E8)}
    return Inputs(
        chain_id=CHAIN,
        block=BLOCK,
        markets=(_market(0), _market(1)),
        labels={MARKETS[0]: "Book A"},
        pools={(WETH, USDC): _pool()},
        pool_addresses={(WETH, USDC): "0x" + "cc" * 20},
        oracles=oracles,
        symbols={WETH: "WETH", USDC: "USDC"},
        decimals={WETH: 18, USDC: 6},
    )


def factors(scenarios: int, seed: int) -> tuple[list[str], Any]:
    """Seeded one-day WETH price factors: Student-t (4 degrees of freedom), 10% daily volatility."""
    import numpy as np

    from graph.tail import student_t_scenarios

    drawn = student_t_scenarios(np.eye(1), [0.10], df=4, n=scenarios, rng=np.random.default_rng(seed))
    return [WETH], drawn.factors


def drawn(inputs: Inputs, scenarios: int, seed: int) -> tuple[list[str], Any, list[Outcome]]:
    """(assets, factors, outcomes) of a seeded run, in process."""
    assets, drawn_factors = factors(scenarios, seed)
    return assets, drawn_factors, scenario_outcomes(inputs, assets, drawn_factors)
