"""graph.liquidation (rules "3.0") predicts the devnet's liquidationCall results to the wei.

Both Aave v3 markets (the published ``@aave/core-v3`` 1.19 contracts) run on one anvil, with liquidation
protocol fees set per reserve through the PoolConfigurator (some zero). Each round opens a batch of
randomised positions (collateral/debt pairs in both markets, a share in eMode, all in one block), moves
every price feed by its own random factor, lets up to 60 days pass, then liquidates, in one block, every
position the maths says is liquidatable: a random ``debtToCover`` (everything, the largest that does not
revert, or a random part), ``receiveAToken`` either way. Each call is predicted from the chain's state
before that block and compared field by field with its receipt (``LiquidationCall``, the fee transfer to
the treasury, what the liquidator received) and the user's scaled balances and flags read after.

A second test predicts from the index instead: the chain is indexed into PostgreSQL and each call is
predicted by ``liquidate_in_market`` on the ``MarketState`` rebuilt from events at the liquidation's time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eth_utils.crypto import keccak

from chainrisk.db import to_libpq_url
from devnet.aave import EMODE_ETH, Deployment, deploy_markets
from devnet.anvil import Anvil
from graph.liquidation import (
    MAX_UINT,
    Liquidation,
    LiquidationReverted,
    ReserveTerms,
    liquidate,
    liquidate_in_market,
    max_debt_to_cover,
)
from indexer.config import ChainConfig, ContractConfig
from indexer.lending.positions import market_state
from indexer.protocols.aave_math import EModeCategory, UserReserve
from indexer.runner import config_plan, run_plan

pytestmark = pytest.mark.slow

SEED = 20_260_430
WALLETS_PER_ROUND = 90
MIN_COMPARED = 200
MAX_ROUNDS = 8
MIN_INDEXED = 60
VARIABLE = 2
USD = 10**8
# Protocol fee (bps of the bonus) per market and reserve, set through the configurator; zeros included.
FEES = {
    "aave": {"WETH": 0, "WBTC": 1_000, "wstETH": 2_500, "USDC": 500, "DAI": 0},
    "spark": {"WETH": 1_500, "WBTC": 0, "wstETH": 1_000, "USDC": 0, "DAI": 3_000},
}
LIQUIDITY_USD = 40_000_000
# The spark market's eMode category gets this asset as its price source (aave's has none).
PRICE_SOURCE = "WETH"
EMODE_PRICED = {"spark"}
FIELDS = (
    "debt_repaid",
    "collateral_to_liquidator",
    "protocol_fee",
    "treasury_scaled_atoken",
    "liquidator_received",
    "scaled_collateral_after",
    "scaled_debt_after",
    "collateral_disabled",
    "debt_cleared",
)


def _topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


LIQUIDATION_CALL = _topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)")
TRANSFER = _topic("Transfer(address,address,uint256)")
BALANCE_TRANSFER = _topic("BalanceTransfer(address,address,uint256,uint256)")


@dataclass
class Position:
    wallet: str
    market: str
    collateral: str
    debt: str
    emode: bool


@dataclass
class Planned:
    position: Position
    debt_to_cover: int
    receive_a_token: bool
    predicted: Liquidation | None
    revert_code: str = ""
    tx_hash: str = ""


@pytest.fixture(scope="module")
def chain(node_home: Path) -> Iterator[tuple[Anvil, Deployment]]:
    """One anvil and one deployment for the module; fees configured, liquidity and a liquidator funded."""
    with Anvil(node_home) as node:
        deployment = deploy_markets(node, node_home)
        prepare(node, deployment)
        yield node, deployment


def prepare(node: Anvil, deployment: Deployment) -> None:
    """Protocol fees and the eMode price source set; transactions batched into blocks from here on."""
    for market, fees in FEES.items():
        for symbol, bps in fees.items():
            token = deployment.assets[symbol].token
            deployment.configurator(market).transact(
                deployment.deployer, "setLiquidationProtocolFee", token, bps
            )
    _price_emode_by_weth(deployment, "spark")
    node.rpc("anvil_autoImpersonateAccount", [True])
    node.rpc("evm_setAutomine", [False])


def _price_emode_by_weth(deployment: Deployment, market: str) -> None:
    """A v3.0 category price source: every asset of the market's ETH category priced as WETH."""
    emode = deployment.markets[market].emodes[0]
    deployment.configurator(market).transact(
        deployment.deployer,
        "setEModeCategory",
        emode.category_id,
        emode.ltv,
        emode.liquidation_threshold,
        emode.liquidation_bonus,
        deployment.assets[PRICE_SOURCE].token,
        emode.label,
    )


