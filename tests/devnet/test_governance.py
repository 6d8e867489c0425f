"""A Governor whose timelock is RISK_ADMIN of the 'aave' market: an executed proposal changes a reserve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from devnet.aave import AAVE_MARKET, Deployment, deploy_markets
from devnet.anvil import Anvil
from devnet.governance import (
    ABSTAIN,
    AGAINST,
    FOR,
    PROPOSAL_CREATED_TOPIC,
    PROPOSAL_EXECUTED_TOPIC,
    PROPOSAL_QUEUED_TOPIC,
    RISK_FUNCTIONS,
    VOTE_CAST_TOPIC,
    ZERO_ADDRESS,
    ConfiguratorCall,
    Governance,
    GovernanceError,
    deploy_governance,
)
from devnet.scenario import simulate
from indexer.views import RISK_PARAM_CHANGES
from tests.devnet.fixtures import devnet_home  # noqa: F401

WAD = 10**18
TOPICS = {
    "ProposalCreated": "0x7d84a6263ae0d98d3329bd7b46bb4e8d6f98cd35a7adb45c274c8b7fd5ebd5e0",
    "VoteCast": "0xb8e138887d0aa13bab447e82de9d5c1777041ecd21ca36ba824ff1e6c07ddda4",
    "ProposalQueued": "0x9a2e42fd6722813d69113e7d0079d3d940171428df7373df9c7f7617cfda2892",
    "ProposalExecuted": "0x712ae1383f79ac853f8d882153778e0260ef8f03b504e2866e0593e04d2b291f",
}


@pytest.fixture(scope="module")
def chain(devnet_home: Path) -> Iterator[tuple[Anvil, Deployment, Governance]]:  # noqa: F811
    with Anvil(devnet_home) as node:
        deployment = deploy_markets(node, devnet_home)
        a, b, c, d = node.accounts()[1:5]
        holders = {a: 500_000 * WAD, b: 300_000 * WAD, c: 150_000 * WAD, d: 50_000 * WAD}
        yield node, deployment, deploy_governance(deployment, devnet_home, holders)


@pytest.fixture
def fresh(chain: tuple[Anvil, Deployment, Governance]) -> Iterator[tuple[Deployment, Governance, list[str]]]:
    node, deployment, governance = chain
    snapshot = node.snapshot()
    yield deployment, governance, node.accounts()[1:5]
    node.revert(snapshot)


def _threshold(deployment: Deployment, market: str, symbol: str) -> int:
    (config,) = deployment.pool(market).call("getConfiguration", deployment.assets[symbol].token)
    return (int(config) >> 16) & 0xFFFF


def _caps_and_factor(deployment: Deployment, symbol: str) -> tuple[int, int, int]:
    """(supply cap, borrow cap, reserve factor) of an 'aave' reserve, as the data provider reports them."""
    data = deployment.contract(deployment.markets["aave"].data_provider, "AaveProtocolDataProvider")
    token = deployment.assets[symbol].token
    borrow_cap, supply_cap = data.call("getReserveCaps", token)
    return int(supply_cap), int(borrow_cap), int(data.call("getReserveConfigurationData", token)[4])


def _emode(deployment: Deployment, category: int) -> tuple[int, int, int]:
    """(LTV, liquidation threshold, bonus) of an eMode category of the 'aave' market."""
    ltv, threshold, bonus, _, _ = deployment.pool("aave").call("getEModeCategoryData", category)
    return int(ltv), int(threshold), int(bonus)


def _topics(receipt: dict[str, Any], address: str) -> list[str]:
    return [log["topics"][0] for log in receipt["logs"] if log["address"].lower() == address]


def test_event_topics_are_openzeppelin_5() -> None:
    assert TOPICS["ProposalCreated"] == PROPOSAL_CREATED_TOPIC
    assert TOPICS["VoteCast"] == VOTE_CAST_TOPIC
    assert TOPICS["ProposalQueued"] == PROPOSAL_QUEUED_TOPIC
    assert TOPICS["ProposalExecuted"] == PROPOSAL_EXECUTED_TOPIC


def test_proposal_changes_liquidation_threshold(fresh: tuple[Deployment, Governance, list[str]]) -> None:
    deployment, gov, (a, b, c, d) = fresh
    assert _threshold(deployment, "aave", "WETH") == 8_250
    proposal = gov.propose_risk_change(a, "WETH", 7_900, 8_600, 10_500, "Raise WETH liquidation threshold")
    created = deployment.rpc.rpc("eth_getLogs", [{"fromBlock": hex(proposal.block), "address": gov.governor}])
    assert [log["topics"][0] for log in created] == [TOPICS["ProposalCreated"]]
    assert gov.state(proposal) == "Pending"
    gov.advance_to_voting(proposal)
    assert gov.state(proposal) == "Active"
    receipts = [gov.vote(proposal, a, FOR, "safer with eMode"), gov.vote(proposal, b, AGAINST)]
    receipts.append(gov.vote(proposal, c, ABSTAIN))
    for receipt in receipts:
        assert _topics(receipt, gov.governor) == [TOPICS["VoteCast"]]
    assert gov.votes(proposal) == {"against": 300_000 * WAD, "for": 500_000 * WAD, "abstain": 150_000 * WAD}
    with pytest.raises(GovernanceError, match="Active, not Succeeded"):
        gov.queue(proposal)
    gov.advance_past_voting(proposal)
    assert gov.state(proposal) == "Succeeded"
    queued = gov.queue(proposal)
    assert _topics(queued, gov.governor) == [TOPICS["ProposalQueued"]]
    assert gov.state(proposal) == "Queued"
    assert _threshold(deployment, "aave", "WETH") == 8_250
    executed = gov.execute(proposal, sender=d)
    assert TOPICS["ProposalExecuted"] in _topics(executed, gov.governor)
    assert gov.state(proposal) == "Executed"
    assert _threshold(deployment, "aave", "WETH") == 8_600
    data = deployment.contract(deployment.markets["aave"].data_provider, "AaveProtocolDataProvider")
    config = data.call("getReserveConfigurationData", deployment.assets["WETH"].token)
    assert tuple(config[1:4]) == (7_900, 8_600, 10_500)
    assert _threshold(deployment, "spark", "WETH") == 8_300  # the other market is not governed


def test_view_decodes_the_published_selectors(chain: tuple[Anvil, Deployment, Governance]) -> None:
    """risk_param_changes matches calls by selector and signature: both are the published ABI's."""
    _, deployment, _ = chain
    abi = deployment.configurator("aave").abi
    view = " ".join(RISK_PARAM_CHANGES.split())
    for function, parameters in RISK_FUNCTIONS.items():
        (entry,) = [e for e in abi if e.get("type") == "function" and e["name"] == function]
        signature = f"{function}({','.join(str(i['type']) for i in entry['inputs'])})"
        selector = keccak(text=signature)[:4].hex()
        assert f"('{selector}', '{signature}', '{function}'," in view
        for word, parameter in enumerate(parameters, start=1):
            assert f"('{function}', '{parameter}', {word})" in view


