"""Uniswap v3 pools on the devnet, indexed, and their swap state rebuilt from the events at any block.

A scenario of swaps (some with price limits), new concentrated positions, partial burns and collects runs
on the devnet pools; the factory and pools are indexed into PostgreSQL; each pool is rebuilt from its
events. Every Swap is a checkpoint the replay must meet, and at sampled blocks the rebuilt price, tick,
active liquidity and per-tick liquidity equal what the pool's views answer at that block.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from devnet.aave import Contract, Deployment, deploy_markets
from devnet.anvil import Anvil
from devnet.uniswap import DEADLINE, MAX_UINT, MINT_GAS, SWAP_TOPIC, TICK_SPACING, Uniswap, deploy_uniswap
from graph.univ3_state import RebuiltPool, pool_state_at, pool_states_at
from indexer.config import ChainConfig
from indexer.registry import DecoderRegistry
from indexer.runner import Plan, run_plan
from indexer.sync import SyncJob
from indexer.types import LogFilter
from tests.devnet.fixtures import devnet_home  # noqa: F401

CHAIN_ID = 31337
STEPS = 200
UINT128 = 2**128 - 1


@pytest.fixture(scope="module")
def scenario(devnet_home: Path) -> Iterator[tuple[Anvil, Uniswap, list[int]]]:  # noqa: F811
    """The devnet with its pools after the scenario, and the blocks to compare at."""
    with Anvil(devnet_home, prune_history=False) as node:  # views at past blocks
        deployment = deploy_markets(node, devnet_home)
        uniswap = deploy_uniswap(deployment, devnet_home, seed=5)
        samples = _run(node, deployment, uniswap)
        yield node, uniswap, samples


def _run(node: Anvil, deployment: Deployment, uniswap: Uniswap) -> list[int]:
    draw = random.Random(5)
    trader, maker = node.accounts()[7], node.accounts()[8]
    samples = []
    for step in range(STEPS):
        name = draw.choice(sorted(uniswap.pools))
        roll = draw.random()
        if roll < 0.8:
            _swap(draw, uniswap, name, trader)
        elif roll < 0.9:
            _add_position(draw, uniswap, name, maker)
        else:
            _burn_part(draw, uniswap, maker)
        if step % 80 == 79:
            samples.append(node.block_number())
    return samples


def _swap(draw: random.Random, uniswap: Uniswap, name: str, trader: str) -> None:
    spec = uniswap.pools[name]
    pool = uniswap.contract(spec.address, "UniswapV3Pool")
    zero_for_one = draw.random() < 0.5
    token_in, token_out = (spec.symbol0, spec.symbol1) if zero_for_one else (spec.symbol1, spec.symbol0)
    balance = int(uniswap.deployment.token(token_in).call("balanceOf", spec.address))
    amount = max(1, int(balance * 10 ** draw.uniform(-6, -0.7)))
    limit = 0
    if draw.random() < 0.3:
        sqrt_price = int(pool.call("slot0")[0])
        move = draw.randint(5, 1_500)  # basis points of sqrt price
        limit = sqrt_price * (10_000 - move if zero_for_one else 10_000 + move) // 10_000
    uniswap.swap_exact_input(trader, token_in, token_out, amount, mint=True, sqrt_price_limit=limit)


def _add_position(draw: random.Random, uniswap: Uniswap, name: str, maker: str) -> None:
    spec = uniswap.pools[name]
    spacing = TICK_SPACING[spec.fee]
    tick = int(uniswap.contract(spec.address, "UniswapV3Pool").call("slot0")[1])
    lower = (tick // spacing + draw.randint(-20, 10)) * spacing
    upper = lower + draw.randint(1, 20) * spacing
    amounts = []
    for symbol in (spec.symbol0, spec.symbol1):
        token = uniswap.deployment.token(symbol)
        amount = int(token.call("balanceOf", spec.address)) // 40
        token.transact(maker, "mint", maker, amount, gas=200_000)
        token.transact(maker, "approve", uniswap.position_manager, MAX_UINT, gas=100_000)
        amounts.append(amount)
    params = (spec.token0, spec.token1, spec.fee, lower, upper, *amounts, 0, 0, maker, DEADLINE)
    _manager(uniswap).transact(maker, "mint", params, gas=MINT_GAS)


def _burn_part(draw: random.Random, uniswap: Uniswap, maker: str) -> None:
    """Burn part of a position (the deployer's or the maker's) and collect what it is owed."""
    manager = _manager(uniswap)
    owner = (
        maker
        if int(manager.call("balanceOf", maker)) and draw.random() < 0.5
        else uniswap.deployment.deployer
    )
    count = int(manager.call("balanceOf", owner))
    token_id = int(manager.call("tokenOfOwnerByIndex", owner, draw.randrange(count)))
    liquidity = int(manager.call("positions", token_id)[7])
    if liquidity == 0:
        return
    part = liquidity if draw.random() < 0.3 else liquidity // draw.randint(2, 5)
    manager.transact(owner, "decreaseLiquidity", (token_id, part, 0, 0, DEADLINE), gas=MINT_GAS)
    manager.transact(owner, "collect", (token_id, owner, UINT128, UINT128), gas=MINT_GAS)


def _manager(uniswap: Uniswap) -> Contract:
    return uniswap.contract(uniswap.position_manager, "NonfungiblePositionManager")


def _index(node: Anvil, uniswap: Uniswap, db_url: str) -> None:
    contracts = {uniswap.factory: "uniswap_v3_factory"}
    contracts.update({pool.address: "uniswap_v3_pool" for pool in uniswap.pools.values()})
    addresses = tuple(sorted(contracts))
    chain = ChainConfig(name="anvil", chain_id=CHAIN_ID, rpc_urls=[node.url], poll_interval_s=0.05)
    job = SyncJob(
        name="uniswap",
        chain=chain,
        filter=LogFilter(addresses=addresses),
        start_block=uniswap.start_block,
        use_finalized_tag=False,
        addresses=addresses,
    )
    cursor = run_plan(Plan(job, DecoderRegistry(contracts)), to_libpq_url(db_url))
    assert cursor.block_number == node.block_number()


def _chain_swaps(node: Anvil, address: str) -> int:
    logs = node.rpc("eth_getLogs", [{"fromBlock": "0x0", "address": address, "topics": [SWAP_TOPIC]}])
    return len(logs)


def _rebuilt_view(rebuilt: RebuiltPool) -> tuple[object, ...]:
    pool = rebuilt.pool
    ticks = {tick: (info.gross, info.net) for tick, info in pool.ticks.items()}
    return pool.sqrt_price, pool.tick, pool.liquidity, ticks, pool.bitmap


def test_rebuilt_pools_meet_every_swap_and_the_chain_at_any_block(
    scenario: tuple[Anvil, Uniswap, list[int]], db_url: str
) -> None:
    node, uniswap, samples = scenario
    _index(node, uniswap, db_url)
    head = node.block_number()
    swaps = 0
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        for name, spec in uniswap.pools.items():
            rebuilt = pool_state_at(conn, CHAIN_ID, spec.address, head)
            assert rebuilt.mismatches == []
            assert rebuilt.swaps == _chain_swaps(node, spec.address)
            swaps += rebuilt.swaps
            history = pool_states_at(conn, CHAIN_ID, spec.address, [*samples, head])
            assert _rebuilt_view(history[head]) == _rebuilt_view(rebuilt)
            for block, state in history.items():
                chain = uniswap.pool_state(name, block)
                chain_view = (chain.sqrt_price, chain.tick, chain.liquidity, chain.ticks, chain.bitmap)
                assert _rebuilt_view(state) == chain_view
        burns = conn.execute("SELECT count(*), count(DISTINCT address) FROM uniswap_v3_burn").fetchone()
        collects = conn.execute("SELECT count(*) FROM uniswap_v3_collect").fetchone()
    assert swaps >= 120
    assert burns is not None and burns[0] >= 8 and collects is not None and collects[0] >= 8
