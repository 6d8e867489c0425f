"""A shock that cascades from Aave v3 into Morpho Blue through one Uniswap v3 pool and one feed: predicted by
graph.cascade, observed on the devnet.

A fresh devnet (both Aave markets, one thin WETH/USDC pool, Morpho Blue's three markets) holds a small book:
WETH-collateral, USDC-debt accounts on Aave and on Morpho's WETH/USDC market (LLTV 86 %), at health levels
chosen for WETH −35 %. The Morpho oracle is the ratio of the same WETH and USDC PriceFeeds Aave reads, and
the WETH feed follows the pool (Chainlink-style, 50 bps). Round 1 liquidates what the shock alone puts
under water on both protocols; the bots' sales pull the pool and so the feed down, and later rounds take
positions on both protocols that the shock alone leaves healthy: with the Aave book alone or the Morpho
book alone the simulator stops earlier. The simulator runs on the book ``load_inputs`` reads from the
index at the block before the shock (the Morpho books equal to the chain's own views at that block), with
Aave's 10 % liquidation protocol fee added; :func:`devnet.shock.apply_shock` then shocks the feed and lets
the bots act: the same liquidations, in the same order, with the same amounts, sales, bad debt, feed
answers and final pool price, to the wei.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chainrisk.contagion.inputs import Inputs, load_inputs
from chainrisk.db import to_libpq_url
from devnet.aave import USD, Deployment, deploy_markets
from devnet.anvil import Anvil
from devnet.morpho import Morpho, deploy_morpho, manifest_with_morpho
from devnet.scenario import MAX_UINT, label_address
from devnet.serve import indexer_toml
from devnet.shock import FeedRule, ShockOutcome, apply_shock
from devnet.uniswap import PairSpec, Uniswap, deploy_uniswap, manifest_with_uniswap
from graph.cascade import CascadeResult, LendingMarket, MorphoBook, run_cascade
from graph.morpho import MorphoMarket, MorphoPosition
from indexer.catalog import sync_config
from indexer.config import IndexConfig
from indexer.lending.health import indexed_head
from indexer.lending.morpho import sync_oracles
from indexer.runner import config_plan, run_plan
from tests.devnet.test_cascade_chain import CHAIN, LENDER_USDC, VARIABLE, _with_fees

pytestmark = pytest.mark.slow

SHOCK = Fraction(65, 100)  # WETH −35 %
POOL_USD = 5_000_000.0  # per side, full range, at $3,000
MARKET = "WETH/USDC"
FEEDBACK = 0.5  # the pool's weight in what the scenario's ``--feedback`` feeds publish
LLTV = 86 * 10**16
# (protocol, WETH, health at the shocked price): under 1 in round one; a little over 1 only once the sales
# of the rounds before have pulled the feed down; 1.6 never.
BOOK = (
    ("aave", 30, 0.93),
    ("morpho", 40, 0.96),
    ("aave", 25, 1.006),
    ("morpho", 30, 1.012),
    ("aave", 35, 1.025),
    ("morpho", 25, 1.04),
    ("morpho", 30, 1.6),
)


@dataclass(frozen=True)
class World:
    deployment: Deployment
    uniswap: Uniswap
    morpho: Morpho
    inputs: Inputs
    books: tuple[MorphoBook, ...]  # read from the chain's views
    predicted: CascadeResult
    outcome: ShockOutcome
    market_after: Any  # Morpho.market(id) of WETH/USDC after the shock
    mixed_predicted: CascadeResult  # the feed as the scenario's ``--feedback`` feeds publish
    mixed: ShockOutcome
    cli: dict[str, Any]  # `chainrisk contagion simulate --json` once Aave's protocol fees are set to 0
    unpaid: ShockOutcome  # the bots' outcome of the same shock then


def _place(node: Anvil, deployment: Deployment, morpho: Morpho) -> None:
    """Lenders' USDC on Aave and on Morpho, then the book (collateral minted to each wallet)."""
    owner = deployment.deployer
    node.rpc("anvil_autoImpersonateAccount", [True])
    usdc, weth = deployment.assets["USDC"], deployment.assets["WETH"]
    deployment.token("USDC").transact(owner, "mint", owner, 10**30, gas=200_000)
    deployment.token("USDC").transact(
        owner, "approve", deployment.markets["aave"].pool, MAX_UINT, gas=100_000
    )
    deployment.pool("aave").transact(owner, "supply", usdc.token, LENDER_USDC * 10**6, owner, 0)
    morpho.supply(MARKET, owner, LENDER_USDC * 10**6)
    shocked = weth.initial_price * SHOCK
    for i, (protocol, units, health) in enumerate(BOOK):
        wallet = label_address(f"cross-protocol-{i}")
        node.rpc("anvil_setBalance", [wallet, hex(10**20)])
        deployment.token("WETH").transact(wallet, "mint", wallet, units * 10**18, gas=200_000)
        if protocol == "aave":
            threshold = deployment.markets["aave"].reserves["WETH"].params.liquidation_threshold
            debt_usd = units * shocked * threshold / 10_000 / Fraction(health)
            deployment.token("WETH").transact(wallet, "approve", deployment.markets["aave"].pool, MAX_UINT)
            deployment.pool("aave").transact(wallet, "supply", weth.token, units * 10**18, wallet, 0)
            debt = int(debt_usd * 10**6 / USD)
            deployment.pool("aave").transact(wallet, "borrow", usdc.token, debt, VARIABLE, 0, wallet)
        else:
            debt_usd = units * shocked * Fraction(LLTV, 10**18) / Fraction(health)
            morpho.supply_collateral(MARKET, wallet, units * 10**18)
            morpho.borrow(MARKET, wallet, int(debt_usd * 10**6 / USD))
    # The last block accrues Morpho's interest, so the shock's blocks (in the same second) accrue none.
    for market in morpho.markets.values():
        morpho.contract().transact(owner, "accrueInterest", market.params)


