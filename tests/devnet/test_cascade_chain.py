"""graph.cascade's prediction of a shock, from the index, against what the devnet's bots did with it.

A devnet with both Aave v3 markets and one thin WETH/USDC Uniswap v3 pool (full range plus concentrated
ranges) holds a book of WETH-collateral, USDC-debt accounts in both markets, placed so that WETH −35 %
liquidates some at once and the bots' sales pull the pool, and with it the WETH feed, far enough to
liquidate more. The chain is indexed; ``load_inputs`` reads the simulator's inputs at the block before the
shock; the liquidation protocol fee (10 % on every reserve, not among the indexed events) is added. Then,
each time from the same block (``evm_snapshot``), :func:`devnet.shock.apply_shock` shocks the feed and
lets the bots act, and the outcome is compared with the simulator's:

- bots with the simulator's policy, one transaction per block, the feed following the pool Chainlink-style
  (50 bps, as ``load_inputs``' feeds): liquidations round by round, in order, with their amounts and
  sales; final pool price; feed answers after every round; every account left; bad debt: all equal;
- the same bots with the feed the scenario publishes with ``--feedback`` (a mix of the shocked price and
  the pool's), against the simulator's ``mixed`` oracle: all equal;
- the scenario's bots (a round's liquidations in one block in their own order, no profit check, the sales
  in the next block), against a simulator liquidator that takes any loss: the same accounts each round
  with the same amounts; what each sale brought differs with the order of the sales, within the stated
  tolerances for the rest;
- the simulator's policy with blocks 12 s apart: the same liquidations, amounts and prices within the
  interest that accrues meanwhile (the simulator holds indices and rates fixed).

Taking the protocol fee as 0, as ``load_inputs`` must, gives another cascade on this book.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
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
from devnet.scenario import MAX_UINT, label_address
from devnet.serve import indexer_toml
from devnet.shock import BotPolicy, FeedRule, ShockError, ShockOutcome, apply_shock
from devnet.uniswap import PairSpec, Uniswap, deploy_uniswap, manifest_with_uniswap
from graph.cascade import CascadeResult, OracleModel, run_cascade
from graph.liquidation import ReserveTerms
from indexer.catalog import sync_config
from indexer.config import IndexConfig
from indexer.lending.health import indexed_head
from indexer.runner import config_plan, run_plan

pytestmark = pytest.mark.slow

CHAIN = 31337
SHOCK = Fraction(65, 100)  # WETH −35 %
PROTOCOL_FEE_BPS = 1_000  # what deploy_markets sets on every reserve
POOL_USD = 5_000_000.0  # per side, full range, at $3,000
LENDER_USDC = 50_000_000
VARIABLE = 2
FEEDBACK = 0.5  # the pool's weight in what the scenario's feeds publish
ANY_LOSS = -(10**30)
BLOCK_SECONDS = 12  # a min_profit no sale falls short of: the liquidator acts whatever it loses
# (market, WETH supplied, health factor at the shocked price): under 0.87 the collateral does not cover the
# debt plus the bonus (bad debt), under 1 round one, a little over 1 the rounds that follow, 1.6 never.
BOOK = (
    ("aave", 30, 0.84),
    ("spark", 25, 0.93),
    ("aave", 40, 0.97),
    ("spark", 35, 0.99),
    ("aave", 20, 1.004),
    ("spark", 30, 1.012),
    ("aave", 25, 1.02),
    ("spark", 20, 1.035),
    ("aave", 30, 1.06),
    ("spark", 25, 1.1),
    ("aave", 40, 1.6),
)


Row = tuple[str, str, str, str, int, int, int]  # pool, user, collateral, debt, repaid, seized, proceeds


@dataclass(frozen=True)
class Devnet:
    deployment: Deployment
    uniswap: Uniswap
    inputs: Inputs
    predicted: CascadeResult
    outcome: ShockOutcome
    any_loss: CascadeResult  # a liquidator that does not check the sale pays for the debt
    batched: ShockOutcome  # the scenario's bots: a round's liquidations in one block, its sales in the next
    mixed_predicted: CascadeResult  # the feed as the scenario's ``--feedback`` feeds publish
    mixed: ShockOutcome
    timed: ShockOutcome  # the simulator's policy, blocks 12 s apart: interest accrues during the cascade
    cli: dict[str, Any]  # `chainrisk contagion simulate --json` once the protocol fees are set to 0
    unpaid: ShockOutcome  # the simulator's policy once the protocol fees are set to 0

    def run(self, oracle: str) -> tuple[ShockOutcome, CascadeResult]:
        """The bots' outcome and the simulator's prediction with the feed that follows the pool (``feed``)
        or the scenario's mix of the shocked price and the pool's (``mixed``)."""
        if oracle == "mixed":
            return self.mixed, self.mixed_predicted
        return self.outcome, self.predicted


def _book(node: Anvil, deployment: Deployment) -> None:
    """Lenders' USDC in both markets, then the book's accounts (supplied for them by the deployer)."""
    owner = deployment.deployer
    node.rpc("anvil_autoImpersonateAccount", [True])
    for symbol in ("USDC", "WETH"):
        token = deployment.token(symbol)
        token.transact(owner, "mint", owner, 10**30, gas=200_000)
        for market in deployment.markets:
            token.transact(owner, "approve", deployment.markets[market].pool, MAX_UINT, gas=100_000)
    usdc, weth = deployment.assets["USDC"], deployment.assets["WETH"]
    for market in deployment.markets:
        deployment.pool(market).transact(owner, "supply", usdc.token, LENDER_USDC * 10**6, owner, 0)
    for i, (market, units, health) in enumerate(BOOK):
        wallet = label_address(f"cascade-book-{i}")
        node.rpc("anvil_setBalance", [wallet, hex(10**20)])
        pool = deployment.pool(market)
        pool.transact(owner, "supply", weth.token, units * 10**18, wallet, 0)
        threshold = deployment.markets[market].reserves["WETH"].params.liquidation_threshold
        shocked = weth.initial_price * SHOCK
        debt_usd = units * shocked * threshold / 10_000 / Fraction(health)
        pool.transact(wallet, "borrow", usdc.token, int(debt_usd * 10**6 / USD), VARIABLE, 0, wallet)


def _index(db: str, node: Anvil, deployment: Deployment, uniswap: Uniswap) -> int:
    manifest = manifest_with_uniswap(deployment.to_manifest(), uniswap)
    config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": node.url})))
    with psycopg.connect(to_libpq_url(db)) as conn:
        sync_config(conn, config.chains, config.tokens, config.labels)
    run_plan(config_plan(config.chains[0], config.contracts, None, False), to_libpq_url(db))
    with psycopg.connect(to_libpq_url(db)) as conn:
        head = indexed_head(conn, CHAIN)
    assert head == int(node.rpc("eth_blockNumber"), 16)
    return head


def _with_fees(inputs: Inputs) -> Inputs:
    markets = tuple(
        replace(
            m, terms={a: ReserveTerms(t.liquidation_bonus_bps, PROTOCOL_FEE_BPS) for a, t in m.terms.items()}
        )
        for m in inputs.markets
    )
    return replace(inputs, markets=markets)


def _simulate(
    inputs: Inputs, weth: str, min_profit_usd: int = 0, oracles: Mapping[str, OracleModel] | None = None
) -> CascadeResult:
    return run_cascade(
        inputs.markets,
        inputs.pools,
        {**inputs.oracles, **(oracles or {})},
        {weth: SHOCK},
        min_profit_usd=min_profit_usd,
    )


def _without_protocol_fees(
    db: str, node: Anvil, deployment: Deployment, uniswap: Uniswap, rule: FeedRule, tmp: Path
) -> tuple[dict[str, Any], ShockOutcome]:
    """Every reserve's protocol fee set to 0 (what ``load_inputs`` assumes), the chain indexed again, then
    the command's prediction and the bots' outcome of the same shock."""
    for market in deployment.markets:
        for asset in deployment.assets.values():
            configurator = deployment.configurator(market)
            configurator.transact(deployment.deployer, "setLiquidationProtocolFee", asset.token, 0)
    head = _index(db, node, deployment, uniswap)
    (tmp / "chainrisk.toml").write_text("")
    env = {
        **os.environ,
        "CHAINRISK_DATABASE_URL": db,
        "CHAINRISK_HOME": str(tmp / "home"),
        "CHAINRISK_CONFIG": str(tmp / "chainrisk.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    shock = f"WETH={float(SHOCK - 1):.0%}"
    command = [sys.executable, "-m", "chainrisk", "contagion", "simulate", "--shock", shock, "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    assert document["block"] == head
    return document, apply_shock(deployment, uniswap, {"WETH": SHOCK}, feeds={"WETH": rule})


@pytest.fixture(scope="module")
def devnet(
    templates: dict[str, str], node_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Devnet]:
    from tests.conftest import _fresh_database

    tmp = tmp_path_factory.mktemp("cascade-chain")
    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home) as node:
            deployment = deploy_markets(node, node_home)
            uniswap = deploy_uniswap(
                deployment, node_home, pairs=(PairSpec("WETH", "USDC", 3_000, POOL_USD),), seed=5
            )
            _book(node, deployment)
            head = _index(db, node, deployment, uniswap)
            with psycopg.connect(to_libpq_url(db)) as conn:
                inputs = _with_fees(load_inputs(conn, CHAIN, head, "3.0", "feed"))
            weth = deployment.assets["WETH"].token.lower()
            predicted = _simulate(inputs, weth)
            feed = inputs.oracles[weth]
            assert feed.kind == "feed" and feed.quote is not None
            rule = FeedRule("USDC", feed.deviation_bps, feed.heartbeat_s)
            mixed_rule = replace(rule, feedback=FEEDBACK)
            outcomes = []
            for feeds, policy in (
                (rule, BotPolicy()),
                (rule, BotPolicy("batched")),
                (mixed_rule, BotPolicy()),
                (rule, BotPolicy(block_seconds=BLOCK_SECONDS)),
            ):
                before = node.rpc("evm_snapshot")
                outcomes.append(
                    apply_shock(deployment, uniswap, {"WETH": SHOCK}, feeds={"WETH": feeds}, policy=policy)
                )
                node.rpc("evm_revert", [before])
            any_loss = _simulate(inputs, weth, min_profit_usd=ANY_LOSS)
            mixed = replace(feed, kind="mixed", feedback=FEEDBACK)
            mixed_predicted = _simulate(inputs, weth, oracles={weth: mixed})
            cli, unpaid = _without_protocol_fees(db, node, deployment, uniswap, rule, tmp)
            yield Devnet(
                deployment,
                uniswap,
                inputs,
                predicted,
                outcomes[0],
                any_loss,
                outcomes[1],
                mixed_predicted,
                outcomes[2],
                outcomes[3],
                cli,
                unpaid,
            )


# ------------------------------------------------------------------------------------------- helpers


def _token(devnet: Devnet, symbol: str) -> str:
    return devnet.deployment.assets[symbol].token.lower()


def _chain_rounds(devnet: Devnet) -> list[list[Row]]:
    return _chain_rounds_of(devnet, devnet.outcome)


def _chain_rounds_of(devnet: Devnet, outcome: ShockOutcome) -> list[list[Row]]:
    return [
        [
            (
                *(x.pool, x.user.lower(), _token(devnet, x.collateral), _token(devnet, x.debt)),
                *(x.debt_repaid, x.collateral_seized, x.proceeds),
            )
            for x in r.liquidations
        ]
        for r in outcome.rounds
    ]


def _predicted_rounds(result: CascadeResult) -> list[list[Row]]:
    return [
        [
            (
                *(x.market.lower(), x.user.lower(), x.collateral_asset.lower(), x.debt_asset.lower()),
                *(x.debt_repaid, x.collateral_seized, x.proceeds),
            )
            for x in r.liquidations
        ]
        for r in result.rounds
    ]


# ------------------------------------------------------------------------------------------- tests


ORACLES = ["feed", "mixed"]


@pytest.mark.parametrize("oracle", ORACLES)
def test_the_bots_liquidate_what_the_simulator_predicts_round_by_round(devnet: Devnet, oracle: str) -> None:
    outcome, result = devnet.run(oracle)
    chain, predicted = _chain_rounds_of(devnet, outcome), _predicted_rounds(result)
    counts = [len(r) for r in chain], [len(r) for r in predicted]
    print(f"\n{oracle}: liquidations per round, chain {counts[0]}, simulator {counts[1]}")
    assert chain == predicted
    assert outcome.depth >= 3  # a cascade: the feed followed the pool down, twice at least
    # Some accounts under 1 were left alone for a round because the sale would not pay for the debt.
    assert any(r.left_alone for r in outcome.rounds[:1])


@pytest.mark.parametrize("oracle", ORACLES)
def test_final_pool_price_and_feed_answers_are_the_simulators(devnet: Devnet, oracle: str) -> None:
    outcome, result = devnet.run(oracle)
    pools = {
        name: result.pool_prices[(pool.token0.lower(), pool.token1.lower())]
        for name, pool in devnet.uniswap.pools.items()
    }
    assert outcome.pool_prices == pools
    answers = {s: result.oracle_prices[_token(devnet, s)] for s in devnet.deployment.assets}
    assert outcome.oracle_prices == answers
    shocked = devnet.deployment.assets["WETH"].initial_price * SHOCK
    assert answers["WETH"] < shocked * Fraction(97, 100)  # the feed ended below the shock
    for chain, predicted in zip(outcome.rounds, result.rounds, strict=True):
        assert chain.oracle_prices == {s: predicted.oracle_prices[_token(devnet, s)] for s in answers}


@pytest.mark.parametrize("oracle", ORACLES)
def test_accounts_left_and_bad_debt_are_the_simulators(devnet: Devnet, oracle: str) -> None:
    outcome, result = devnet.run(oracle)
    markets = {name: m.pool.lower() for name, m in devnet.deployment.markets.items()}
    symbols = {_token(devnet, s): s for s in devnet.deployment.assets}
    for (market, user), held in outcome.positions.items():
        reserves = result.positions[markets[market]][user.lower()]
        collateral = {symbols[r.asset]: r.scaled_atoken_balance for r in reserves if r.scaled_atoken_balance}
        debt = {symbols[r.asset]: r.scaled_vdebt_balance for r in reserves if r.scaled_vdebt_balance}
        assert (held.scaled_collateral, held.scaled_debt) == (collateral, debt), (market, user)
    assert len(outcome.positions) == len(BOOK)
    bad_debt = {(m, symbols[a]): v for (m, a), v in result.bad_debt.items()}
    assert {(markets[m], s): v for (m, s), v in outcome.bad_debt.items()} == bad_debt
    assert sum(outcome.bad_debt.values()) > 0


def test_the_scenarios_feeds_follow_the_pool_less_far(devnet: Devnet) -> None:
    """Half the pool's weight in the feed: a cascade still, but shallower and with a higher last price."""
    weth = "WETH"
    assert devnet.mixed.oracle_prices[weth] > devnet.outcome.oracle_prices[weth]
    assert 1 < devnet.mixed.depth < devnet.outcome.depth


