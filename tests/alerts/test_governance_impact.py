"""Governance change → position impact on the devnet: a queued proposal that cuts WETH's liquidation
threshold is indexed, the `governance_impact` rule predicts who becomes liquidatable, and the chain agrees
after the proposal executes (every wallet, none extra); the fork path (the timelock's call run on an anvil
fork, reserve configuration diffed) predicts the same.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eth_utils.crypto import keccak

from chainrisk.alerts.job import evaluate_rules
from chainrisk.alerts.model import Alert
from chainrisk.alerts.rules import kinds
from chainrisk.alerts.rules_config import AlertRuleConfig
from chainrisk.db import to_libpq_url
from chainrisk.governance_impact import (
    HF_ONE,
    MarketImpact,
    decoded_changes,
    fork_changes,
    market_impact,
    proposal_impact,
    timelock_calls,
)
from devnet.aave import Deployment, deploy_markets
from devnet.anvil import Anvil
from devnet.deploy import deploy_contract
from devnet.governance import FOR, Governance, Proposal, deploy_governance, manifest_with_governance
from devnet.scenario import simulate
from devnet.serve import indexer_toml
from devnet.solc import compile_sources
from indexer.catalog import sync_config
from indexer.config import IndexConfig
from indexer.lending.health import indexed_head
from indexer.lending.keeper import PositionKeeper
from indexer.lending.positions import market_state
from indexer.runner import config_plan, run_plan

WAD = 10**18
CHAIN = 31337


@dataclass
class World:
    db: str
    node: Anvil
    deployment: Deployment
    governance: Governance
    config: IndexConfig
    home: Path

    def index(self) -> None:
        plan = config_plan(self.config.chains[0], self.config.contracts, None, False)
        with PositionKeeper(to_libpq_url(self.db), CHAIN) as keeper:
            run_plan(plan, to_libpq_url(self.db), listener=keeper)

    def conn(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(to_libpq_url(self.db))

    @property
    def pool(self) -> str:
        return self.deployment.markets["aave"].pool.lower()


@pytest.fixture(scope="module")
def world(templates: dict[str, str], node_home: Path) -> Iterator[World]:
    from tests.conftest import _fresh_database

    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home) as node:
            deployment = deploy_markets(node, node_home)
            a, b, c, d = node.accounts()[1:5]
            holders = {a: 500_000 * WAD, b: 300_000 * WAD, c: 150_000 * WAD, d: 50_000 * WAD}
            governance = deploy_governance(deployment, node_home, holders)
            simulate(deployment, 1, 30, 7)
            manifest = manifest_with_governance(deployment.to_manifest(), governance)
            config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": node.url})))
            with psycopg.connect(to_libpq_url(db)) as conn:
                sync_config(conn, config.chains, config.tokens, config.labels)
            found = World(db, node, deployment, governance, config, node_home)
            found.index()
            yield found


def _threshold_cut(world: World) -> int:
    """A WETH liquidation threshold that puts some, not all, borrowers under HF 1, one under 0.95."""
    from chainrisk.governance_impact import ParamChange

    weth = world.deployment.assets["WETH"].token.lower()
    with world.conn() as conn:
        head = indexed_head(conn, CHAIN)
        assert head is not None
        state = market_state(conn, CHAIN, world.pool, head)
    for lt in range(8_000, 5_000, -100):
        impact = market_impact(state, [ParamChange("liquidation_threshold", lt, asset=weth)], shocks=())
        crossing = len(impact.newly_liquidatable) >= 2 and len(impact.entering_full_close) >= 1
        if crossing and impact.liquidatable[1] < impact.borrowers:
            return lt
    raise AssertionError("no threshold cut makes a few wallets liquidatable")


def _rule(name: str, kind: str, **params: Any) -> AlertRuleConfig:
    kinds()
    return AlertRuleConfig(name=name, kind=kind, **params)


def _evaluate(world: World, rule: AlertRuleConfig, now: datetime) -> list[Alert]:
    with world.conn() as conn:
        return kinds()[rule.kind].evaluate(conn, rule, rule.typed_params, now)


def _hf_on_chain(world: World, users: list[str]) -> dict[str, int]:
    pool = world.deployment.pool("aave")
    return {u: int(pool.call("getUserAccountData", u)[5]) for u in users}


@pytest.fixture(scope="module")
def queued(world: World) -> tuple[Proposal, int, int]:
    """The proposal, queued and indexed; returns it with its ETA and the new threshold."""
    gov, (a, *_) = world.governance, world.node.accounts()[1:5]
    lt = _threshold_cut(world)
    proposal = gov.propose_risk_change(a, "WETH", lt - 500, lt, 10_500, "Cut WETH liquidation threshold")
    gov.advance_to_voting(proposal)
    gov.vote(proposal, a, FOR)
    gov.advance_past_voting(proposal)
    gov.queue(proposal)
    world.index()
    eta = int(gov.governor_contract().call("proposalEta", proposal.proposal_id))
    return proposal, eta, lt


def _now(world: World) -> datetime:
    latest = world.node.rpc("eth_getBlockByNumber", ["latest", False])
    return datetime.fromtimestamp(int(latest["timestamp"], 16) + 1, UTC)


def test_governance_alerts_created_and_queued(world: World, queued: tuple[Proposal, int, int]) -> None:
    proposal, eta, _ = queued
    rule = _rule("dao", "governance", events=["created", "queued"], window="1d")
    alerts = _evaluate(world, rule, _now(world))
    governor = world.governance.governor.lower()
    assert [a.subject for a in alerts] == [
        f"{CHAIN}:{governor}:{proposal.proposal_id}:created",
        f"{CHAIN}:{governor}:{proposal.proposal_id}:queued",
    ]
    queued_alert = alerts[1]
    assert queued_alert.facts["eta"] == eta and queued_alert.facts["voters"] == 1
    assert "liquidation_threshold of WETH" in queued_alert.body
    assert _evaluate(world, _rule("dao-exec", "governance", events=["executed"]), _now(world)) == []


def test_impact_prediction_equals_the_chain_after_execution(
    world: World, queued: tuple[Proposal, int, int]
) -> None:
    proposal, eta, _ = queued
    rule = _rule("impact", "governance_impact", min_newly_liquidatable=1)
    with world.conn() as conn:  # as the alerts job runs it: evaluated and enqueued in one transaction
        (outcome,) = evaluate_rules(conn, [rule], _now(world), enqueue=True)
    assert outcome.error is None and outcome.enqueued == 1
    (alert,) = outcome.alerts
    (market,) = alert.facts["markets"]
    predicted = {w["user"] for w in market["newly_liquidatable"]}
    assert market["pool"] == world.pool and predicted
    with world.conn() as conn:
        changes = decoded_changes(conn, CHAIN, world.governance.governor, proposal.proposal_id)
        (impact,) = proposal_impact(conn, CHAIN, changes, at_timestamp=eta)
    before, after = _executed_on_chain(world, proposal, eta)
    on_chain = {u for u in before if before[u] >= HF_ONE > after[u]}
    assert on_chain == predicted == {w.user for w in impact.newly_liquidatable}
    assert {w.user: w.hf_after for w in impact.newly_liquidatable} == {u: after[u] for u in on_chain}
    full_close = {u for u in before if before[u] > 95 * 10**16 >= after[u]}
    assert {w["user"] for w in market["entering_full_close"]} == full_close != set()
    assert market["liquidatable"]["after"] == sum(1 for u in after if after[u] < HF_ONE)
    assert f"{len(predicted)} of {market['borrowers']} borrowers become liquidatable" in alert.body
    # Fired once: the next run finds it in the outbox and does not compute it again.
    assert _evaluate(world, rule, _now(world)) == []


def _executed_on_chain(world: World, proposal: Proposal, eta: int) -> tuple[dict[str, int], dict[str, int]]:
    """Every position's health factor on chain at the ETA without and with the proposal executed (the
    chain is rewound after each)."""
    with world.conn() as conn:
        head = indexed_head(conn, CHAIN)
        assert head is not None
        users = market_state(conn, CHAIN, world.pool, head).users
    node = world.node
    snapshot = node.snapshot()
    node.rpc("evm_setNextBlockTimestamp", [eta])
    node.mine()
    before = _hf_on_chain(world, users)
    node.revert(snapshot)
    snapshot = node.snapshot()
    try:
        world.governance.execute(proposal)
        after = _hf_on_chain(world, users)
    finally:
        node.revert(snapshot)
    return before, after


def _comparable(impact: MarketImpact) -> dict[str, Any]:
    return {k: v for k, v in impact.to_dict().items() if k != "changes"}


def test_fork_path_predicts_the_same(world: World, queued: tuple[Proposal, int, int]) -> None:
    proposal, eta, lt = queued
    gov = world.governance
    calls = timelock_calls(gov.timelock, list(proposal.targets), list(proposal.calldatas))
    # A Bravo/Alpha action names its signature and carries only the arguments: the same call.
    signature = "configureReserveAsCollateral(address,uint256,uint256,uint256)"
    (args,) = [d[4:] for d in proposal.calldatas]
    assert timelock_calls(gov.timelock, list(proposal.targets), [args], [signature]) == calls
    forked = fork_changes(world.node.url, CHAIN, world.pool, calls, world.home, at_timestamp=eta)
    weth = world.deployment.assets["WETH"].token.lower()
    assert {(c.asset, c.parameter, c.new_value) for c in forked} == {
        (weth, "liquidation_threshold", lt),
        (weth, "ltv", lt - 500),
    }
    with world.conn() as conn:
        by_fork = proposal_impact(conn, CHAIN, forked, at_timestamp=eta, pool=world.pool)
        decoded = decoded_changes(conn, CHAIN, gov.governor, proposal.proposal_id)
        by_calldata = proposal_impact(conn, CHAIN, decoded, at_timestamp=eta)
    assert [_comparable(i) for i in by_fork] == [_comparable(i) for i in by_calldata]
    assert by_fork[0].newly_liquidatable


def test_the_governance_example_in_the_docs_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chainrisk.settings import Settings

    text = (Path(__file__).parents[2] / "docs" / "ALERTS.md").read_text()
    part = text[text.index("\n## Governance") :]
    example = part[part.index("```toml\n") + len("```toml\n") :]
    path = tmp_path / "chainrisk.toml"
    path.write_text(example[: example.index("```")])
    monkeypatch.setenv("CHAINRISK_CONFIG", str(path))
    rules = {r.name: r for r in Settings().alerts}
    assert {r.kind for r in rules.values()} == {"governance", "governance_impact"}
    assert rules["risk-change-impact"].typed_params.model_dump()["fork_rpc_env"] == "MAINNET_RPC_URL"


def test_governance_alerts_reach_every_channel(
    world: World, queued: tuple[Proposal, int, int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Both kinds, enqueued as the job does, are delivered by the dispatcher to the local receiver of each
    channel: Discord, Slack, Telegram, the signed webhook (no duplicate webhook-id) and SMTP."""
    from chainrisk.alerts.dispatch import dispatch_once
    from chainrisk.settings import Settings
    from tests.alerts.receivers import (
        DiscordReceiver,
        SlackReceiver,
        SmtpReceiver,
        TelegramReceiver,
        WebhookReceiver,
    )

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    fast = {"backoff_s": 0.2, "backoff_max_s": 1.0, "timeout_s": 2.0, "lease_s": 5.0}
    with (
        DiscordReceiver() as discord,
        SlackReceiver() as slack,
        TelegramReceiver() as telegram,
        WebhookReceiver(secret) as hook,
        SmtpReceiver(password="smtp-pass") as smtp,
    ):
        env = {"G_DISCORD": discord.url, "G_SLACK": slack.url, "G_TELEGRAM": telegram.token}
        for name, value in {**env, "G_SECRET": secret, "G_SMTP": "smtp-pass"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("CHAINRISK_CONFIG", str(tmp_path / "absent.toml"))
        telegram_api = {"chat_id": telegram.chat_id, "api_url": telegram.base}
        smtp_server = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "username": smtp.username}
        channels = [
            {"name": "discord", "kind": "discord", "url_env": "G_DISCORD", **fast},
            {"name": "slack", "kind": "slack", "url_env": "G_SLACK", **fast},
            {"name": "telegram", "kind": "telegram", "token_env": "G_TELEGRAM", **telegram_api, **fast},
            {"name": "hook", "kind": "webhook", "url": hook.url, "secret_env": "G_SECRET", **fast},
            {
                "name": "email",
                "kind": "email",
                **smtp_server,
                "password_env": "G_SMTP",
                "from_addr": "alerts@example.org",
                "to": ["dao@example.org"],
                **fast,
            },
        ]
        names = [c["name"] for c in channels]
        rules = [
            {"name": "deliver-governance", "kind": "governance", "channels": names},
            {"name": "deliver-impact", "kind": "governance_impact", "channels": names},
        ]
        settings = Settings.model_validate({"channels": channels, "alerts": rules})
        with world.conn() as conn:
            outcomes = evaluate_rules(conn, settings.alerts, _now(world), enqueue=True)
        assert [(o.rule, o.enqueued, o.error) for o in outcomes] == [
            ("deliver-governance", 2, None),
            ("deliver-impact", 1, None),
        ]
        conninfo = to_libpq_url(world.db)
        for _ in range(100):
            dispatch_once(conninfo, settings)
            with world.conn() as conn:
                row = conn.execute(
                    "SELECT count(*) FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id"
                    " WHERE a.rule LIKE 'deliver-%%' AND d.state <> 'sent'"
                ).fetchone()
            if row == (0,):
                break
            time.sleep(0.1)  # a retried delivery waits for its backoff
        else:
            raise AssertionError("deliveries still pending")
        counts = [len(discord.accepted), len(slack.accepted), len(telegram.accepted), len(smtp.messages)]
    assert counts == [3, 3, 3, 3]
    assert len(hook.accepted) == 3 and hook.duplicates == 0 and hook.rejected == 0
    kinds_sent = sorted(d["data"]["kind"] for d in hook.accepted)
    assert kinds_sent == ["governance", "governance", "governance_impact"]


