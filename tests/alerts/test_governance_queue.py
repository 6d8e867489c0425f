"""Governance queues the rule finds by itself, on the devnet: an OpenZeppelin TimelockController
operation scheduled outside any Governor (`CallScheduled`), and Aave Governance v3 payloads
(`PayloadCreated`/`PayloadQueued` on a PayloadsController). Each is indexed into the `proposals` view
(queued, with its ETA), the `governance_impact` rule predicts who becomes liquidatable, and the chain
agrees once the operation or payload executes: the decoded calldata applied exactly, and a delegatecall
payload run on an anvil fork.

The TimelockController is the one the devnet's governance deploys (@openzeppelin/contracts 5.x). Aave's
PayloadsController is not published as an npm artifact, so a contract with the same events, the same
`createPayload`/`queuePayload`/`executePayload` functions and the same rules (executable strictly after
queuedAt + the executor's delay; an action's signature, when set, prefixes its calldata; delegatecall
actions run in the executor's context) stands for it; it is its own executor.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from chainrisk.alerts.job import evaluate_rules
from chainrisk.alerts.model import Alert
from chainrisk.alerts.rules import kinds
from chainrisk.alerts.rules_config import AlertRuleConfig
from chainrisk.db import to_libpq_url
from chainrisk.governance_impact import HF_ONE, ParamChange, decoded_changes, market_impact
from devnet.aave import Contract, Deployment, deploy_markets
from devnet.anvil import Anvil
from devnet.deploy import deploy_contract
from devnet.governance import FOR, Governance, deploy_governance, manifest_with_governance
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
PAYLOAD_DELAY_S = 86_400
ZERO32 = b"\0" * 32
COLLATERAL = "configureReserveAsCollateral(address,uint256,uint256,uint256)"

# An Aave-style payload: its executor delegatecalls execute(), so it runs in the executor's context (the
# executor is the risk admin) and its values are immutables, in its code.
PAYLOAD = """
// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IPoolConfigurator {
    function configureReserveAsCollateral(address asset, uint256 ltv, uint256 threshold, uint256 bonus)
        external;
}

contract DelegatePayload {
    IPoolConfigurator public immutable configurator;
    address public immutable asset;
    uint256 public immutable ltv;
    uint256 public immutable threshold;

    constructor(IPoolConfigurator configurator_, address asset_, uint256 ltv_, uint256 lt_) {
        (configurator, asset, ltv, threshold) = (configurator_, asset_, ltv_, lt_);
    }

    function execute() external {
        configurator.configureReserveAsCollateral(asset, ltv, threshold, 10_500);
    }
}
"""

CONTROLLER = """
// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

