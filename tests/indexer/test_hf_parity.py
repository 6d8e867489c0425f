"""Health factors from indexed events equal Pool.getUserAccountData to the wei, on a devnet scenario.

Both Aave v3 markets are deployed on anvil and a seeded scenario (prices with a crash, borrowers, eMode
loopers, liquidation bots) runs in legs of a day or two, with risk-parameter changes between legs, then
ten quiet days pass. After each leg the chain is indexed and, at the head block, the account data of every
wallet with a position is rebuilt from the event tables and compared with the contract's (anvil prunes
history, so there is no past state to call).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from devnet.aave import Deployment, deploy_markets
from devnet.scenario import simulate
from indexer.config import ChainConfig, ContractConfig
from indexer.lending.positions import (
    MarketState,
    account_data,
    accounts_data,
    burn_delta,
    market_state,
    mint_delta,
)
from indexer.protocols.aave_math import AccountData
from indexer.runner import config_plan, run_plan

pytestmark = pytest.mark.slow

GENESIS = 1_700_000_000
CHAIN = "devnet"
# (days, wallets, seed) per leg; each seed brings its own wallets, earlier positions keep accruing.
LEGS = ((2, 40, 11), (1, 40, 12), (2, 40, 13), (1, 40, 14))
MIN_SAMPLES = 200
QUIET_S = 10 * 86_400
# Returns block.timestamp: the context eth_call runs in (creation code, no contract needed).
TIMESTAMP_PROBE = "0x4260005260206000f3"


def _contracts(deployment: Deployment) -> list[ContractConfig]:
    manifest = deployment.to_manifest()
    start = int(manifest["start_block"])
    found: list[tuple[str, str, str]] = []
    for name, market in manifest["markets"].items():
        found += [
            (f"{name}-pool", market["pool"], "aave_v3_pool"),
            (f"{name}-configurator", market["pool_configurator"], "aave_v3_configurator"),
            (f"{name}-oracle", market["oracle"], "aave_oracle"),
        ]
        for symbol, reserve in market["reserves"].items():
            found.append((f"{name}-a{symbol}", reserve["a_token"], "aave_v3_token"))
            found.append((f"{name}-variable-debt-{symbol}", reserve["v_token"], "aave_v3_token"))
    for symbol, asset in manifest["assets"].items():
        found.append((f"feed-{symbol}", asset["price_feed"], "price_aggregator"))
    return [ContractConfig(name=n, chain=CHAIN, address=a, abi=abi, start_block=start) for n, a, abi in found]


def _change_parameters(deployment: Deployment) -> None:
    """Governance-style changes between legs: a reserve's LTV/threshold and an eMode category."""
    weth = deployment.assets["WETH"].token
    owner = deployment.deployer
    deployment.configurator("aave").transact(
        owner, "configureReserveAsCollateral", weth, 7_900, 8_150, 10_500
    )
    emode = deployment.markets["spark"].emodes[0]
    deployment.configurator("spark").transact(
        owner,
        "setEModeCategory",
        emode.category_id,
        9_100,
        9_400,
        emode.liquidation_bonus,
        "0x" + "00" * 20,
        emode.label,
    )


def _check_changed_parameters(deployment: Deployment, market: str, state: MarketState) -> None:
    weth = deployment.assets["WETH"].token
    if market == "aave":
        assert (state.configs[weth].ltv_bps, state.configs[weth].liquidation_threshold_bps) == (7_900, 8_150)
    else:
        category = state.emode_categories[deployment.markets["spark"].emodes[0].category_id]
        assert (category.ltv_bps, category.liquidation_threshold_bps) == (9_100, 9_400)


def _chain_data(deployment: Deployment, market: str, user: str) -> AccountData:
    return AccountData(*(int(v) for v in deployment.pool(market).call("getUserAccountData", user)))