def test_without_feeds_following_the_pool_the_simulator_stops_after_one_round(devnet: Devnet) -> None:
    weth = _token(devnet, "WETH")
    fixed = _simulate(devnet.inputs, weth, oracles={weth: OracleModel(devnet.inputs.oracles[weth].price)})
    assert fixed.depth == 1 < devnet.outcome.depth
    assert _predicted_rounds(fixed)[:1] == _chain_rounds(devnet)[:1]
    assert fixed.bad_debt != devnet.predicted.bad_debt


# Tolerances for the scenario's bots, which sell a round's collateral in another order than the simulator:
# each swap rounds its price up and its output down, so the pool may end a unit of sqrtPriceX96 per sale
# away, the feed a unit (1e-8 USD) away, and what follows from the feed's price (collateral seized, bad
# debt, what the sales bring in a round) a relative 1e-9. Measured: all equal, to the wei.
SQRT_PRICE_UNITS_PER_SALE = 1
FEED_UNITS = 1
RELATIVE = Fraction(1, 10**9)


def _close(got: int, want: int) -> bool:
    return abs(got - want) <= RELATIVE * abs(want)


def test_the_scenarios_bots_differ_only_in_the_order_of_their_sales(devnet: Devnet) -> None:
    chain, predicted = _chain_rounds_of(devnet, devnet.batched), _predicted_rounds(devnet.any_loss)
    assert [sorted(x[:4] for x in r) for r in chain] == [sorted(x[:4] for x in r) for r in predicted]
    assert [x[:4] for x in chain[0]] != [x[:4] for x in predicted[0]]  # another order within the block
    spread = Fraction(0)
    for got, want in zip(chain, predicted, strict=True):
        by_account = {x[:2]: x for x in got}
        for row in want:
            match = by_account[row[:2]]
            assert match[4] == row[4] and _close(match[5], row[5]), row[:2]
            spread = max(spread, abs(Fraction(match[6] - row[6], row[6])))
        assert _close(sum(x[6] for x in got), sum(x[6] for x in want))
    print(f"\nper-sale proceeds differ by up to {float(spread):.2%}; each round's total by < 1e-9")
    assert spread > 0  # the order of the sales did change what each one brought
    sales = sum(len(r) for r in chain)
    for name, pool in devnet.uniswap.pools.items():
        simulated = devnet.any_loss.pool_prices[(pool.token0.lower(), pool.token1.lower())]
        assert abs(devnet.batched.pool_prices[name] - simulated) <= SQRT_PRICE_UNITS_PER_SALE * sales
    for symbol, answer in devnet.batched.oracle_prices.items():
        assert abs(answer - devnet.any_loss.oracle_prices[_token(devnet, symbol)]) <= FEED_UNITS
    markets = {name: m.pool.lower() for name, m in devnet.deployment.markets.items()}
    bad_debt = {(markets[m], _token(devnet, s)): v for (m, s), v in devnet.batched.bad_debt.items()}
    assert bad_debt.keys() == devnet.any_loss.bad_debt.keys()
    assert all(_close(v, devnet.any_loss.bad_debt[k]) for k, v in bad_debt.items())