def test_one_proposal_sets_caps_factor_and_emode(fresh: tuple[Deployment, Governance, list[str]]) -> None:
    deployment, gov, (a, b, _, _) = fresh
    weth, usdc = AAVE_MARKET.reserves["WETH"], AAVE_MARKET.reserves["USDC"]
    assert _caps_and_factor(deployment, "WETH") == (weth.supply_cap, weth.borrow_cap, weth.reserve_factor)
    assert _emode(deployment, 1) == (9_300, 9_500, 10_100)
    calls = [
        ConfiguratorCall("setSupplyCap", ("WETH", 1_900_000)),
        ConfiguratorCall("setBorrowCap", ("WETH", 1_500_000)),
        ConfiguratorCall("setReserveFactor", ("USDC", 1_250)),
        ConfiguratorCall("setEModeCategory", (1, 9_400, 9_650, 10_100, ZERO_ADDRESS, "ETH correlated")),
    ]
    proposal = gov.propose_calls(a, calls, "Caps, USDC reserve factor and ETH eMode")
    assert proposal.targets == (gov.pool_configurator.lower(),) * 4
    receipt = gov.pass_proposal(proposal, {a: FOR, b: AGAINST})
    assert gov.state(proposal) == "Executed"
    assert _caps_and_factor(deployment, "WETH") == (1_900_000, 1_500_000, weth.reserve_factor)
    assert _caps_and_factor(deployment, "USDC")[2] == 1_250 != usdc.reserve_factor
    assert _emode(deployment, 1) == (9_400, 9_650, 10_100)
    emitted = {
        log["topics"][0] for log in receipt["logs"] if log["address"].lower() == gov.pool_configurator.lower()
    }
    assert emitted == {
        "0x" + keccak(text=event).hex()
        for event in (
            "SupplyCapChanged(address,uint256,uint256)",
            "BorrowCapChanged(address,uint256,uint256)",
            "ReserveFactorChanged(address,uint256,uint256)",
            "EModeCategoryAdded(uint8,uint256,uint256,uint256,address,string)",
        )
    }
    changes = [change for call in calls for change in call.changes()]
    assert [(c.asset, c.emode_category, c.parameter, c.value) for c in changes] == [
        ("WETH", None, "supply_cap", 1_900_000),
        ("WETH", None, "borrow_cap", 1_500_000),
        ("USDC", None, "reserve_factor", 1_250),
        (None, 1, "emode_ltv", 9_400),
        (None, 1, "emode_liquidation_threshold", 9_650),
        (None, 1, "emode_liquidation_bonus", 10_100),
    ]