def test_account_data_from_events_equals_the_pool_to_the_wei(
    anvil_factory: Callable[..., Any], db_url: str
) -> None:
    timings: dict[str, float] = {"simulate": 0.0, "index": 0.0, "rebuild": 0.0, "eth_call": 0.0}
    samples: list[tuple[int, str, str, AccountData]] = []
    mismatches: list[str] = []
    liquidated: set[tuple[str, str]] = set()
    emode_users: set[tuple[str, str]] = set()
    labelled: set[str] = set()
    with anvil_factory(extra_args=["--timestamp", str(GENESIS)]) as node:
        node.rpc("anvil_setBlockTimestampInterval", [12])
        started = time.perf_counter()
        deployment = deploy_markets(node, node.home)
        timings["deploy"] = time.perf_counter() - started
        decimals = {a.token: a.decimals for a in deployment.assets.values()}
        chain = ChainConfig(
            name=CHAIN, chain_id=deployment.chain_id, rpc_urls=[node.url], poll_interval_s=0.05
        )
        plan = config_plan(chain, _contracts(deployment), stop=None, follow=False)
        stale_reserves = 0
        for leg in range(len(LEGS) + 1):
            if leg == 2:
                _change_parameters(deployment)
            started = time.perf_counter()
            if leg < len(LEGS):
                days, wallets, seed = LEGS[leg]
                result = simulate(deployment, days, wallets, seed)
                liquidated |= {(liq.market, liq.user) for liq in result.liquidations}
                labelled |= set(result.labels)
            else:  # a quiet stretch: no transaction for days, only interest accrues
                node.rpc("evm_increaseTime", [QUIET_S])
                node.mine(1)
            timings["simulate"] += time.perf_counter() - started

            started = time.perf_counter()
            cursor = run_plan(plan, to_libpq_url(db_url))
            timings["index"] += time.perf_counter() - started
            head = node.block_number()
            assert cursor.block_number == head
            call_time = int(node.rpc("eth_call", [{"data": TIMESTAMP_PROBE}, "latest"]), 16)

            for market, body in deployment.markets.items():
                started = time.perf_counter()
                with psycopg.connect(to_libpq_url(db_url)) as conn:
                    state = market_state(conn, chain.chain_id, body.pool, head, decimals)
                    rebuilt = {u: state.account_data(u) for u in state.users}
                timings["rebuild"] += time.perf_counter() - started
                assert state.timestamp == call_time, "eth_call must run at the head block's time"
                stale_reserves += sum(
                    1 for r in state.states.values() if r.last_update_timestamp != call_time
                )
                emode_users |= {(market, u) for u in state.user_emode if u in rebuilt}
                if leg >= 2:
                    _check_changed_parameters(deployment, market, state)
                started = time.perf_counter()
                for user, ours in rebuilt.items():
                    theirs = _chain_data(deployment, market, user)
                    samples.append((head, market, user, ours))
                    if ours != theirs:
                        mismatches.append(f"{market} {user} block {head}: ours {ours} chain {theirs}")
                # Wallets the index knows no position for have none on chain either.
                for user in sorted(labelled - set(rebuilt)):
                    theirs = _chain_data(deployment, market, user)
                    if theirs[:2] != (0, 0):
                        mismatches.append(f"{market} {user} block {head}: missing, chain {theirs}")
                timings["eth_call"] += time.perf_counter() - started

        # The entry points agree with the snapshot; decimals also come from the tokens' Initialized logs.
        head = node.block_number()
        last = {(market, user): ours for block, market, user, ours in samples if block == head}
        with psycopg.connect(to_libpq_url(db_url)) as conn:
            for market, body in deployment.markets.items():
                every = accounts_data(conn, chain.chain_id, body.pool, head)
                assert every == {u: d for (m, u), d in last.items() if m == market}
                picked = sorted(u for m, u in {*emode_users, *liquidated} if m == market)[:3]
                for user in picked:
                    single = account_data(conn, chain.chain_id, body.pool, user, head, decimals)
                    assert single == every[user]

    print(f"\nhf parity: {len(samples)} samples, timings { ({k: round(v, 1) for k, v in timings.items()}) }")
    assert not mismatches, f"{len(mismatches)} of {len(samples)} differ:\n" + "\n".join(mismatches[:20])
    assert len(samples) >= MIN_SAMPLES
    sampled = {(market, user) for _, market, user, _ in samples}
    assert {market for market, _ in sampled} == {"aave", "spark"}
    assert liquidated and liquidated <= sampled, "liquidated users must be among the samples"
    assert emode_users, "no eMode user sampled"
    assert stale_reserves, "some reserve must have accrued interest since its last update"
    blocks_per_user: dict[tuple[str, str], int] = {}
    for _, market, user, _ in samples:
        blocks_per_user[(market, user)] = blocks_per_user.get((market, user), 0) + 1
    assert max(blocks_per_user.values()) == len(LEGS) + 1, "early positions sampled again after days"


def test_token_events_change_scaled_balances_as_the_solidity_does() -> None:
    index = 1_05 * 10**25  # 1.05 ray
    assert mint_delta(1_050 + 7, 7, index) == 1_000  # supply of 1050 with 7 accrued
    assert mint_delta(7, 7, index) == 0  # interest shown on transfer
    assert mint_delta(7 - 5, 7, index) == -5  # a burn of 5 under the 7 accrued emits a Mint of 2
    assert burn_delta(1_050 - 7, 7, index) == -1_000