def test_a_liquidator_that_checks_its_profit_is_another_cascade(devnet: Devnet) -> None:
    """The profit check matters here: the scenario's bots liquidate in round one what the simulator's
    liquidator (and the one-by-one bots) leave for later, because selling it would not pay the debt."""
    batched = _chain_rounds_of(devnet, devnet.batched)
    assert [len(r) for r in batched] != [len(r) for r in _chain_rounds(devnet)]
    assert len(batched[0]) > len(_predicted_rounds(devnet.predicted)[0])


@pytest.mark.parametrize(
    ("shock", "feeds", "needle"),
    [
        ({"DOGE": SHOCK}, {}, "shock for DOGE: not a devnet asset"),
        ({"WETH": Fraction(0)}, {}, "shock for WETH: expected a positive factor, got 0"),
        ({"WETH": SHOCK}, {"WETH": FeedRule("DAI")}, "feed WETH: no WETH/DAI pool to follow"),
        ({"WETH": SHOCK}, {"WETH": FeedRule("USDC", feedback=2.0)}, r"feedback is a weight in \[0, 1\]"),
    ],
)
def test_a_shock_that_does_not_fit_the_devnet_is_refused_before_anything_is_sent(
    devnet: Devnet, shock: dict[str, Fraction], feeds: dict[str, FeedRule], needle: str
) -> None:
    head = devnet.deployment.rpc.rpc("eth_blockNumber")
    with pytest.raises(ShockError, match=needle):
        apply_shock(devnet.deployment, devnet.uniswap, shock, feeds=feeds)
    assert devnet.deployment.rpc.rpc("eth_blockNumber") == head


