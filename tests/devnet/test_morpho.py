"""Morpho Blue on the devnet: markets keyed by their params, oracles that follow the shared price feeds,
a borrow that accrues interest and is liquidated with Morpho's incentive, and Morpho in the scenario."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils.crypto import keccak

from devnet.aave import USD, Deployment, deploy_markets
from devnet.anvil import Anvil
from devnet.morpho import (
    MARKETS,
    ORACLE_PRICE_SCALE,
    WAD,
    Morpho,
    MorphoError,
    deploy_morpho,
    liquidation_incentive_factor,
    manifest_with_morpho,
    market_id,
    to_assets_up,
)
from devnet.scenario import ScenarioResult, price_path
from devnet.stack import deploy_all, devnet_node
from tests.devnet.fixtures import devnet_home  # noqa: F401

LIQUIDATE_TOPIC = (
    "0x" + keccak(text="Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)").hex()
)
ACCRUE_TOPIC = "0x" + keccak(text="AccrueInterest(bytes32,uint256,uint256,uint256)").hex()


@pytest.fixture(scope="module")
def chain(devnet_home: Path) -> Iterator[tuple[Anvil, Deployment, Morpho]]:  # noqa: F811
    with Anvil(devnet_home) as node:
        deployment = deploy_markets(node, devnet_home)
        yield node, deployment, deploy_morpho(deployment, devnet_home)


@pytest.fixture
def fresh(chain: tuple[Anvil, Deployment, Morpho]) -> Iterator[tuple[Anvil, Deployment, Morpho, list[str]]]:
    node, deployment, morpho = chain
    snapshot = node.snapshot()
    yield node, deployment, morpho, node.accounts()[5:9]
    node.revert(snapshot)


def _mint(deployment: Deployment, symbol: str, wallet: str, amount: int) -> None:
    deployment.token(symbol).transact(wallet, "mint", wallet, amount, gas=200_000)


def test_markets_are_keyed_by_their_params(fresh: tuple[Anvil, Deployment, Morpho, list[str]]) -> None:
    _, deployment, morpho, (lender, *_) = fresh
    assert (
        sorted(morpho.markets)
        == sorted(spec.name for spec in MARKETS)
        == [
            "WBTC/USDC",
            "WETH/USDC",
            "wstETH/WETH",
        ]
    )
    singleton = morpho.contract()
    assert str(singleton.call("owner")).lower() == morpho.owner == deployment.deployer
    assert str(singleton.call("feeRecipient")).lower() == morpho.fee_recipient
    assert singleton.call("isIrmEnabled", morpho.irm) is True
    for spec in MARKETS:
        market = morpho.market(spec.name)
        assert market.id == market_id(market.params)
        assert market.collateral_token == deployment.assets[spec.collateral].token
        assert market.loan_token == deployment.assets[spec.loan].token
        assert market.lltv == spec.lltv and singleton.call("isLltvEnabled", spec.lltv) is True
        on_chain = singleton.call("idToMarketParams", bytes.fromhex(market.id[2:]))
        assert tuple(str(v).lower() if isinstance(v, str) else v for v in on_chain) == market.params
        assert morpho.market_state(spec.name).fee == spec.fee
    assert (
        morpho.market("WETH/USDC").lltv == 86 * 10**16 and morpho.market("wstETH/WETH").lltv == 945 * 10**15
    )
    supplied = 250_000 * 10**6
    _mint(deployment, "USDC", lender, supplied)
    morpho.supply("WETH/USDC", lender, supplied)
    state = morpho.market_state("WETH/USDC")
    assert state.total_supply_assets == supplied and state.total_supply_shares == supplied * 10**6
    assert morpho.position("WETH/USDC", lender).supply_shares == state.total_supply_shares
    with pytest.raises(MorphoError, match="unknown Morpho market"):
        morpho.market("DAI/USDC")


def test_oracles_follow_the_shared_feeds(fresh: tuple[Anvil, Deployment, Morpho, list[str]]) -> None:
    _, deployment, morpho, _ = fresh
    for spec in MARKETS:
        market = morpho.market(spec.name)
        oracle = morpho.oracle(spec.name)
        base, quote = deployment.assets[spec.collateral], deployment.assets[spec.loan]
        assert str(oracle.call("baseFeed")).lower() == base.price_feed == market.oracle_base_feed
        assert str(oracle.call("quoteFeed")).lower() == quote.price_feed == market.oracle_quote_feed
        scale = 10 ** (36 + quote.decimals - base.decimals)
        assert int(oracle.call("scaleFactor")) == market.oracle_scale_factor == scale
        answers = [int(deployment.price_feed(s).call("latestAnswer")) for s in (spec.collateral, spec.loan)]
        assert morpho.price(spec.name) == scale * answers[0] // answers[1]
    # One collateral unit in loan units, 1e36-scaled: 3,000 USDC per WETH at the start.
    assert morpho.price("WETH/USDC") == 3_000 * 10**6 * ORACLE_PRICE_SCALE // 10**18
    deployment.set_price("WETH", 2_345_67891234)
    assert morpho.price("WETH/USDC") == 10**24 * 2_345_67891234 // USD
    assert morpho.price("wstETH/WETH") == 10**36 * 3_500 * USD // 2_345_67891234
    assert deployment.price("WETH") == 2_345_67891234  # the Aave oracle reads the same feed


def test_borrow_accrue_and_liquidate(fresh: tuple[Anvil, Deployment, Morpho, list[str]]) -> None:
    node, deployment, morpho, (lender, borrower, liquidator, _) = fresh
    name, lltv = "WETH/USDC", morpho.market("WETH/USDC").lltv
    _mint(deployment, "USDC", lender, 1_000_000 * 10**6)
    morpho.supply(name, lender, 1_000_000 * 10**6)
    _mint(deployment, "WETH", borrower, 10 * 10**18)
    morpho.supply_collateral(name, borrower, 10 * 10**18)
    limit = 10 * 3_000 * 10**6 * lltv // WAD  # 25,800 USDC at 3,000 USD per WETH
    with pytest.raises(Exception, match="insufficient collateral"):
        morpho.borrow(name, borrower, limit + 1)
    morpho.borrow(name, borrower, limit * 99 // 100)
    assert morpho.is_healthy(name, borrower)

    node.rpc("evm_increaseTime", [30 * 86_400])
    receipt = morpho.contract().transact(borrower, "accrueInterest", morpho.market(name).params)
    accrued = [log for log in receipt["logs"] if log["topics"][0] == ACCRUE_TOPIC]
    assert len(accrued) == 1
    _rate, interest, fee_shares = (int(accrued[0]["data"][2 + 64 * i : 66 + 64 * i], 16) for i in range(3))
    assert interest > 0 and fee_shares > 0  # the 10 % fee is paid in supply shares
    assert morpho.position(name, morpho.fee_recipient).supply_shares == fee_shares
    owed = morpho.borrowed(name, borrower)
    assert owed > limit * 99 // 100

    deployment.set_price("WETH", 2_800 * USD)  # 10 WETH now back at most 24,080 USDC
    assert not morpho.is_healthy(name, borrower)
    price, position = morpho.price(name), morpho.position(name, borrower)
    state = morpho.market_state(name)
    _mint(deployment, "USDC", liquidator, owed * 2)
    repaid_shares = position.borrow_shares // 2
    receipt = morpho.liquidate(name, liquidator, borrower, repaid_shares=repaid_shares)
    event = next(log for log in receipt["logs"] if log["topics"][0] == LIQUIDATE_TOPIC)
    repaid, shares, seized, bad_debt, _ = (int(event["data"][2 + 64 * i : 66 + 64 * i], 16) for i in range(5))
    assert shares == repaid_shares and bad_debt == 0
    assert repaid == pytest.approx(
        to_assets_up(shares, state.total_borrow_assets, state.total_borrow_shares), 1e-6
    )
    lif = liquidation_incentive_factor(lltv)
    assert lif == pytest.approx(WAD / (1 - 0.3 * (1 - lltv / WAD)), rel=1e-12)  # 1.0438 for 86 %
    # Seized = repaid shares rounded down to assets, times the LIF, in collateral at the oracle price.
    assert seized in {(r * lif // WAD) * ORACLE_PRICE_SCALE // price for r in (repaid - 1, repaid)}
    assert seized * price / ORACLE_PRICE_SCALE / repaid == pytest.approx(lif / WAD, rel=1e-9)
    assert morpho.position(name, borrower).collateral == position.collateral - seized
    assert int(deployment.token("WETH").call("balanceOf", liquidator)) == seized


def test_wiping_the_collateral_realises_bad_debt(fresh: tuple[Anvil, Deployment, Morpho, list[str]]) -> None:
    _, deployment, morpho, (lender, borrower, liquidator, _) = fresh
    name = "wstETH/WETH"
    _mint(deployment, "WETH", lender, 1_000 * 10**18)
    morpho.supply(name, lender, 1_000 * 10**18)
    _mint(deployment, "wstETH", borrower, 10 * 10**18)
    morpho.supply_collateral(name, borrower, 10 * 10**18)
    morpho.borrow(name, borrower, 11 * 10**18)  # 35,000 USD of wstETH backs 11 WETH at 94.5 %
    deployment.set_price("wstETH", 3_000 * USD)  # collateral now worth exactly the debt, less than debt * LIF
    assert not morpho.is_healthy(name, borrower)
    _mint(deployment, "WETH", liquidator, 20 * 10**18)
    receipt = morpho.liquidate(name, liquidator, borrower, seized_assets=10 * 10**18)
    event = next(log for log in receipt["logs"] if log["topics"][0] == LIQUIDATE_TOPIC)
    repaid, _shares, seized, bad_debt, bad_shares = (
        int(event["data"][2 + 64 * i : 66 + 64 * i], 16) for i in range(5)
    )
    assert seized == 10 * 10**18 and bad_debt > 0 and bad_shares > 0
    assert repaid + bad_debt == pytest.approx(11 * 10**18, rel=1e-9)
    assert morpho.position(name, borrower) == type(morpho.position(name, borrower))(0, 0, 0)


def test_manifest_round_trip(chain: tuple[Anvil, Deployment, Morpho]) -> None:
    _, deployment, morpho = chain
    body = manifest_with_morpho(deployment.to_manifest(), morpho)
    section = body["morpho"]
    assert set(section) == {"address", "irm", "owner", "fee_recipient", "markets"}
    market = section["markets"]["WETH/USDC"]
    assert set(market) == {
        "id",
        "loan_token",
        "collateral_token",
        "oracle",
        "irm",
        "lltv",
        "oracle_base_feed",
        "oracle_quote_feed",
        "oracle_scale_factor",
    }
    assert market["lltv"] == "860000000000000000" and market["oracle_scale_factor"] == str(10**24)
    assert len(market["id"]) == 66 and market["id"] == market["id"].lower()
    assert all(v == v.lower() for v in (section["address"], market["oracle"], market["loan_token"]))
    assert body["end_block"] >= morpho.end_block > deployment.end_block
    again = Morpho.from_manifest(body, deployment)
    assert again == morpho
    assert Morpho.from_manifest(deployment.to_manifest(), deployment) is None


SCENARIO_DAYS, SCENARIO_WALLETS, SCENARIO_SEED = 4, 40, 7  # the crash of this seed liquidates on Morpho too


@pytest.fixture(scope="module")
def scenario(devnet_home: Path) -> Iterator[tuple[Deployment, Morpho, ScenarioResult, str]]:  # noqa: F811
    """The whole devnet as `devnet up` deploys it (Governor and pools included) and a short scenario."""
    with devnet_node(devnet_home) as node:
        stack = deploy_all(node, devnet_home)
        assert stack.morpho is not None
        result = stack.simulate(SCENARIO_DAYS, SCENARIO_WALLETS, SCENARIO_SEED)
        head = str(node.rpc("eth_getBlockByNumber", ["latest", False])["hash"])
        yield stack.deployment, stack.morpho, result, head


def test_scenario_borrows_on_both_protocols(
    scenario: tuple[Deployment, Morpho, ScenarioResult, str],
) -> None:
    deployment, morpho, result, _ = scenario
    assert result.reverted == 0
    assert set(result.morpho_positions) == set(morpho.markets)
    assert all(count > 0 for count in result.morpho_positions.values())
    both = []
    for wallet, label in sorted(result.labels.items()):
        if not label.startswith("borrower-"):
            continue
        aave_debt = sum(
            int(deployment.pool(m).call("getUserAccountData", wallet)[1]) for m in deployment.markets
        )
        morpho_shares = sum(morpho.position(name, wallet).borrow_shares for name in morpho.markets)
        if aave_debt > 0 and morpho_shares > 0:
            both.append(wallet)
    assert both, "some wallets owe on Aave and on Morpho at once"
    # Every market was touched over the days, so interest accrued; the fee markets paid their recipient.
    for name in morpho.markets:
        state = morpho.market_state(name)
        assert state.last_update > result.start_timestamp + (SCENARIO_DAYS - 1) * 86_400
        assert 0 < state.total_borrow_assets < state.total_supply_assets
        fee_shares = morpho.position(name, morpho.fee_recipient).supply_shares
        assert (fee_shares > 0) == (state.fee > 0)


def test_scenario_liquidates_on_morpho_in_the_crash(
    scenario: tuple[Deployment, Morpho, ScenarioResult, str],
) -> None:
    deployment, morpho, result, _ = scenario
    assert result.morpho_liquidations, "the crash of this seed makes Morpho positions unhealthy"
    logs = morpho.rpc.rpc(
        "eth_getLogs",
        [{"address": morpho.address, "topics": [LIQUIDATE_TOPIC], "fromBlock": hex(result.first_block)}],
    )
    assert len(logs) == len(result.morpho_liquidations)
    bots = {a for a, label in result.labels.items() if label.startswith("liquidator-")}
    path = price_path(
        SCENARIO_DAYS, SCENARIO_SEED, {s: a.initial_price for s, a in deployment.assets.items()}
    )
    for record, log in zip(result.morpho_liquidations, logs, strict=True):
        assert int(log["blockNumber"], 16) == record.block
        assert "0x" + log["topics"][2][-40:] == record.liquidator and record.liquidator in bots
        assert "0x" + log["topics"][3][-40:] == record.user
        assert record.health < 1 and record.seized_assets > 0 and record.repaid_assets > 0
        position = morpho.position(record.market, record.user)
        assert position.borrow_shares == 0  # the bots close what they liquidate
        step = (record.timestamp - result.start_timestamp) // 3_600
        collateral = record.market.split("/")[0]
        assert path.prices[collateral][step] < path.prices[collateral][0]  # after a drop
    # Each seizure, on Aave or on Morpho, is sold on the Uniswap pools.
    assert result.swaps == len(result.liquidations) + len(result.morpho_liquidations)


@pytest.mark.slow
def test_scenario_with_morpho_is_the_same_chain_for_the_same_seed(
    scenario: tuple[Deployment, Morpho, ScenarioResult, str],
    devnet_home: Path,  # noqa: F811
) -> None:
    _, _, result, head = scenario
    with devnet_node(devnet_home) as node:
        again = deploy_all(node, devnet_home).simulate(SCENARIO_DAYS, SCENARIO_WALLETS, SCENARIO_SEED)
        assert node.rpc("eth_getBlockByNumber", ["latest", False])["hash"] == head
    assert {**again.to_dict(), "wall_s": 0} == {**result.to_dict(), "wall_s": 0}