contract PayloadsController {
    struct ExecutionAction {
        address target;
        bool withDelegateCall;
        uint8 accessLevel;
        uint256 value;
        string signature;
        bytes callData;
    }

    event ExecutorSet(uint8 indexed accessLevel, address indexed executor, uint40 delay);
    event PayloadCreated(
        uint40 indexed payloadId, address indexed creator, ExecutionAction[] actions,
        uint8 indexed maximumAccessLevelRequired
    );
    event PayloadQueued(uint40 payloadId);
    event PayloadExecuted(uint40 payloadId);
    event PayloadCancelled(uint40 payloadId);

    uint40 public immutable delay;
    uint40 public count;
    mapping(uint40 => bytes) internal encoded;
    mapping(uint40 => uint40) public queuedAt;

    constructor(uint40 delay_) {
        delay = delay_;
        emit ExecutorSet(1, address(this), delay_);
    }

    function createPayload(ExecutionAction[] calldata actions) external returns (uint40 id) {
        id = count++;
        encoded[id] = abi.encode(actions);
        emit PayloadCreated(id, msg.sender, actions, 1);
    }

    function queuePayload(uint40 id) external {
        queuedAt[id] = uint40(block.timestamp);
        emit PayloadQueued(id);
    }

    function cancelPayload(uint40 id) external {
        queuedAt[id] = 0;
        emit PayloadCancelled(id);
    }

    function executePayload(uint40 id) external payable {
        require(queuedAt[id] != 0 && block.timestamp > queuedAt[id] + delay, "timelock not finished");
        ExecutionAction[] memory actions = abi.decode(encoded[id], (ExecutionAction[]));
        for (uint256 i = 0; i < actions.length; i++) {
            ExecutionAction memory a = actions[i];
            bytes memory data = bytes(a.signature).length == 0
                ? a.callData
                : abi.encodePacked(bytes4(keccak256(bytes(a.signature))), a.callData);
            (bool ok, ) = a.withDelegateCall
                ? a.target.delegatecall(data)
                : a.target.call{value: a.value}(data);
            require(ok, "action failed");
        }
        queuedAt[id] = 0;
        emit PayloadExecuted(id);
    }
}
"""


class World:
    def __init__(
        self, db: str, node: Anvil, deployment: Deployment, governance: Governance, home: Path
    ) -> None:
        self.db, self.node, self.deployment, self.governance, self.home = (
            db,
            node,
            deployment,
            governance,
            home,
        )
        compiled = compile_sources(home, {"PayloadsController.sol": CONTROLLER})["PayloadsController"]
        address = deploy_contract(node, compiled, [PAYLOAD_DELAY_S], deployment.deployer)
        self.controller = Contract(node, address, compiled.abi)
        acl = deployment.contract(governance.acl_manager, "ACLManager")
        acl.transact(deployment.deployer, "addRiskAdmin", address)
        manifest = manifest_with_governance(deployment.to_manifest(), governance)
        text = indexer_toml({**manifest, "rpc_url": node.url})
        for name, contract, kind in (
            ("timelock", governance.timelock, "timelock"),
            ("payloads-controller", address, "aave_payloads_controller"),
        ):
            text += (
                f'\n[[contracts]]\nname = "{name}"\nchain = "devnet"\naddress = "{contract}"\n'
                f'abi = "{kind}"\nstart_block = {int(manifest["start_block"])}\n'
            )
        self.config = IndexConfig(**tomllib.loads(text))
        with self.conn() as conn:
            sync_config(conn, self.config.chains, self.config.tokens, self.config.labels)

    def index(self) -> None:
        plan = config_plan(self.config.chains[0], self.config.contracts, None, False)
        with PositionKeeper(to_libpq_url(self.db), CHAIN) as keeper:
            run_plan(plan, to_libpq_url(self.db), listener=keeper)

    def conn(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(to_libpq_url(self.db))

    @property
    def pool(self) -> str:
        return self.deployment.markets["aave"].pool.lower()

    @property
    def weth(self) -> str:
        return self.deployment.assets["WETH"].token.lower()

    def block_time(self, block: int | str = "latest") -> int:
        tag = hex(block) if isinstance(block, int) else block
        return int(self.node.rpc("eth_getBlockByNumber", [tag, False])["timestamp"], 16)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.block_time() + 1, UTC)

    def users(self) -> list[str]:
        with self.conn() as conn:
            head = indexed_head(conn, CHAIN)
            assert head is not None
            return market_state(conn, CHAIN, self.pool, head).users

    def health(self, users: list[str]) -> dict[str, int]:
        pool = self.deployment.pool("aave")
        return {u: int(pool.call("getUserAccountData", u)[5]) for u in users}

    def as_governor(self, function: str, *args: Any) -> dict[str, Any]:
        """A timelock call from the governor, which holds the proposer and canceller roles."""
        governor = self.governance.governor
        self.node.rpc("anvil_impersonateAccount", [governor])
        self.node.rpc("anvil_setBalance", [governor, hex(10**20)])
        try:
            return self.governance.timelock_contract().transact(governor, function, *args, gas=1_000_000)
        finally:
            self.node.rpc("anvil_stopImpersonatingAccount", [governor])


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
            found = World(db, node, deployment, governance, node_home)
            found.index()
            yield found


def _threshold_cut(world: World) -> int:
    """A WETH liquidation threshold that makes at least two borrowers liquidatable, not all."""
    with world.conn() as conn:
        head = indexed_head(conn, CHAIN)
        assert head is not None
        state = market_state(conn, CHAIN, world.pool, head)
    for lt in range(8_000, 4_000, -100):
        impact = market_impact(state, [ParamChange("liquidation_threshold", lt, asset=world.weth)], shocks=())
        if len(impact.newly_liquidatable) >= 2 and impact.liquidatable[1] < impact.borrowers:
            return lt
    raise AssertionError("no threshold cut makes a few wallets liquidatable")


def _impact_rule(name: str, **params: Any) -> AlertRuleConfig:
    kinds()
    fields: dict[str, Any] = {"name": name, "kind": "governance_impact", "min_newly_liquidatable": 1}
    return AlertRuleConfig(**fields, **params)


def _alerts(world: World, rule: AlertRuleConfig) -> list[Alert]:
    with world.conn() as conn:
        (outcome,) = evaluate_rules(conn, [rule], world.now(), enqueue=True)
    assert outcome.error is None
    return outcome.alerts


def _proposal(world: World, governor: str, proposal_id: int) -> dict[str, Any]:
    with world.conn() as conn:
        cursor = conn.execute(
            "SELECT kind, state, eta, queued_block, executed_block, canceled_block, targets, signatures,"
            " calldatas, executor, with_delegatecalls, created_tx FROM proposals"
            " WHERE chain_id = %s AND governor = %s AND proposal_id = %s",
            (CHAIN, governor.lower(), proposal_id),
        )
        row = cursor.fetchone()
        assert row is not None, f"no proposal {proposal_id} of {governor}"
        return dict(zip([c.name for c in cursor.description or ()], row, strict=True))


def _chain_outcome(world: World, execute: Any, eta: int) -> tuple[dict[str, int], dict[str, int]]:
    """Health factors on chain at the ETA without and with `execute()` run; the chain is rewound."""
    users = world.users()
    snapshot = world.node.snapshot()
    world.node.rpc("evm_setNextBlockTimestamp", [eta])
    world.node.mine()
    before = world.health(users)
    world.node.revert(snapshot)
    snapshot = world.node.snapshot()
    try:
        world.node.rpc("evm_setNextBlockTimestamp", [eta])
        execute()
        after = world.health(users)
    finally:
        world.node.revert(snapshot)
    return before, after


def _newly(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {u for u in before if before[u] >= HF_ONE > after[u]}


def _operation(world: World, lt: int) -> tuple[list[Any], int]:
    """schedule() arguments of a timelock operation setting WETH's threshold, and its id."""
    gov = world.governance
    data = gov.risk_change_calldata("WETH", lt - 500, lt, 10_500)
    salt = keccak(text=f"cut-{lt}")
    op_id = keccak(
        encode(
            ["address", "uint256", "bytes", "bytes32", "bytes32"],
            [gov.pool_configurator, 0, data, ZERO32, salt],
        )
    )
    return [gov.pool_configurator, 0, data, ZERO32, salt], int.from_bytes(op_id, "big")