def test_without_the_protocol_fee_the_prediction_is_another_cascade(devnet: Devnet) -> None:
    """The fee is not among the indexed events, so ``load_inputs`` takes it as 0: on this book that gives
    the liquidator 0.5 % more collateral, more selling, and a different cascade from round three on."""
    weth = _token(devnet, "WETH")
    markets = tuple(
        replace(m, terms={a: replace(t, protocol_fee_bps=0) for a, t in m.terms.items()})
        for m in devnet.inputs.markets
    )
    unpaid = _predicted_rounds(_simulate(replace(devnet.inputs, markets=markets), weth))
    chain = _chain_rounds(devnet)
    assert [x[:5] for x in unpaid[0]] == [x[:5] for x in chain[0]]  # the same calls, the same debt repaid
    assert all(x[5] > y[5] for x, y in zip(unpaid[0], chain[0], strict=True))  # more collateral seized
    assert [[x[:2] for x in r] for r in unpaid] != [[x[:2] for x in r] for r in chain]


def _interest_bound(devnet: Devnet, elapsed_s: int) -> Fraction:
    """Twice the largest relative interest any debt of the book accrues over ``elapsed_s`` (simple, at the
    largest variable rate at the shock's block): how far blocks that take time can move the amounts."""
    rate = max(
        r.variable_borrow_rate for m in devnet.inputs.markets for rs in m.positions.values() for r in rs
    )
    return 2 * Fraction(rate * elapsed_s, 10**27 * 365 * 86_400)