PAYLOAD = """
// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IPoolConfigurator {
    function configureReserveAsCollateral(address asset, uint256 ltv, uint256 threshold, uint256 bonus)
        external;
}

/// A risk payload: the new parameters are in its code, not in the proposal that runs it.
contract CollateralPayload {
    IPoolConfigurator public immutable configurator;
    address public immutable executor;
    address public immutable asset;
    uint256 public immutable ltv;
    uint256 public immutable threshold;

    constructor(IPoolConfigurator configurator_, address executor_, address asset_, uint256 ltv_, uint256 lt_)
    {
        (configurator, executor, asset, ltv, threshold) = (configurator_, executor_, asset_, ltv_, lt_);
    }

    function execute() external {
        require(msg.sender == executor, "only the executor");
        configurator.configureReserveAsCollateral(asset, ltv, threshold, 10_500);
    }
}
"""


def test_payload_impact_comes_from_the_fork(
    world: World, queued: tuple[Proposal, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proposal that runs a payload contract: nothing decodes, so the rule executes it on a fork of the
    node (fork_rpc_env) and diffs the reserves; the chain agrees once it executes."""
    _, _, lt = queued
    gov, deployment, (a, *_) = world.governance, world.deployment, world.node.accounts()[1:5]
    compiled = compile_sources(world.home, {"CollateralPayload.sol": PAYLOAD})["CollateralPayload"]
    weth = deployment.assets["WETH"].token
    args = [gov.pool_configurator, gov.timelock, weth, lt - 500, lt]
    payload = deploy_contract(world.node, compiled, args, deployment.deployer)
    acl = deployment.contract(gov.acl_manager, "ACLManager")
    acl.transact(deployment.deployer, "addRiskAdmin", payload)
    proposal = gov.propose(
        a, [payload], [0], [keccak(text="execute()")[:4]], "Run the WETH collateral payload"
    )
    gov.advance_to_voting(proposal)
    gov.vote(proposal, a, FOR)
    gov.advance_past_voting(proposal)
    gov.queue(proposal)
    world.index()
    eta = int(gov.governor_contract().call("proposalEta", proposal.proposal_id))
    with world.conn() as conn:
        assert decoded_changes(conn, CHAIN, gov.governor, proposal.proposal_id) == []
    monkeypatch.setenv("DEVNET_RPC_URL", world.node.url)
    monkeypatch.setenv("CHAINRISK_HOME", str(world.home))
    rule = _rule("payload-impact", "governance_impact", fork_rpc_env="DEVNET_RPC_URL")
    alerts = _evaluate(world, rule, _now(world))
    (alert,) = [x for x in alerts if x.facts["proposal_id"] == str(proposal.proposal_id)]
    (market,) = alert.facts["markets"]
    assert {(c["parameter"], c["new_value"]) for c in market["changes"]} == {
        ("liquidation_threshold", lt),
        ("ltv", lt - 500),
    }
    before, after = _executed_on_chain(world, proposal, eta)
    on_chain = {u for u in before if before[u] >= HF_ONE > after[u]}
    assert {w["user"] for w in market["newly_liquidatable"]} == on_chain != set()
