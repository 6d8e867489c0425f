"""The off-chain swap (graph.univ3_pool) against the devnet's QuoterV2 and its pools, to the wei.

Pool state comes from the chain through the pools' view functions; between rounds of quotes a real swap
moves each pool, so quotes start from many prices, and its outcome is checked against the port too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from devnet.aave import Deployment, deploy_markets
from devnet.anvil import Anvil
from devnet.uniswap import PoolState, Uniswap, deploy_uniswap
from graph.univ3_pool import Pool, SwapOutcome, TickInfo
from tests.devnet.fixtures import devnet_home  # noqa: F401

ROUNDS = 5
QUOTES_PER_ROUND = 50  # x 4 pools x 5 rounds = 1,000 quotes
EXACT_OUT_PER_POOL = 50


@pytest.fixture(scope="module")
def chain(devnet_home: Path) -> Iterator[tuple[Anvil, Deployment, Uniswap]]:  # noqa: F811
    with Anvil(devnet_home) as node:
        deployment = deploy_markets(node, devnet_home)
        yield node, deployment, deploy_uniswap(deployment, devnet_home, seed=3)


def offchain_pool(state: PoolState) -> Pool:
    """The port's pool from what the chain reports."""
    ticks = {tick: TickInfo(gross, net) for tick, (gross, net) in state.ticks.items()}
    return Pool(
        state.fee,
        state.tick_spacing,
        state.sqrt_price,
        state.tick,
        state.liquidity,
        ticks,
        dict(state.bitmap),
    )


def _random_swap(
    draw: random.Random, uniswap: Uniswap, name: str, pool: Pool
) -> tuple[str, str, bool, int, int]:
    """A random exact-input swap: 1e-6 to 1/2 of the pool's input-token balance, a price limit 1 in 4."""
    deployment = uniswap.deployment
    spec = uniswap.pools[name]
    zero_for_one = draw.random() < 0.5
    token_in, token_out = (spec.symbol0, spec.symbol1) if zero_for_one else (spec.symbol1, spec.symbol0)
    balance = int(deployment.token(token_in).call("balanceOf", spec.address))
    amount = max(1, int(balance * 10 ** draw.uniform(-6, -0.3)))
    limit = 0
    if draw.random() < 0.25:
        move = draw.randint(10, 2_000)  # basis points of sqrt price
        limit = pool.sqrt_price * (10_000 - move if zero_for_one else 10_000 + move) // 10_000
    return token_in, token_out, zero_for_one, amount, limit


def _out(outcome: SwapOutcome, zero_for_one: bool) -> int:
    return -(outcome.amount1 if zero_for_one else outcome.amount0)


def test_a_thousand_random_quotes_equal_quoter_v2(chain: tuple[Anvil, Deployment, Uniswap]) -> None:
    node, _, uniswap = chain
    trader = node.accounts()[6]
    draw = random.Random(11)
    compared, differences, crossing = 0, [], 0
    for _round in range(ROUNDS):
        for name in sorted(uniswap.pools):
            pool = offchain_pool(uniswap.pool_state(name))
            for _ in range(QUOTES_PER_ROUND):
                token_in, token_out, zero_for_one, amount, limit = _random_swap(draw, uniswap, name, pool)
                quote = uniswap.quote_exact_input(token_in, token_out, amount, limit)
                mine = pool.quote(zero_for_one, amount, limit)
                got = (_out(mine, zero_for_one), mine.sqrt_price, mine.ticks_crossed)
                if got != (quote.amount_out, quote.sqrt_price_after, quote.ticks_crossed):
                    differences.append((name, amount, limit, got, quote))
                compared += 1
                crossing += mine.ticks_crossed > 0
            _move(draw, uniswap, name, pool, trader)
    assert compared == 1_000
    assert differences == []
    assert crossing > 300  # the concentrated ranges are crossed, not just the full range


def test_random_exact_output_quotes_equal_quoter_v2(chain: tuple[Anvil, Deployment, Uniswap]) -> None:
    _, _, uniswap = chain
    draw = random.Random(12)
    differences, compared = [], 0
    for name in sorted(uniswap.pools):
        pool = offchain_pool(uniswap.pool_state(name))
        for _ in range(EXACT_OUT_PER_POOL):
            token_in, token_out, zero_for_one, amount, limit = _random_swap(draw, uniswap, name, pool)
            wanted = _in_output_token(pool, zero_for_one, max(1, amount // 3))
            quote = uniswap.quote_exact_output(token_in, token_out, wanted, limit)
            mine = pool.quote(zero_for_one, -wanted, limit)
            paid, got = (mine.amount0, -mine.amount1) if zero_for_one else (mine.amount1, -mine.amount0)
            # Without a limit the whole output comes; with one, the quoter reports only what it costs.
            if (paid, mine.sqrt_price, mine.ticks_crossed) != (
                quote.amount_in,
                quote.sqrt_price_after,
                quote.ticks_crossed,
            ) or (limit == 0 and got != wanted):
                differences.append((name, wanted, limit, mine, quote))
            compared += 1
    assert compared == 4 * EXACT_OUT_PER_POOL
    assert differences == []


def _in_output_token(pool: Pool, zero_for_one: bool, amount: int) -> int:
    """``amount`` of the input token in output-token units at the pool price (token1 per token0 = p^2)."""
    if zero_for_one:
        return max(1, amount * pool.sqrt_price // 2**96 * pool.sqrt_price // 2**96)
    return max(1, amount * 2**96 // pool.sqrt_price * 2**96 // pool.sqrt_price)


def _move(draw: random.Random, uniswap: Uniswap, name: str, pool: Pool, trader: str) -> None:
    """A real swap through the router; the pool's state after it equals the port's."""
    token_in, token_out, zero_for_one, amount, limit = _random_swap(draw, uniswap, name, pool)
    expected = pool.quote(zero_for_one, amount, limit)
    swap = uniswap.swap_exact_input(trader, token_in, token_out, amount, mint=True, sqrt_price_limit=limit)
    after = uniswap.pool_state(name)
    assert swap.amount_out == _out(expected, zero_for_one)
    assert (after.sqrt_price, after.tick, after.liquidity) == expected[2:5]