def test_blocks_twelve_seconds_apart_move_the_amounts_by_the_interest_only(devnet: Devnet) -> None:
    """The simulator holds indices and rates fixed; bots whose blocks come 12 s apart pay the interest
    accrued meanwhile. Tolerance: twice the largest rate times the elapsed time, relative, on every amount
    and price, and on bad debt relative to all the book's debt. Measured over 540 s: at most 8e-7 (the
    bound is 1.7e-6); the same accounts, in the same order, every round."""
    timed, predicted = devnet.timed, devnet.predicted
    bound = _interest_bound(devnet, timed.elapsed_s)
    assert timed.elapsed_s >= BLOCK_SECONDS * sum(len(r.liquidations) for r in timed.rounds)
    chain, want = _chain_rounds_of(devnet, timed), _predicted_rounds(predicted)
    assert [[x[:4] for x in r] for r in chain] == [[x[:4] for x in r] for r in want]
    worst = Fraction(0)
    for got, row in zip((x for r in chain for x in r), (x for r in want for x in r), strict=True):
        for a, b in zip(got[4:], row[4:], strict=True):
            worst = max(worst, abs(Fraction(a - b, b)))
    print(f"\nover {timed.elapsed_s} s amounts move by up to {float(worst):.1e} (bound {float(bound):.1e})")
    assert 0 < worst <= bound  # time did pass, and no more than the interest allows
    for name, pool in devnet.uniswap.pools.items():
        simulated = predicted.pool_prices[(pool.token0.lower(), pool.token1.lower())]
        assert abs(timed.pool_prices[name] - simulated) <= bound * simulated
    for symbol, answer in timed.oracle_prices.items():
        assert abs(answer - predicted.oracle_prices[_token(devnet, symbol)]) <= bound * answer
    book_debt = sum(r[4] for r in (x for r in want for x in r)) + sum(predicted.bad_debt.values())
    markets = {name: m.pool.lower() for name, m in devnet.deployment.markets.items()}
    bad_debt = {(markets[m], _token(devnet, s)): v for (m, s), v in timed.bad_debt.items()}
    assert bad_debt.keys() == predicted.bad_debt.keys()
    assert all(abs(v - predicted.bad_debt[k]) <= bound * book_debt for k, v in bad_debt.items())