def test_timelock_operation_is_a_queued_proposal_and_its_impact_is_exact(world: World) -> None:
    gov, lt = world.governance, _threshold_cut(world)
    args, op_id = _operation(world, lt)
    receipt = world.as_governor("schedule", *args, gov.min_delay)
    world.index()
    row = _proposal(world, gov.timelock, op_id)
    eta = world.block_time(int(receipt["blockNumber"], 16)) + gov.min_delay
    assert (row["kind"], row["state"], int(row["eta"])) == ("timelock", "queued", eta)
    assert row["targets"] == [gov.pool_configurator.lower()] and row["calldatas"] == ["0x" + args[2].hex()]
    with world.conn() as conn:
        changes = decoded_changes(conn, CHAIN, gov.timelock, op_id)
    assert {(c.asset, c.parameter, c.new_value) for c in changes} >= {
        (world.weth, "liquidation_threshold", lt)
    }
    (alert,) = _alerts(world, _impact_rule("timelock-impact"))
    (market,) = alert.facts["markets"]
    assert alert.title.startswith("Queued timelock operation") and "TimelockController" in alert.body
    before, after = _chain_outcome(world, lambda: world.as_governor("execute", *args), eta)
    predicted = {w["user"]: w["hf_after"] for w in market["newly_liquidatable"]}
    assert set(predicted) == _newly(before, after) != set()
    assert all(abs(predicted[u] - after[u] / WAD) < 1e-12 for u in predicted)
    assert _alerts(world, _impact_rule("timelock-impact")) == []  # once per queued operation


def _action(target: str, delegate: bool, signature: str, data: bytes) -> tuple[Any, ...]:
    return (target, delegate, 1, 0, signature, data)


def _queue_payload(world: World, actions: list[tuple[Any, ...]]) -> tuple[int, int]:
    """Create and queue a payload; returns its id and ETA (queue time + the executor's delay)."""
    deployer = world.deployment.deployer
    payload_id = int(world.controller.call("count"))
    world.controller.transact(deployer, "createPayload", actions, gas=2_000_000)
    receipt = world.controller.transact(deployer, "queuePayload", payload_id)
    world.index()
    return payload_id, world.block_time(int(receipt["blockNumber"], 16)) + PAYLOAD_DELAY_S