def test_only_risk_functions_are_proposed(fresh: tuple[Deployment, Governance, list[str]]) -> None:
    _, gov, (a, *_) = fresh
    with pytest.raises(GovernanceError, match="'setPoolPause' is not one of"):
        gov.propose_calls(a, [ConfiguratorCall("setPoolPause", (True,))], "pause")
    with pytest.raises(GovernanceError, match="'PEPE' is not a reserve"):
        gov.propose_calls(a, [ConfiguratorCall("setSupplyCap", ("PEPE", 1))], "unknown")


def test_defeated_proposal_changes_nothing(fresh: tuple[Deployment, Governance, list[str]]) -> None:
    deployment, gov, (a, _, _, d) = fresh
    proposal = gov.propose_risk_change(d, "WBTC", 6_000, 7_000, 11_000, "Cut WBTC")
    gov.advance_to_voting(proposal)
    gov.vote(proposal, a, AGAINST)
    gov.vote(proposal, d, FOR)
    gov.advance_past_voting(proposal)
    assert gov.state(proposal) == "Defeated"
    with pytest.raises(GovernanceError, match="Defeated"):
        gov.queue(proposal)
    assert _threshold(deployment, "aave", "WBTC") == 7_800


def test_timelock_is_only_risk_admin(fresh: tuple[Deployment, Governance, list[str]]) -> None:
    deployment, gov, (a, *_) = fresh
    acl = deployment.contract(gov.acl_manager, "ACLManager")
    assert acl.call("isRiskAdmin", gov.timelock)
    assert not acl.call("isPoolAdmin", gov.timelock)
    assert not acl.call("isRiskAdmin", gov.governor)
    with pytest.raises(GovernanceError, match="not a reserve"):
        gov.propose_risk_change(a, "PEPE", 1, 2, 10_100, "unknown")


def test_manifest_round_trip(fresh: tuple[Deployment, Governance, list[str]]) -> None:
    deployment, gov, _ = fresh
    manifest = {**deployment.to_manifest(), "governance": gov.to_manifest()}
    again = Deployment.from_manifest(manifest, deployment.rpc, deployment.home)
    assert again.markets == deployment.markets
    rebuilt = Governance.from_manifest(manifest, again)
    assert rebuilt is not None and rebuilt.to_manifest() == gov.to_manifest()
    assert Governance.from_manifest(deployment.to_manifest(), again) is None
    assert rebuilt.token_contract().call("getVotes", next(iter(gov.holders))) == next(
        iter(gov.holders.values())
    )


def test_scenario_passes_proposals_deterministically(
    chain: tuple[Anvil, Deployment, Governance],
) -> None:
    node, deployment, gov = chain
    runs = []
    for _ in range(2):
        snapshot = node.snapshot()
        try:
            result = simulate(deployment, 1, 8, 3, governance=gov)
            last = node.rpc("eth_getBlockByNumber", ["latest", False])["hash"]
            thresholds = {s: _threshold(deployment, "aave", s) for s in ("WETH", "wstETH", "WBTC")}
            caps = {
                "WETH": _caps_and_factor(deployment, "WETH")[0],
                "USDC": _caps_and_factor(deployment, "USDC")[1],
                "USDC factor": _caps_and_factor(deployment, "USDC")[2],
            }
            runs.append((result, last, thresholds, caps, _emode(deployment, 1)))
        finally:
            node.revert(snapshot)
    (first, hash_a, thresholds, caps, emode), (second, hash_b, *_) = runs
    assert hash_a == hash_b
    assert {**first.to_dict(), "wall_s": 0} == {**second.to_dict(), "wall_s": 0}
    assert [p.state for p in first.proposals] == ["Executed", "Executed", "Executed"]
    assert thresholds == {"WETH": 8_300, "wstETH": 7_950, "WBTC": 7_800}
    assert caps == {"WETH": 2_000_000, "USDC": 1_650_000_000, "USDC factor": 1_200}
    assert emode == (9_350, 9_600, 10_100)
    assert {c.parameter for p in first.proposals for c in p.changes} >= {
        "liquidation_threshold",
        "supply_cap",
        "borrow_cap",
        "reserve_factor",
        "emode_liquidation_threshold",
    }
    for proposal in first.proposals:
        assert first.first_block <= proposal.proposed_block < proposal.queued_block < proposal.executed_block
        assert proposal.executed_block <= first.last_block
        assert set(proposal.votes) == set(gov.holders)
    assert node.block_number() < first.first_block  # rewound: the scenario's blocks are gone