def test_the_contagion_command_predicts_the_chain_when_the_protocol_fee_is_zero(devnet: Devnet) -> None:
    """`chainrisk contagion simulate --shock WETH=-35% --json` on the index, the fees set to 0 on chain
    (the command takes them as 0): its liquidations, pool price and bad debt are the bots'."""
    document, outcome = devnet.cli, devnet.unpaid
    got = [
        [(x.pool, x.user.lower(), x.debt_repaid, x.collateral_seized) for x in r.liquidations]
        for r in outcome.rounds
    ]
    want = [
        [
            (x["market"], x["wallet"], int(x["debt_repaid"]), int(x["collateral_seized"]))
            for x in r["liquidations"]
        ]
        for r in document["rounds"]
    ]
    assert got == want and document["depth"] == outcome.depth >= 3
    assert all(x["protocol_fee"] == "0" for r in document["rounds"] for x in r["liquidations"])
    pools = {(p["token0"], p["token1"]): int(p["sqrt_price_x96"]) for p in document["pool_prices"]}
    for name, pool in devnet.uniswap.pools.items():
        assert outcome.pool_prices[name] == pools[(pool.token0.lower(), pool.token1.lower())]
    markets = {name: m.pool.lower() for name, m in devnet.deployment.markets.items()}
    bad_debt = {(x["market"], x["symbol"]): int(x["amount"]) for x in document["bad_debt"]}
    assert {(markets[m], s): v for (m, s), v in outcome.bad_debt.items()} == bad_debt