def test_v3_payload_with_a_configurator_call_is_decoded_and_applied(world: World) -> None:
    gov, lt = world.governance, _threshold_cut(world)
    args = encode(["address", "uint256", "uint256", "uint256"], [world.weth, lt - 500, lt, 10_500])
    payload_id, eta = _queue_payload(world, [_action(gov.pool_configurator, False, COLLATERAL, args)])
    row = _proposal(world, world.controller.address, payload_id)
    assert (row["kind"], row["state"], int(row["eta"])) == ("aave_v3_payload", "queued", eta)
    assert row["executor"] == world.controller.address.lower() and row["with_delegatecalls"] == [False]
    assert row["signatures"] == [COLLATERAL] and row["calldatas"] == ["0x" + args.hex()]
    (alert,) = _alerts(world, _impact_rule("payload-impact", governors=[world.controller.address]))
    (market,) = alert.facts["markets"]
    assert {(c["parameter"], c["new_value"]) for c in market["changes"]} >= {("liquidation_threshold", lt)}
    execute = lambda: world.controller.transact(world.deployment.deployer, "executePayload", payload_id)  # noqa: E731
    before, after = _chain_outcome(world, execute, eta + 1)
    assert {w["user"] for w in market["newly_liquidatable"]} == _newly(before, after) != set()


def test_v3_delegatecall_payload_is_run_on_a_fork(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The values are in the payload contract's code: the rule runs executePayload on a fork at the ETA."""
    gov, lt = world.governance, _threshold_cut(world) - 100
    compiled = compile_sources(world.home, {"DelegatePayload.sol": PAYLOAD})["DelegatePayload"]
    args = [gov.pool_configurator, world.weth, lt - 500, lt]
    payload = deploy_contract(world.node, compiled, args, world.deployment.deployer)
    payload_id, eta = _queue_payload(world, [_action(payload, True, "execute()", b"")])
    with world.conn() as conn:
        assert decoded_changes(conn, CHAIN, world.controller.address, payload_id) == []
    monkeypatch.setenv("DEVNET_RPC_URL", world.node.url)
    monkeypatch.setenv("CHAINRISK_HOME", str(world.home))
    rule = _impact_rule("fork-payload", governors=[world.controller.address], fork_rpc_env="DEVNET_RPC_URL")
    found = [a for a in _alerts(world, rule) if a.facts["proposal_id"] == str(payload_id)]
    (alert,) = found
    (market,) = alert.facts["markets"]
    assert {(c["parameter"], c["new_value"]) for c in market["changes"]} == {
        ("liquidation_threshold", lt),
        ("ltv", lt - 500),
    }
    execute = lambda: world.controller.transact(world.deployment.deployer, "executePayload", payload_id)  # noqa: E731
    before, after = _chain_outcome(world, execute, eta + 1)
    assert {w["user"] for w in market["newly_liquidatable"]} == _newly(before, after) != set()


def test_executed_cancelled_and_governor_queued_operations(world: World) -> None:
    """Executed and cancelled operations and payloads leave the queue; an operation a Governor queues is
    alerted as the Governor's proposal only."""
    gov, (a, *_) = world.governance, world.node.accounts()[1:5]
    lt = _threshold_cut(world)
    cancelled_args, cancelled_id = _operation(world, lt + 100)
    world.as_governor("schedule", *cancelled_args, gov.min_delay)
    world.as_governor("cancel", cancelled_id.to_bytes(32, "big"))
    executed_args, executed_id = _operation(world, lt + 200)
    world.as_governor("schedule", *executed_args, gov.min_delay)
    world.node.rpc("evm_setNextBlockTimestamp", [world.block_time() + gov.min_delay + 1])
    world.as_governor("execute", *executed_args)
    world.controller.transact(world.deployment.deployer, "cancelPayload", 0)
    proposal = gov.propose_risk_change(a, "WETH", lt - 500, lt, 10_500, "Cut WETH liquidation threshold")
    gov.advance_to_voting(proposal)
    gov.vote(proposal, a, FOR)
    gov.advance_past_voting(proposal)
    gov.queue(proposal)
    world.index()
    assert _proposal(world, gov.timelock, cancelled_id)["state"] == "canceled"
    assert _proposal(world, gov.timelock, executed_id)["state"] == "executed"
    assert _proposal(world, world.controller.address, 0)["state"] == "canceled"
    with world.conn() as conn:
        by_governor = conn.execute(
            "SELECT p.proposal_id FROM proposals p JOIN gov_proposal_queued g ON g.tx_hash = p.created_tx"
            " WHERE p.kind = 'timelock' AND p.state = 'queued'"
        ).fetchall()
    assert len(by_governor) == 1  # the Governor's queue scheduled it on the indexed timelock
    kinds()
    rule = AlertRuleConfig.model_validate(
        {"name": "all-queues", "kind": "governance_impact", "window": "30d"}
    )
    subjects = {a.subject for a in _alerts(world, rule)}
    assert f"{CHAIN}:{gov.governor.lower()}:{proposal.proposal_id}" in subjects
    assert f"{CHAIN}:{gov.timelock.lower()}:{int(by_governor[0][0])}" not in subjects