def _position(morpho: Morpho, name: str, user: str, block: int) -> MorphoPosition:
    held = morpho.position(name, user, block)
    return MorphoPosition(held.supply_shares, held.borrow_shares, held.collateral)


def _books(morpho: Morpho, block: int, timestamp: int) -> tuple[MorphoBook, ...]:
    """Every Morpho market with its borrowers, read from the chain at ``block``."""
    books = []
    for name, market in sorted(morpho.markets.items()):
        state = morpho.market_state(name, block)
        users = [label_address(f"cross-protocol-{i}") for i, (p, _, _) in enumerate(BOOK) if p == "morpho"]
        positions = {user.lower(): _position(morpho, name, user, block) for user in users if name == MARKET}
        collateral, loan = (
            morpho.deployment.contract(t, "MintableERC20")
            for t in (market.collateral_token, market.loan_token)
        )
        books.append(
            MorphoBook(
                MorphoMarket(
                    market.id.lower(),
                    market.loan_token.lower(),
                    market.collateral_token.lower(),
                    market.lltv,
                    int(loan.call("decimals")),
                    int(collateral.call("decimals")),
                    total_supply_assets=state.total_supply_assets,
                    total_supply_shares=state.total_supply_shares,
                    total_borrow_assets=state.total_borrow_assets,
                    total_borrow_shares=state.total_borrow_shares,
                    last_update=state.last_update,
                    fee=state.fee,
                    oracle=market.oracle.lower(),
                    irm=market.irm.lower(),
                ),
                positions,
                market.oracle_scale_factor,
                timestamp=timestamp,
            )
        )
    return tuple(books)


def _index(db: str, node: Anvil, deployment: Deployment, uniswap: Uniswap, morpho: Morpho) -> int:
    manifest = manifest_with_morpho(manifest_with_uniswap(deployment.to_manifest(), uniswap), morpho)
    config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": node.url})))
    with psycopg.connect(to_libpq_url(db)) as conn:
        sync_config(conn, config.chains, config.tokens, config.labels)
        sync_oracles(conn, config.chains, config.morpho_oracles)
    run_plan(config_plan(config.chains[0], config.contracts, None, False), to_libpq_url(db))
    with psycopg.connect(to_libpq_url(db)) as conn:
        head = indexed_head(conn, CHAIN)
    assert head == int(node.rpc("eth_blockNumber"), 16)
    return head