def _units(deployment: Deployment, symbol: str, usd: float, price: int) -> int:
    return int(usd * USD * 10 ** deployment.assets[symbol].decimals // price)


def _mine(node: Anvil, hashes: list[str], timestamp: int | None = None) -> dict[str, dict[str, Any]]:
    """Mine everything queued into one block; the receipts of ``hashes`` by hash."""
    if timestamp is not None:
        node.rpc("evm_setNextBlockTimestamp", [timestamp])
    node.rpc("evm_mine")
    block = node.rpc("eth_getBlockByNumber", ["latest", False])
    receipts = {r["transactionHash"]: r for r in node.rpc("eth_getBlockReceipts", [block["hash"]])}
    missing = [h for h in hashes if h not in receipts]
    assert not missing, f"{len(missing)} transactions did not fit the block"
    return receipts


def _fund(node: Anvil, deployment: Deployment, liquidator: str) -> None:
    """Liquidity in every reserve of both markets, and a liquidator holding every token."""
    owner, hashes = deployment.deployer, []
    for symbol, asset in deployment.assets.items():
        token = deployment.token(symbol)
        amount = _units(deployment, symbol, LIQUIDITY_USD, asset.initial_price)
        hashes.append(token.send(owner, "mint", owner, 4 * amount))
        hashes.append(token.send(liquidator, "mint", liquidator, 10 * amount))
        for market in deployment.markets:
            pool = deployment.pool(market).address
            hashes.append(token.send(owner, "approve", pool, MAX_UINT))
            hashes.append(token.send(liquidator, "approve", pool, MAX_UINT))
    receipts = _mine(node, hashes)
    hashes = []
    for market in deployment.markets:
        for symbol, asset in deployment.assets.items():
            amount = _units(deployment, symbol, LIQUIDITY_USD, asset.initial_price)
            hashes.append(deployment.pool(market).send(owner, "supply", asset.token, amount, owner, 0))
    receipts |= _mine(node, hashes)
    assert all(r["status"] == "0x1" for r in receipts.values())


def _reset_prices(node: Anvil, deployment: Deployment) -> None:
    hashes = [
        deployment.price_feed(s).send(deployment.deployer, "setAnswer", a.initial_price, gas=200_000)
        for s, a in deployment.assets.items()
    ]
    _mine(node, hashes)


def _draw_position(rng: random.Random, wallet: str, deployment: Deployment) -> Position:
    market = rng.choice(sorted(deployment.markets))
    category = set(deployment.markets[market].emodes[0].assets)
    symbols = sorted(deployment.assets)
    if rng.random() < 0.3:
        debt = rng.choice(sorted(category))
        collateral = rng.choice([s for s in symbols if s != debt])
        return Position(wallet, market, collateral, debt, True)
    collateral = rng.choice(symbols)
    debt = rng.choice([s for s in symbols if s != collateral])
    return Position(wallet, market, collateral, debt, False)


def _price(deployment: Deployment, position: Position, symbol: str) -> int:
    """The starting price the Pool uses for ``symbol`` in this position (v3.0 category price source)."""
    category = deployment.markets[position.market].emodes[0].assets
    priced = position.emode and position.market in EMODE_PRICED
    if priced and (symbol == position.debt or symbol in category):
        return deployment.assets[PRICE_SOURCE].initial_price
    return deployment.assets[symbol].initial_price


def _ltv(deployment: Deployment, position: Position) -> int:
    emode = deployment.markets[position.market].emodes[0]
    if position.emode and position.collateral in emode.assets:
        return emode.ltv
    return deployment.markets[position.market].reserves[position.collateral].params.ltv


def _open(node: Anvil, deployment: Deployment, rng: random.Random, round_no: int) -> list[Position]:
    """A batch of wallets, each with one collateral and one variable debt, opened in two blocks."""
    owner = deployment.deployer
    positions = []
    supplies = []
    for i in range(WALLETS_PER_ROUND):
        wallet = "0x" + keccak(text=f"liquidation-wallet-{SEED}-{round_no}-{i}").hex()[-40:]
        node.rpc("anvil_setBalance", [wallet, hex(10**20)])
        position = _draw_position(rng, wallet, deployment)
        usd = rng.uniform(2_500, 60_000)
        price = deployment.assets[position.collateral].initial_price
        amount = _units(deployment, position.collateral, usd, price)
        pool = deployment.pool(position.market)
        supplies.append(
            pool.send(owner, "supply", deployment.assets[position.collateral].token, amount, wallet, 0)
        )
        if position.emode:
            supplies.append(pool.send(wallet, "setUserEMode", EMODE_ETH))
        # What the Pool values the collateral at: the category price where the category has a source.
        positions.append((position, usd * _price(deployment, position, position.collateral) / price))
    assert all(r["status"] == "0x1" for r in _mine(node, supplies).values())
    borrows = []
    for position, usd in positions:
        borrowed_usd = usd * _ltv(deployment, position) / 10_000 * rng.uniform(0.85, 0.995)
        debt = deployment.assets[position.debt]
        amount = _units(deployment, position.debt, borrowed_usd, _price(deployment, position, position.debt))
        pool = deployment.pool(position.market)
        borrows.append(pool.send(position.wallet, "borrow", debt.token, amount, VARIABLE, 0, position.wallet))
    receipts = _mine(node, borrows)
    opened = [p for (p, _), h in zip(positions, borrows, strict=True) if receipts[h]["status"] == "0x1"]
    assert len(opened) >= 0.95 * len(positions), "borrows failed"
    return opened


def _shock(node: Anvil, deployment: Deployment, rng: random.Random) -> None:
    hashes = [
        deployment.price_feed(s).send(
            deployment.deployer, "setAnswer", int(a.initial_price * rng.uniform(0.45, 1.15)), gas=200_000
        )
        for s, a in deployment.assets.items()
    ]
    _mine(node, hashes)


# ------------------------------------------------------------------------------------ chain state


@dataclass(frozen=True)
class ReserveRead:
    configuration: int
    liquidity_index: int
    liquidity_rate: int
    variable_borrow_index: int
    variable_borrow_rate: int
    last_update: int
    reserve_id: int


def _reserves(deployment: Deployment) -> dict[tuple[str, str], ReserveRead]:
    out = {}
    for market in deployment.markets:
        pool = deployment.pool(market)
        for symbol, asset in deployment.assets.items():
            data = pool.call("getReserveData", asset.token)
            out[market, symbol] = ReserveRead(
                int(data[0][0]),
                int(data[1]),
                int(data[2]),
                int(data[3]),
                int(data[4]),
                int(data[6]),
                int(data[7]),
            )
    return out


def _user_reserves(
    deployment: Deployment,
    position: Position,
    reserves: dict[tuple[str, str], ReserveRead],
    prices: dict[str, int],
    now: int,
) -> list[UserReserve]:
    market = deployment.markets[position.market]
    flags = int(deployment.pool(position.market).call("getUserConfiguration", position.wallet)[0])
    out = []
    for symbol in (position.collateral, position.debt):
        state, params = reserves[position.market, symbol], market.reserves[symbol].params
        out.append(
            UserReserve(
                asset=deployment.assets[symbol].token,
                decimals=deployment.assets[symbol].decimals,
                price=prices[symbol],
                scaled_atoken_balance=int(
                    deployment.a_token(position.market, symbol).call("scaledBalanceOf", position.wallet)
                ),
                scaled_vdebt_balance=int(
                    deployment.v_token(position.market, symbol).call("scaledBalanceOf", position.wallet)
                ),
                liquidity_index=state.liquidity_index,
                variable_borrow_index=state.variable_borrow_index,
                liquidity_rate=state.liquidity_rate,
                variable_borrow_rate=state.variable_borrow_rate,
                last_update_timestamp=state.last_update,
                now_timestamp=now,
                ltv_bps=params.ltv,
                liquidation_threshold_bps=params.liquidation_threshold,
                usage_as_collateral_enabled=bool(flags >> (2 * state.reserve_id + 1) & 1),
                emode_category=EMODE_ETH if symbol in market.emodes[0].assets else 0,
            )
        )
    return out


def _terms(deployment: Deployment, market: str) -> dict[str, ReserveTerms]:
    return {
        deployment.assets[s].token: ReserveTerms(r.params.liquidation_bonus, FEES[market][s])
        for s, r in deployment.markets[market].reserves.items()
    }


def _plan(
    deployment: Deployment,
    position: Position,
    reserves: list[UserReserve],
    prices: dict[str, int],
    rng: random.Random,
) -> Planned | None:
    """The call to make and its prediction (None: it reverts); some healthy positions are tried too."""
    emode_spec = deployment.markets[position.market].emodes[0]
    price = prices[PRICE_SOURCE] if position.market in EMODE_PRICED else 0
    emode = (
        EModeCategory(EMODE_ETH, emode_spec.ltv, emode_spec.liquidation_threshold, price)
        if position.emode
        else None
    )
    collateral, debt = (deployment.assets[s].token for s in (position.collateral, position.debt))
    terms = _terms(deployment, position.market)

    def call(amount: int, receive: bool) -> Liquidation:
        return liquidate(
            reserves, collateral, debt, amount, terms,
            rules="3.0", emode=emode, emode_bonus_bps=emode_spec.liquidation_bonus, receive_a_token=receive,
        )  # fmt: skip

    try:
        largest = max_debt_to_cover(
            reserves, collateral, debt, terms, emode=emode, emode_bonus_bps=emode_spec.liquidation_bonus
        )
    except LiquidationReverted as exc:
        assert exc.code == "45"
        # A quarter of the healthy positions are tried anyway: the chain must refuse them.
        return Planned(position, MAX_UINT, False, None, exc.code) if rng.random() < 0.25 else None
    amount = _amount(rng, largest)
    receive = rng.random() < 0.4
    try:
        return Planned(position, amount, receive, call(amount, receive))
    except LiquidationReverted as exc:
        return Planned(position, amount, receive, None, exc.code)


def _amount(rng: random.Random, largest: int) -> int:
    pick = rng.random()
    if pick < 0.35:
        return MAX_UINT
    if pick < 0.5:
        return largest
    if pick < 0.55:
        return rng.randint(1, 1_000)  # a few wei: no collateral to burn, the Pool reverts unless aTokens
    return max(1, int(largest * rng.uniform(0.01, 1.3)))


# ------------------------------------------------------------------------------------ observed


def _word(data: str, i: int) -> int:
    return int(data[2 + 64 * i : 2 + 64 * (i + 1)], 16)


def _address_topic(address: str) -> str:
    return "0x" + "00" * 12 + address.removeprefix("0x").lower()


def _logs(receipt: dict[str, Any], address: str, topic0: str, *topics: str) -> list[dict[str, Any]]:
    return [
        log
        for log in receipt["logs"]
        if log["address"].lower() == address.lower()
        and log["topics"][0] == topic0
        and [t.lower() for t in log["topics"][1 : 1 + len(topics)]] == list(topics)
    ]


def _flags(
    deployment: Deployment, plan: Planned, reserves: dict[tuple[str, str], ReserveRead]
) -> dict[str, int]:
    """The user's configuration bits after the call: collateral flag off, borrowing flag off."""
    position = plan.position
    flags = int(deployment.pool(position.market).call("getUserConfiguration", position.wallet)[0])
    collateral_id = reserves[position.market, position.collateral].reserve_id
    debt_id = reserves[position.market, position.debt].reserve_id
    return {
        "collateral_disabled": int(not flags >> (2 * collateral_id + 1) & 1),
        "debt_cleared": int(not flags >> (2 * debt_id) & 1),
    }


def _observed(
    deployment: Deployment, plan: Planned, receipt: dict[str, Any], liquidator: str
) -> dict[str, int]:
    position = plan.position
    market = deployment.markets[position.market]
    a_token = market.reserves[position.collateral].a_token
    user, treasury, to = (_address_topic(a) for a in (position.wallet, deployment.deployer, liquidator))
    (call,) = _logs(receipt, market.pool, LIQUIDATION_CALL)
    fee = _logs(receipt, a_token, TRANSFER, user, treasury)
    fee_scaled = _logs(receipt, a_token, BALANCE_TRANSFER, user, treasury)
    if plan.receive_a_token:
        received = _logs(receipt, a_token, BALANCE_TRANSFER, user, to)
    else:
        received = _logs(
            receipt, deployment.assets[position.collateral].token, TRANSFER, _address_topic(a_token), to
        )
    return {
        "debt_repaid": _word(call["data"], 0),
        "collateral_to_liquidator": _word(call["data"], 1),
        "protocol_fee": _word(fee[0]["data"], 0) if fee else 0,
        "treasury_scaled_atoken": _word(fee_scaled[0]["data"], 0) if fee_scaled else 0,
        "liquidator_received": _word(received[0]["data"], 0),
        "scaled_collateral_after": int(
            deployment.a_token(position.market, position.collateral).call("scaledBalanceOf", position.wallet)
        ),
        "scaled_debt_after": int(
            deployment.v_token(position.market, position.debt).call("scaledBalanceOf", position.wallet)
        ),
    }


def _expected(plan: Planned) -> dict[str, int]:
    out = plan.predicted
    assert out is not None
    received = out.liquidator_scaled_atoken if plan.receive_a_token else out.collateral_to_liquidator
    return {name: int(getattr(out, name)) for name in FIELDS if name != "liquidator_received"} | {
        "liquidator_received": received
    }


# ------------------------------------------------------------------------------------ the test


def _send_liquidation(deployment: Deployment, plan: Planned, liquidator: str) -> str:
    position = plan.position
    return deployment.pool(position.market).send(
        liquidator,
        "liquidationCall",
        deployment.assets[position.collateral].token,
        deployment.assets[position.debt].token,
        position.wallet,
        plan.debt_to_cover,
        plan.receive_a_token,
    )


def _round(
    node: Anvil, deployment: Deployment, rng: random.Random, round_no: int, liquidator: str
) -> tuple[list[Planned], dict[str, dict[str, Any]], dict[tuple[str, str], ReserveRead]]:
    _reset_prices(node, deployment)
    positions = _open(node, deployment, rng, round_no)
    _shock(node, deployment, rng)
    reserves = _reserves(deployment)
    prices = {s: deployment.price(s) for s in deployment.assets}
    latest = node.rpc("eth_getBlockByNumber", ["latest", False])
    now = int(latest["timestamp"], 16) + rng.randint(12, 60 * 86_400)
    plans = []
    for position in positions:
        user_reserves = _user_reserves(deployment, position, reserves, prices, now)
        plan = _plan(deployment, position, user_reserves, prices, rng)
        if plan is None:
            continue
        plan.tx_hash = _send_liquidation(deployment, plan, liquidator)
        plans.append(plan)
    return plans, _mine(node, [p.tx_hash for p in plans], now), reserves


def test_liquidations_predicted_to_the_wei(chain: tuple[Anvil, Deployment]) -> None:
    node, deployment = chain
    started = time.monotonic()
    rng = random.Random(SEED)
    liquidator = node.accounts()[1]
    _fund(node, deployment, liquidator)
    equal = dict.fromkeys(FIELDS, 0)
    compared = 0
    reverts: dict[str, int] = {}
    kinds: dict[str, int] = {
        "partial": 0,
        "whole debt": 0,
        "whole collateral": 0,
        "eMode": 0,
        "eMode price source": 0,
        "aToken": 0,
    }
    mismatches: list[str] = []
    for round_no in range(MAX_ROUNDS):
        plans, receipts, reserves = _round(node, deployment, rng, round_no, liquidator)
        for plan in plans:
            receipt = receipts[plan.tx_hash]
            if plan.predicted is None:
                assert receipt["status"] == "0x0", f"predicted a revert, the chain liquidated {plan.position}"
                reverts[plan.revert_code] = reverts.get(plan.revert_code, 0) + 1
                continue
            assert receipt["status"] == "0x1", (
                f"the chain reverted a predicted liquidation of {plan.position}"
            )
            observed = _observed(deployment, plan, receipt, liquidator) | _flags(deployment, plan, reserves)
            expected = _expected(plan)
            compared += 1
            for name in FIELDS:
                if observed[name] == expected[name]:
                    equal[name] += 1
                else:
                    mismatches.append(
                        f"{plan.position} {name}: chain {observed[name]}, predicted {expected[name]}"
                    )
            _count(kinds, plan)
        if compared >= MIN_COMPARED:
            break
    elapsed = time.monotonic() - started
    print(f"\n{compared} liquidations compared in {elapsed:.1f} s, reverts (by code): {reverts}")
    print(f"equal to the wei per field: {equal}; kinds: {kinds}")
    assert not mismatches, "\n".join(mismatches[:20])
    assert compared >= MIN_COMPARED
    assert all(v > 0 for v in kinds.values()), kinds
    assert set(reverts) == {"25", "45"}, reverts  # a zero burn, a healthy position


def _count(kinds: dict[str, int], plan: Planned) -> None:
    out = plan.predicted
    assert out is not None
    if out.collateral_disabled:
        kinds["whole collateral"] += 1
    elif out.debt_cleared:
        kinds["whole debt"] += 1
    else:
        kinds["partial"] += 1
    kinds["eMode"] += plan.position.emode
    kinds["eMode price source"] += plan.position.emode and plan.position.market in EMODE_PRICED
    kinds["aToken"] += plan.receive_a_token


# ------------------------------------------------------------------------------- from the index


def _contracts(deployment: Deployment) -> list[ContractConfig]:
    """Pools, configurators, oracles, a/variable-debt tokens and price feeds of both markets."""
    found: list[tuple[str, str, str]] = []
    for name, market in deployment.markets.items():
        found += [
            (f"{name}-pool", market.pool, "aave_v3_pool"),
            (f"{name}-configurator", market.pool_configurator, "aave_v3_configurator"),
            (f"{name}-oracle", market.oracle, "aave_oracle"),
        ]
        for symbol, reserve in market.reserves.items():
            found.append((f"{name}-a{symbol}", reserve.a_token, "aave_v3_token"))
            found.append((f"{name}-variable-debt-{symbol}", reserve.v_token, "aave_v3_token"))
    for symbol, asset in deployment.assets.items():
        found.append((f"feed-{symbol}", asset.price_feed, "price_aggregator"))
    start = deployment.start_block
    return [ContractConfig(name=n, chain="devnet", address=a, abi=k, start_block=start) for n, a, k in found]


def _indexed_plans(
    node: Anvil, deployment: Deployment, db_url: str, positions: list[Position], rng: random.Random
) -> tuple[list[Planned], int]:
    """Index the chain, then predict each liquidation from the MarketState at the liquidation's time."""
    chain = ChainConfig(
        name="devnet", chain_id=deployment.chain_id, rpc_urls=[node.url], poll_interval_s=0.05
    )
    head = run_plan(config_plan(chain, _contracts(deployment), stop=None, follow=False), to_libpq_url(db_url))
    now = int(node.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16) + rng.randint(
        12, 30 * 86_400
    )
    plans = []
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        states = {
            name: market_state(conn, chain.chain_id, market.pool, head.block_number, timestamp=now)
            for name, market in deployment.markets.items()
        }
    for position in positions:
        fees = {deployment.assets[s].token: bps for s, bps in FEES[position.market].items()}
        collateral, debt = (deployment.assets[s].token for s in (position.collateral, position.debt))
        state = states[position.market]
        if state.account_data(position.wallet).health_factor >= 10**18:
            continue
        # Under 3.0 rules the close-factor bound of a call with everything is the largest amount.
        largest = liquidate_in_market(state, position.wallet, collateral, debt, MAX_UINT, protocol_fees=fees)
        amount, receive = _amount(rng, largest.max_debt), rng.random() < 0.4
        try:
            predicted = liquidate_in_market(
                state, position.wallet, collateral, debt, amount, protocol_fees=fees, receive_a_token=receive
            )
        except LiquidationReverted as exc:
            plans.append(Planned(position, amount, receive, None, exc.code))
            continue
        plans.append(Planned(position, amount, receive, predicted))
    return plans, now


def test_liquidations_predicted_from_indexed_events(anvil_factory: Callable[..., Any], db_url: str) -> None:
    rng = random.Random(SEED + 1)
    compared = 0
    with anvil_factory() as node:
        deployment = deploy_markets(node, node.home)
        prepare(node, deployment)
        liquidator = node.accounts()[1]
        _fund(node, deployment, liquidator)
        for round_no in range(MAX_ROUNDS):
            compared += _indexed_round(node, deployment, db_url, rng, round_no, liquidator)
            if compared >= MIN_INDEXED:
                break
    print(f"\n{compared} liquidations predicted from indexed events equal the chain's")
    assert compared >= MIN_INDEXED


def _indexed_round(
    node: Anvil, deployment: Deployment, db_url: str, rng: random.Random, round_no: int, liquidator: str
) -> int:
    _reset_prices(node, deployment)
    positions = _open(node, deployment, rng, round_no)
    _shock(node, deployment, rng)
    plans, now = _indexed_plans(node, deployment, db_url, positions, rng)
    for plan in plans:
        plan.tx_hash = _send_liquidation(deployment, plan, liquidator)
    receipts = _mine(node, [p.tx_hash for p in plans], now)
    reserves = _reserves(deployment)
    compared = 0
    for plan in plans:
        receipt = receipts[plan.tx_hash]
        assert (receipt["status"] == "0x1") == (plan.predicted is not None), plan
        if plan.predicted is None:
            continue
        observed = _observed(deployment, plan, receipt, liquidator) | _flags(deployment, plan, reserves)
        assert observed == _expected(plan), plan.position
        compared += 1
    return compared
