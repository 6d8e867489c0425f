"""Two real Aave v3 markets on anvil: deployment, positions in both, prices, liquidation, eMode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from devnet.aave import (
    AAVE_MARKET,
    EMODE_ETH,
    SPARK_MARKET,
    USD,
    AaveDeployError,
    Deployment,
    MarketSpec,
    aave_artifact,
    deploy_markets,
    link_references,
)
from devnet.anvil import Anvil
from tests.devnet.fixtures import devnet_home  # noqa: F401

LIQUIDATION_TOPIC = (
    "0x" + keccak(text="LiquidationCall(address,address,address,uint256,uint256,address,bool)").hex()
)
MAX_UINT = 2**256 - 1
WAD = 10**18
VARIABLE = 2


@pytest.fixture(scope="module")
def chain(devnet_home: Path) -> Iterator[tuple[Anvil, Deployment]]:  # noqa: F811
    """One anvil with both markets deployed once; tests rewind to this state (see ``fresh``)."""
    with Anvil(devnet_home) as node:
        yield node, deploy_markets(node, devnet_home)


@pytest.fixture
def fresh(chain: tuple[Anvil, Deployment]) -> Iterator[tuple[Anvil, Deployment, list[str]]]:
    node, deployment = chain
    snapshot = node.snapshot()
    yield node, deployment, node.accounts()
    node.revert(snapshot)


def _units(deployment: Deployment, symbol: str, amount: float) -> int:
    scale: int = 10 ** deployment.assets[symbol].decimals
    return round(amount * scale)


def _supply(deployment: Deployment, market: str, wallet: str, symbol: str, amount: float) -> None:
    token, pool = deployment.token(symbol), deployment.pool(market)
    value = _units(deployment, symbol, amount)
    token.transact(wallet, "mint", wallet, value)
    token.transact(wallet, "approve", pool.address, value)
    pool.transact(wallet, "supply", token.address, value, wallet, 0)


def _borrow(deployment: Deployment, market: str, wallet: str, symbol: str, amount: float) -> dict[str, Any]:
    token = deployment.assets[symbol].token
    value = _units(deployment, symbol, amount)
    return deployment.pool(market).transact(wallet, "borrow", token, value, VARIABLE, 0, wallet)


def _account(deployment: Deployment, market: str, wallet: str) -> dict[str, int]:
    names = ("collateral", "debt", "available", "threshold", "ltv", "hf")
    return dict(zip(names, deployment.pool(market).call("getUserAccountData", wallet), strict=True))


def _liquidity(deployment: Deployment, lender: str) -> None:
    for market in deployment.markets:
        _supply(deployment, market, lender, "USDC", 5_000_000)
        _supply(deployment, market, lender, "WETH", 1_000)


def test_both_markets_list_the_same_five_tokens_with_their_own_atokens(
    chain: tuple[Anvil, Deployment],
) -> None:
    _, deployment = chain
    tokens = {a.token for a in deployment.assets.values()}
    for market in (AAVE_MARKET, SPARK_MARKET):
        listed = deployment.pool(market.name).call("getReservesList")
        assert len(listed) == 5
        assert {str(t).lower() for t in listed} == tokens
    aave, spark = deployment.markets["aave"], deployment.markets["spark"]
    assert aave.pool != spark.pool
    assert not {r.a_token for r in aave.reserves.values()} & {r.a_token for r in spark.reserves.values()}
    assert deployment.a_token("aave", "WETH").call("symbol") == "aEthWETH"
    assert deployment.v_token("spark", "USDC").call("UNDERLYING_ASSET_ADDRESS").lower() == (
        deployment.assets["USDC"].token
    )


def test_tokens_have_real_decimals_and_reserves_the_configured_risk_parameters(
    chain: tuple[Anvil, Deployment],
) -> None:
    _, deployment = chain
    decimals = {s: deployment.token(s).call("decimals") for s in deployment.assets}
    assert decimals == {"WETH": 18, "WBTC": 8, "wstETH": 18, "USDC": 6, "DAI": 18}
    for market in (AAVE_MARKET, SPARK_MARKET):
        provider = deployment.contract(
            deployment.markets[market.name].data_provider, "AaveProtocolDataProvider"
        )
        for symbol, params in market.reserves.items():
            config = provider.call("getReserveConfigurationData", deployment.assets[symbol].token)
            # (decimals, ltv, threshold, bonus, reserveFactor, collateral, borrowing, stable, active, frozen)
            assert config[:5] == (
                decimals[symbol],
                params.ltv,
                params.liquidation_threshold,
                params.liquidation_bonus,
                params.reserve_factor,
            )
            assert config[5:10] == (True, True, False, True, False)
            caps = provider.call("getReserveCaps", deployment.assets[symbol].token)
            assert caps == (params.borrow_cap, params.supply_cap)
        emode = deployment.pool(market.name).call("getEModeCategoryData", EMODE_ETH)
        assert emode[:3] == (
            market.emodes[0].ltv,
            market.emodes[0].liquidation_threshold,
            market.emodes[0].liquidation_bonus,
        )
    assert deployment.price("WBTC", "spark") == 60_000 * USD


def test_manifest_round_trips_through_json(chain: tuple[Anvil, Deployment]) -> None:
    node, deployment = chain
    manifest = json.loads(json.dumps(deployment.to_manifest()))
    assert manifest["start_block"] == 1 and manifest["end_block"] >= manifest["start_block"]
    assert manifest["markets"]["spark"]["reserves"]["WETH"]["params"]["liquidation_threshold"] == 8_300
    assert manifest["assets"]["WBTC"]["decimals"] == 8
    again = Deployment.from_manifest(manifest, node.url, deployment.home)
    assert again == deployment
    assert len(again.pool("aave").call("getReservesList")) == 5


def test_one_wallet_borrows_in_both_markets_with_sane_account_data(
    fresh: tuple[Anvil, Deployment, list[str]],
) -> None:
    _, deployment, accounts = fresh
    lender, wallet = accounts[1], accounts[2]
    _liquidity(deployment, lender)
    for market in deployment.markets:
        _supply(deployment, market, wallet, "WETH", 10)
        _borrow(deployment, market, wallet, "USDC", 10_000)
    assert deployment.token("USDC").call("balanceOf", wallet) == 20_000 * 10**6
    for market, spec in (("aave", AAVE_MARKET), ("spark", SPARK_MARKET)):
        weth = spec.reserves["WETH"]
        data = _account(deployment, market, wallet)
        assert data["collateral"] == 30_000 * USD
        assert 10_000 * USD <= data["debt"] < 10_001 * USD  # a few seconds of interest at most
        assert (data["ltv"], data["threshold"]) == (weth.ltv, weth.liquidation_threshold)
        assert data["available"] == pytest.approx(30_000 * USD * weth.ltv // 10_000 - data["debt"], abs=USD)
        assert data["hf"] == pytest.approx(3 * weth.liquidation_threshold * WAD // 10_000, rel=1e-3)
        assert deployment.v_token(market, "USDC").call("balanceOf", wallet) >= 10_000 * 10**6


def test_price_drop_makes_the_position_liquidatable_and_a_liquidator_takes_it(
    fresh: tuple[Anvil, Deployment, list[str]],
) -> None:
    _, deployment, accounts = fresh
    lender, wallet, liquidator = accounts[1], accounts[2], accounts[3]
    _liquidity(deployment, lender)
    for market in deployment.markets:
        _supply(deployment, market, wallet, "WETH", 10)
        _borrow(deployment, market, wallet, "USDC", 20_000)
    healthy = {m: _account(deployment, m, wallet)["hf"] for m in deployment.markets}
    assert all(hf > WAD for hf in healthy.values())
    deployment.set_price("WETH", 2_350 * USD)  # HF about 0.97: liquidatable, close factor 50%
    assert deployment.price("WETH", "aave") == deployment.price("WETH", "spark") == 2_350 * USD
    sick = {m: _account(deployment, m, wallet)["hf"] for m in deployment.markets}
    assert all(sick[m] < WAD for m in deployment.markets)
    assert all(sick[m] < healthy[m] for m in deployment.markets)
    with pytest.raises(AaveDeployError):  # withdrawing collateral from an unhealthy position is refused
        deployment.pool("aave").transact(wallet, "withdraw", deployment.assets["WETH"].token, 1, wallet)

    usdc, weth = deployment.token("USDC"), deployment.token("WETH")
    pool = deployment.pool("aave")
    usdc.transact(liquidator, "mint", liquidator, 10_100 * 10**6)
    usdc.transact(liquidator, "approve", pool.address, MAX_UINT)
    receipt = pool.transact(
        liquidator, "liquidationCall", weth.address, usdc.address, wallet, MAX_UINT, False
    )
    logs = [log for log in receipt["logs"] if log["topics"][0] == LIQUIDATION_TOPIC]
    assert len(logs) == 1 and logs[0]["address"].lower() == pool.address
    assert int(logs[0]["topics"][3], 16) == int(wallet, 16)
    seized = weth.call("balanceOf", liquidator)
    repaid = 10_100 * 10**6 - usdc.call("balanceOf", liquidator)
    assert repaid == pytest.approx(10_000 * 10**6, rel=1e-4)  # HF above 0.95: half the debt
    # Collateral worth the repaid debt plus the 5% bonus, less the protocol's 10% share of the bonus.
    expected = repaid * 10**12 / 2_350 * (1 + 0.05 * 0.9)
    assert seized == pytest.approx(expected, rel=1e-6)
    assert _account(deployment, "aave", wallet)["hf"] > sick["aave"]
    assert _account(deployment, "spark", wallet)["hf"] < WAD  # the other market's position is untouched


def test_emode_lets_an_eth_correlated_position_borrow_more(
    fresh: tuple[Anvil, Deployment, list[str]],
) -> None:
    _, deployment, accounts = fresh
    lender, looper = accounts[1], accounts[4]
    _liquidity(deployment, lender)
    _supply(deployment, "aave", looper, "wstETH", 10)  # $35,000
    plain = _account(deployment, "aave", looper)
    assert plain["available"] == 35_000 * USD * 7_850 // 10_000
    with pytest.raises(AaveDeployError, match="36"):  # COLLATERAL_CANNOT_COVER_NEW_BORROW
        _borrow(deployment, "aave", looper, "WETH", 10)  # $30,000 > $27,475 available
    deployment.pool("aave").transact(looper, "setUserEMode", EMODE_ETH)
    assert deployment.pool("aave").call("getUserEMode", looper) == EMODE_ETH
    boosted = _account(deployment, "aave", looper)
    assert boosted["available"] == 35_000 * USD * 9_300 // 10_000
    assert (boosted["ltv"], boosted["threshold"]) == (9_300, 9_500)
    _borrow(deployment, "aave", looper, "WETH", 10)
    assert deployment.token("WETH").call("balanceOf", looper) == 10 * WAD
    assert _account(deployment, "aave", looper)["hf"] == pytest.approx(35_000 * 0.95 / 30_000 * WAD, rel=1e-3)


def test_pool_artifact_is_linked_against_the_deployed_libraries(chain: tuple[Anvil, Deployment]) -> None:
    node, deployment = chain
    needed = link_references(deployment.home, "Pool")
    assert needed == [
        "BorrowLogic",
        "BridgeLogic",
        "EModeLogic",
        "FlashLoanLogic",
        "LiquidationLogic",
        "PoolLogic",
        "SupplyLogic",
    ]
    with pytest.raises(AaveDeployError, match="needs library"):
        aave_artifact(deployment.home, "Pool")
    linked = aave_artifact(deployment.home, "Pool", deployment.libraries)
    impl = deployment.markets["aave"].pool_impl
    code = str(node.rpc("eth_getCode", [impl, "latest"]))
    # The runtime code embeds every library address where the artifact had placeholders.
    for library in needed:
        assert deployment.libraries[library].removeprefix("0x") in code
    assert "__$" not in linked.bytecode


def test_bad_market_spec_is_refused_before_anything_is_sent(chain: tuple[Anvil, Deployment]) -> None:
    node, deployment = chain
    before = node.block_number()
    bad = MarketSpec(
        name="x", market_id="x", reserves={"DOGE": AAVE_MARKET.reserves["WETH"]}, emodes=(), rates={}
    )
    with pytest.raises(ValueError, match="unknown assets"):
        deploy_markets(node, deployment.home, markets=[bad])
    assert node.block_number() == before


def test_overloaded_functions_are_chosen_by_argument_count(
    fresh: tuple[Anvil, Deployment, list[str]],
) -> None:
    _, deployment, accounts = fresh
    dai = deployment.token("DAI")
    dai.transact(accounts[5], "mint", 7)  # mint(uint256): to the sender
    dai.transact(accounts[5], "mint", accounts[6], 9)  # mint(address,uint256)
    assert (dai.call("balanceOf", accounts[5]), dai.call("balanceOf", accounts[6])) == (7, 9)
    with pytest.raises(TypeError, match="mint takes 1 or 2 arguments, got 3"):
        dai.transact(accounts[5], "mint", 1, 2, 3)


def test_only_the_deployer_publishes_prices_and_each_update_is_an_event(
    fresh: tuple[Anvil, Deployment, list[str]],
) -> None:
    _, deployment, accounts = fresh
    feed = deployment.price_feed("WBTC")
    receipt = deployment.set_price("WBTC", 55_000 * USD)
    answer_updated = "0x" + keccak(text="AnswerUpdated(int256,uint256,uint256)").hex()
    (log,) = [log for log in receipt["logs"] if log["topics"][0] == answer_updated]
    assert log["address"].lower() == feed.address
    assert (int(log["topics"][1], 16), int(log["topics"][2], 16)) == (
        55_000 * USD,
        2,
    )  # round 1 was the constructor
    assert feed.call("latestRoundData")[:2] == (2, 55_000 * USD)
    assert deployment.price("WBTC", "aave") == deployment.price("WBTC", "spark") == 55_000 * USD
    with pytest.raises(AaveDeployError):
        feed.transact(accounts[3], "setAnswer", 1)
    with pytest.raises(ValueError, match="must be positive"):
        deployment.set_price("WBTC", 0)
    assert deployment.price("WBTC") == 55_000 * USD