def _simulate(
    inputs: Inputs, books: tuple[MorphoBook, ...], markets: tuple[LendingMarket, ...] | None = None
) -> CascadeResult:
    weth = next(t for t, s in inputs.symbols.items() if s == "WETH")
    aave = inputs.markets if markets is None else markets
    return run_cascade([*aave, *books], inputs.pools, inputs.oracles, {weth: SHOCK})


def _command(
    db: str, node: Anvil, stack: tuple[Deployment, Uniswap, Morpho], rule: FeedRule, tmp: Path
) -> tuple[dict[str, Any], ShockOutcome]:
    """Aave's protocol fees set to 0 (what the command takes where none is indexed), the chain indexed
    again; then `chainrisk contagion simulate --json` and the bots' outcome of the same shock."""
    deployment, uniswap, morpho = stack
    for asset in deployment.assets.values():
        configurator = deployment.configurator("aave")
        configurator.transact(deployment.deployer, "setLiquidationProtocolFee", asset.token, 0)
    for market in morpho.markets.values():
        morpho.contract().transact(deployment.deployer, "accrueInterest", market.params)
    head = _index(db, node, deployment, uniswap, morpho)
    (tmp / "chainrisk.toml").write_text("")
    env = {
        **os.environ,
        "CHAINRISK_DATABASE_URL": db,
        "CHAINRISK_HOME": str(tmp / "home"),
        "CHAINRISK_CONFIG": str(tmp / "chainrisk.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "chainrisk", "contagion", "simulate", "--shock", "WETH=-35%", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    assert document["block"] == head
    shocked = apply_shock(deployment, uniswap, {"WETH": SHOCK}, feeds={"WETH": rule}, morpho=morpho)
    return document, shocked


@pytest.fixture(scope="module")
def world(
    templates: dict[str, str], node_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    from tests.conftest import _fresh_database

    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home) as node:
            deployment = deploy_markets(node, node_home)
            uniswap = deploy_uniswap(
                deployment, node_home, pairs=(PairSpec("WETH", "USDC", 3_000, POOL_USD),), seed=5
            )
            morpho = deploy_morpho(deployment, node_home)
            _place(node, deployment, morpho)
            head = _index(db, node, deployment, uniswap, morpho)
            with psycopg.connect(to_libpq_url(db)) as conn:
                inputs = _with_fees(load_inputs(conn, CHAIN, head, "3.0", "feed"))
            timestamp = int(node.rpc("eth_getBlockByNumber", [hex(head), False])["timestamp"], 16)
            books = _books(morpho, head, timestamp)
            predicted = _simulate(inputs, inputs.morpho)
            weth = deployment.assets["WETH"].token.lower()
            feed = inputs.oracles[weth]
            assert feed.kind == "feed"
            rule = FeedRule("USDC", feed.deviation_bps, feed.heartbeat_s)
            before = node.rpc("evm_snapshot")
            outcome = apply_shock(deployment, uniswap, {"WETH": SHOCK}, feeds={"WETH": rule}, morpho=morpho)
            after = morpho.market_state(MARKET)
            node.rpc("evm_revert", [before])
            before = node.rpc("evm_snapshot")
            mixed_feed = replace(feed, kind="mixed", feedback=FEEDBACK)
            mixed_predicted = run_cascade(
                inputs.books, inputs.pools, {**inputs.oracles, weth: mixed_feed}, {weth: SHOCK}
            )
            mixed_rule = replace(rule, feedback=FEEDBACK)
            mixed = apply_shock(
                deployment, uniswap, {"WETH": SHOCK}, feeds={"WETH": mixed_rule}, morpho=morpho
            )
            node.rpc("evm_revert", [before])
            cli, unpaid = _command(
                db, node, (deployment, uniswap, morpho), rule, tmp_path_factory.mktemp("cli")
            )
            yield World(
                deployment,
                uniswap,
                morpho,
                inputs,
                books,
                predicted,
                outcome,
                after,
                mixed_predicted,
                mixed,
                cli,
                unpaid,
            )


def _chain_rounds(
    world: World, outcome: ShockOutcome | None = None
) -> list[list[tuple[str, str, str, int, int, int, int]]]:
    return [
        [
            (x.protocol, x.pool, x.user.lower(), x.debt_repaid, x.collateral_seized, x.proceeds, x.bad_debt)
            for x in r.liquidations
        ]
        for r in (outcome or world.outcome).rounds
    ]


def _predicted_rounds(result: CascadeResult) -> list[list[tuple[str, str, str, int, int, int, int]]]:
    return [
        [
            (
                x.protocol,
                x.market.lower(),
                x.user.lower(),
                x.debt_repaid,
                x.collateral_seized,
                x.proceeds,
                sum(amount for _, amount in x.deficits) if x.protocol == "morpho_blue" else 0,
            )
            for x in r.liquidations
        ]
        for r in result.rounds
    ]


def test_the_indexed_morpho_books_are_the_chains(world: World) -> None:
    """Equal to the chain's views; for the two markets nobody borrows from, ``lastUpdate`` aside (the
    index's differs from the chain's there by a second; the cascade accrues no interest from it)."""
    indexed = {b.market.id: (b.market, b.positions, b.scale_factor) for b in world.inputs.morpho}
    chain = {b.market.id: (b.market, b.positions, b.scale_factor) for b in world.books}
    market_id = world.morpho.market(MARKET).id.lower()
    assert indexed[market_id] == chain[market_id]
    for key, (market, positions, scale) in chain.items():
        assert indexed[key] == (replace(market, last_update=indexed[key][0].last_update), positions, scale)
    assert len(indexed[world.morpho.market(MARKET).id.lower()][1]) == 4
    assert world.inputs.labels[world.morpho.market(MARKET).id.lower()] == "morpho WETH/USDC"


def test_the_bots_liquidate_on_both_protocols_what_the_simulator_predicts(world: World) -> None:
    chain, predicted = _chain_rounds(world), _predicted_rounds(world.predicted)
    for index, rows in enumerate(predicted, 1):
        print(
            f"\nround {index}: "
            + "; ".join(f"{p} {u[:8]} repaid {d} seized {c}" for p, _, u, d, c, _, _ in rows)
        )
    assert chain == predicted
    assert {x[0] for r in chain for x in r} == {"aave_v3", "morpho_blue"}


def _crossings(outcome: ShockOutcome) -> set[tuple[str, str]]:
    """(protocol that sold, protocol liquidated next): every round whose sales were all one protocol's,
    followed by a liquidation on the other of a position that was healthy when that round began."""
    found = set()
    for before, after in zip(outcome.rounds, outcome.rounds[1:], strict=False):
        sellers = {x.protocol for x in before.liquidations}
        unhealthy = {(x.market, x.user) for x in before.liquidations} | set(before.left_alone)
        for x in after.liquidations:
            if len(sellers) == 1 and x.protocol not in sellers and (x.market, x.user) not in unhealthy:
                found.add((next(iter(sellers)), x.protocol))
    return found


def test_one_protocols_sales_liquidate_positions_on_the_other_both_ways(world: World) -> None:
    """Rounds in which only one protocol's collateral was sold, after which a position on the other
    protocol, healthy until then, was liquidated: the feed they share moved only with those sales."""
    assert _crossings(world.outcome) == {("morpho_blue", "aave_v3"), ("aave_v3", "morpho_blue")}


def test_each_book_alone_cascades_less_deep(world: World) -> None:
    both = world.predicted
    no_aave = tuple(replace(m, positions={}) for m in world.inputs.markets)
    morpho_only = _simulate(world.inputs, world.inputs.morpho, markets=no_aave)
    aave_only = _simulate(world.inputs, tuple(replace(b, positions={}) for b in world.inputs.morpho))
    print(f"\ndepth: both {both.depth}, Aave alone {aave_only.depth}, Morpho alone {morpho_only.depth}")
    assert max(aave_only.depth, morpho_only.depth) < both.depth == world.outcome.depth


def test_pool_feed_positions_and_bad_debt_are_the_simulators(world: World) -> None:
    outcome, result = world.outcome, world.predicted
    for name, pool in world.uniswap.pools.items():
        assert outcome.pool_prices[name] == result.pool_prices[(pool.token0.lower(), pool.token1.lower())]
    weth = world.deployment.assets["WETH"].token.lower()
    assert outcome.oracle_prices["WETH"] == result.oracle_prices[weth]
    for chain_round, predicted_round in zip(outcome.rounds, result.rounds, strict=True):
        assert chain_round.oracle_prices["WETH"] == predicted_round.oracle_prices[weth]
    market_id = world.morpho.market(MARKET).id.lower()
    for (name, user), (shares, collateral) in outcome.morpho_positions.items():
        if name == MARKET:
            left = result.morpho[market_id].positions[user.lower()]
            assert (left.borrow_shares, left.collateral) == (shares, collateral), user
    onchain = world.market_after
    final = result.morpho[market_id].market
    assert (onchain.total_borrow_assets, onchain.total_borrow_shares, onchain.total_supply_assets) == (
        final.total_borrow_assets,
        final.total_borrow_shares,
        final.total_supply_assets,
    )
    symbols = {t: s for t, s in world.inputs.symbols.items()}
    names = {market_id: MARKET} | {m.pool.lower(): n for n, m in world.deployment.markets.items()}
    assert outcome.bad_debt == {(names[m], symbols[a]): v for (m, a), v in result.bad_debt.items()}


def test_the_contagion_command_predicts_both_protocols_on_chain(world: World) -> None:
    """`chainrisk contagion simulate --shock WETH=-35% --json` on the index (Aave's fees at 0 on chain,
    as the command takes them): its liquidations, protocols and amounts are the bots', round by round."""
    got = [
        [(x.protocol, x.pool, x.user.lower(), x.debt_repaid, x.collateral_seized) for x in r.liquidations]
        for r in world.unpaid.rounds
    ]
    want = [
        [
            (x["protocol"], x["market"], x["wallet"], int(x["debt_repaid"]), int(x["collateral_seized"]))
            for x in r["liquidations"]
        ]
        for r in world.cli["rounds"]
    ]
    assert got == want and world.cli["depth"] == world.unpaid.depth >= 3
    assert {x[0] for r in want for x in r} == {"aave_v3", "morpho_blue"}
    market_id = world.morpho.market(MARKET).id.lower()
    assert any(
        x["market_label"] == "morpho WETH/USDC" for r in world.cli["rounds"] for x in r["liquidations"]
    )
    bad = {(x["market"], x["symbol"]): int(x["amount"]) for x in world.cli["bad_debt"]}
    names = {market_id: MARKET} | {m.pool.lower(): n for n, m in world.deployment.markets.items()}
    assert {(names[m], s): v for (m, s), v in bad.items()} == world.unpaid.bad_debt


def test_with_the_scenarios_feedback_feeds_too(world: World) -> None:
    """The feed publishing the scenario's mix of the shocked price and the pool's (the ``mixed`` oracle):
    the same agreement, every liquidation and feed answer, on both protocols."""
    assert _chain_rounds(world, world.mixed) == _predicted_rounds(world.mixed_predicted)
    weth = world.deployment.assets["WETH"].token.lower()
    for chain_round, predicted_round in zip(world.mixed.rounds, world.mixed_predicted.rounds, strict=True):
        assert chain_round.oracle_prices["WETH"] == predicted_round.oracle_prices[weth]
    protocols = [sorted({x.protocol for x in r.liquidations}) for r in world.mixed.rounds]
    print(f"\nmixed: protocols per round {protocols}")
    assert world.mixed.depth >= 2 and {p for r in protocols for p in r} == {"aave_v3", "morpho_blue"}
