"""Uniswap v3 from the published artifacts: pools at the oracle prices, swaps move them the right way."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from devnet.aave import Deployment, deploy_markets
from devnet.anvil import Anvil
from devnet.scenario import ScenarioError, price_path, simulate
from devnet.serve import indexer_toml
from devnet.uniswap import (
    MAX_TICK,
    PAIRS,
    SWAP_TOPIC,
    TICK_SPACING,
    Uniswap,
    UniswapError,
    deploy_uniswap,
    manifest_with_uniswap,
    sqrt_price_x96,
    uniswap_artifact,
)
from indexer.config import IndexConfig
from tests.devnet.fixtures import devnet_home  # noqa: F401

WAD = 10**18


@pytest.fixture(scope="module")
def chain(devnet_home: Path) -> Iterator[tuple[Anvil, Deployment, Uniswap]]:  # noqa: F811
    with Anvil(devnet_home) as node:
        deployment = deploy_markets(node, devnet_home)
        yield node, deployment, deploy_uniswap(deployment, devnet_home)


@pytest.fixture
def fresh(chain: tuple[Anvil, Deployment, Uniswap]) -> Iterator[tuple[Deployment, Uniswap, str]]:
    node, deployment, uniswap = chain
    snapshot = node.snapshot()
    yield deployment, uniswap, node.accounts()[5]
    node.revert(snapshot)


def test_pools_start_at_the_oracle_prices(fresh: tuple[Deployment, Uniswap, str]) -> None:
    deployment, uniswap, _ = fresh
    assert sorted(uniswap.pools) == sorted(f"{p.base}/{p.quote}" for p in PAIRS)
    factory = uniswap.contract(uniswap.factory, "UniswapV3Factory")
    for pair in PAIRS:
        pool = uniswap.pool(pair.base, pair.quote)
        assert pool.token0 < pool.token1
        assert str(factory.call("getPool", pool.token1, pool.token0, pair.fee)).lower() == pool.address
        assert int(uniswap.contract(pool.address, "UniswapV3Pool").call("liquidity")) > 0
        expected = deployment.price(pair.base) / deployment.price(pair.quote)
        assert uniswap.price(pair.base, pair.quote) == pytest.approx(expected, rel=1e-9)
        assert uniswap.price(pair.quote, pair.base) == pytest.approx(1 / expected, rel=1e-9)


def test_selling_weth_lowers_its_price_and_buying_wbtc_raises_it(
    fresh: tuple[Deployment, Uniswap, str],
) -> None:
    _, uniswap, trader = fresh
    before = uniswap.price("WETH", "USDC")
    sold = uniswap.swap_exact_input(trader, "WETH", "USDC", 300 * WAD, mint=True)
    after = uniswap.price("WETH", "USDC")
    assert after < before * 0.99
    assert 0.95 * 300 * before < sold.amount_out / 1e6 < 300 * before  # fee and price impact, no more
    pool = uniswap.pool("WETH", "USDC").address
    assert [log["topics"][0] for log in sold.receipt["logs"] if log["address"].lower() == pool] == [
        SWAP_TOPIC
    ]

    btc = uniswap.price("WBTC", "USDC")
    bought = uniswap.swap_exact_input(trader, "USDC", "WBTC", 1_000_000 * 10**6, mint=True)
    assert uniswap.price("WBTC", "USDC") > btc
    assert 0 < bought.amount_out < 1_000_000 / btc * 10**8
    cross = uniswap.price("wstETH", "WETH")
    uniswap.swap_exact_input(trader, "wstETH", "WETH", 50 * WAD, mint=True)
    assert uniswap.price("wstETH", "WETH") < cross


def test_bad_requests_and_manifest(fresh: tuple[Deployment, Uniswap, str]) -> None:
    deployment, uniswap, trader = fresh
    with pytest.raises(UniswapError, match="no DAI/WETH pool"):
        uniswap.swap_exact_input(trader, "DAI", "WETH", 1)
    with pytest.raises(UniswapError, match="positive"):
        uniswap.swap_exact_input(trader, "WETH", "USDC", 0)
    manifest = manifest_with_uniswap(deployment.to_manifest(), uniswap)
    assert manifest["end_block"] == uniswap.end_block
    again = Uniswap.from_manifest(manifest, deployment)
    assert again is not None and again.to_manifest() == uniswap.to_manifest()
    assert Uniswap.from_manifest(deployment.to_manifest(), deployment) is None
    config = IndexConfig.model_validate(
        tomllib.loads(indexer_toml({**manifest, "rpc_url": "http://127.0.0.1:8545"}))
    )
    by_abi = {c.address: c.abi for c in config.contracts}
    assert by_abi[uniswap.factory.lower()] == "uniswap_v3_factory"
    assert {a for a, abi in by_abi.items() if abi == "uniswap_v3_pool"} == {
        p.address.lower() for p in uniswap.pools.values()
    }
    # The periphery's pool-address hash is the core pool's init code: the artifacts belong together.
    pool_code = bytes.fromhex(uniswap_artifact(deployment.home, "UniswapV3Pool").bytecode.removeprefix("0x"))
    assert keccak(pool_code).hex() == "e34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"


def test_sqrt_price_of_equal_values_is_one() -> None:
    assert sqrt_price_x96(1, 1, 18, 18) == 2**96
    assert sqrt_price_x96(3_000, 1, 18, 6) == pytest.approx(2**96 * (3_000 * 10**-12) ** 0.5, rel=1e-12)


def _run(node: Anvil, deployment: Deployment, uniswap: Uniswap, feedback: float) -> tuple[Any, ...]:
    snapshot = node.snapshot()
    try:
        result = simulate(deployment, 4, 40, 7, uniswap=uniswap, feedback=feedback)
        after = {name: uniswap.price(*name.split("/")) for name in uniswap.pools}
        swaps = [
            log
            for pool in uniswap.pools.values()
            for log in node.rpc(
                "eth_getLogs",
                [{"fromBlock": hex(result.first_block), "address": pool.address, "topics": [SWAP_TOPIC]}],
            )
        ]
        feed = deployment.price_feed("WETH").call("latestAnswer")
    finally:
        node.revert(snapshot)
    return result, after, swaps, int(feed)


@pytest.fixture(scope="module")
def plain(chain: tuple[Anvil, Deployment, Uniswap]) -> tuple[Any, ...]:
    """The 4-day scenario with the pools (no feedback), run once and rewound."""
    return _run(*chain, 0.0)


@pytest.mark.slow
def test_bots_sell_seized_collateral_and_arbitrage_tracks_the_path(
    chain: tuple[Anvil, Deployment, Uniswap], plain: tuple[Any, ...]
) -> None:
    _, deployment, uniswap = chain
    result, after, swaps, _ = plain
    assert result.liquidations and result.reverted == 0
    bots = {liq.liquidator for liq in result.liquidations}
    sales = [log for log in swaps if "0x" + log["topics"][2][-40:] in bots]  # topic 2: the recipient
    assert result.swaps == len(sales) == len(result.liquidations)
    assert result.arbitrage_swaps == len(swaps) - len(sales) > 0
    assert {"0x" + log["topics"][1][-40:] for log in swaps} == {uniswap.router}  # topic 1: the sender
    path = price_path(4, 7, {s: a.initial_price for s, a in deployment.assets.items()})
    final = path.at(4 * 24 - 1)
    assert after["WETH/USDC"] == pytest.approx(final["WETH"] / final["USDC"], rel=0.05)


@pytest.mark.slow
def test_feedback_mixes_pool_prices_into_the_oracles(
    chain: tuple[Anvil, Deployment, Uniswap], plain: tuple[Any, ...]
) -> None:
    node, deployment, uniswap = chain
    with pytest.raises(ScenarioError, match="feedback"):
        simulate(deployment, 1, 8, 1, feedback=0.5)
    mixed, _, _, feed_mixed = _run(node, deployment, uniswap, 0.5)
    assert mixed.reverted == 0 and mixed.liquidations
    assert feed_mixed != plain[3]  # the oracle published something other than the path
    assert {**mixed.to_dict(), "wall_s": 0} != {**plain[0].to_dict(), "wall_s": 0}


def _ranges(uniswap: Uniswap) -> dict[str, dict[int, tuple[int, int]]]:
    return {name: uniswap.pool_state(name).ticks for name in uniswap.pools}


def test_pools_hold_concentrated_ranges_drawn_from_the_seed(
    chain: tuple[Anvil, Deployment, Uniswap],
) -> None:
    node, deployment, uniswap = chain
    ticks = _ranges(uniswap)
    for name, pool in uniswap.pools.items():
        spacing = TICK_SPACING[pool.fee]
        full = (-(MAX_TICK // spacing) * spacing, MAX_TICK // spacing * spacing)
        assert set(full) <= set(ticks[name]) and len(ticks[name]) > 2 + PAIRS[0].ranges
        state = uniswap.pool_state(name)
        assert state.liquidity > ticks[name][full[0]][1]  # more than the full range alone at the price
    snapshot = node.snapshot()
    try:
        again = _ranges(deploy_uniswap(deployment, deployment.home))
        other = _ranges(deploy_uniswap(deployment, deployment.home, seed=1))
    finally:
        node.revert(snapshot)
    assert {n: set(t) for n, t in again.items()} == {n: set(t) for n, t in ticks.items()}
    assert {n: set(t) for n, t in other.items()} != {n: set(t) for n, t in ticks.items()}
