"""An OpenZeppelin Governor that owns the risk parameters of the 'aave' market.

    governance = deploy_governance(deployment, home, {alice: 600_000 * WAD, bob: 400_000 * WAD})
    proposal = governance.propose_risk_change(alice, "WETH", 7_900, 8_400, 10_500, "Raise WETH LT")
    governance.advance_to_voting(proposal)
    governance.vote(proposal, alice, FOR)
    governance.advance_past_voting(proposal)
    governance.queue(proposal)
    governance.execute(proposal)  # warps past the timelock delay first

Any of the configurator's risk-parameter functions (:data:`RISK_FUNCTIONS`) can be proposed, several per
proposal: ``governance.propose_calls(alice, [ConfiguratorCall("setSupplyCap", ("WETH", 2_000_000))], "…")``.

The token (:file:`contracts/governance/GovToken.sol`: ERC20Votes, block-number clock) is minted to the
holders, each of whom delegates to itself. Passed proposals run through OpenZeppelin's TimelockController,
which holds the market's RISK_ADMIN role, so an executed proposal really changes a reserve through the
PoolConfigurator. The helpers use anvil's mining and time travel and expect automining.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from devnet.aave import Contract, Deployment
from devnet.deploy import SupportsRpc, deploy_contract, rpc_for
from devnet.errors import DevnetError
from devnet.solc import CompiledContract, compile_sources

GOVERNANCE_DIR = Path(__file__).resolve().parent / "contracts" / "governance"
AGAINST, FOR, ABSTAIN = 0, 1, 2
VOTING_DELAY_BLOCKS = 1
VOTING_PERIOD_BLOCKS = 20
TIMELOCK_DELAY_S = 3_600
QUORUM_PERCENT = 4
PROPOSAL_THRESHOLD = 0
DEPLOY_GAS = 15_000_000
GOVERNANCE_GAS = 3_000_000
ZERO_ADDRESS = "0x" + "00" * 20
PROPOSER_ROLE = "0x" + keccak(text="PROPOSER_ROLE").hex()
CANCELLER_ROLE = "0x" + keccak(text="CANCELLER_ROLE").hex()
DEFAULT_ADMIN_ROLE = "0x" + "00" * 32
# OpenZeppelin 5 IGovernor events, by topic 0.
PROPOSAL_CREATED_TOPIC = (
    "0x"
    + keccak(
        text="ProposalCreated(uint256,address,address[],uint256[],string[],bytes[],uint256,uint256,string)"
    ).hex()
)
VOTE_CAST_TOPIC = "0x" + keccak(text="VoteCast(address,uint256,uint8,uint256,string)").hex()
PROPOSAL_QUEUED_TOPIC = "0x" + keccak(text="ProposalQueued(uint256,uint256)").hex()
PROPOSAL_EXECUTED_TOPIC = "0x" + keccak(text="ProposalExecuted(uint256)").hex()
# IGovernor.ProposalState
STATES = ("Pending", "Active", "Canceled", "Defeated", "Succeeded", "Queued", "Expired", "Executed")


DELEGATES = {"delegate-1": 400_000, "delegate-2": 300_000, "delegate-3": 200_000, "delegate-4": 100_000}

# The risk-parameter functions of the Aave v3.0 PoolConfigurator (the devnet's @aave/core-v3 1.19.3) that a
# proposal may call, with the parameters their arguments after the first set, in order. The first argument
# is the reserve, except for setEModeCategory, whose first is the eMode category id (its trailing oracle and
# label set no risk parameter). The names are those of the `risk_param_changes` view.
RISK_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "configureReserveAsCollateral": ("ltv", "liquidation_threshold", "liquidation_bonus"),
    "setSupplyCap": ("supply_cap",),
    "setBorrowCap": ("borrow_cap",),
    "setReserveFactor": ("reserve_factor",),
    "setDebtCeiling": ("debt_ceiling",),
    "setLiquidationProtocolFee": ("liquidation_protocol_fee",),
    "setAssetEModeCategory": ("emode_category",),
    "setEModeCategory": ("emode_ltv", "emode_liquidation_threshold", "emode_liquidation_bonus"),
}


def delegate_address(label: str) -> str:
    """The fixed address of a labelled token holder (the scheme the scenario uses for its actors)."""
    return "0x" + keccak(text=f"chainrisk-devnet:{label}")[-20:].hex()


def default_holders() -> dict[str, int]:
    """Four labelled delegates holding 40 / 30 / 20 / 10 % of 1,000,000 tokens (18 decimals)."""
    return {delegate_address(label): whole * 10**18 for label, whole in DELEGATES.items()}


def manifest_with_governance(manifest: Mapping[str, Any], governance: Governance) -> dict[str, Any]:
    """The manifest plus its ``governance`` section, ``end_block`` moved to the governance's last block."""
    end = max(int(manifest["end_block"]), governance.end_block)
    return {**manifest, "end_block": end, "governance": governance.to_manifest()}


class GovernanceError(DevnetError, RuntimeError):
    """A governance step cannot be taken (wrong proposal state, unknown asset or market)."""


def governance_contracts(home: Path) -> dict[str, CompiledContract]:
    """GovToken, RiskGovernor and TimelockController, compiled (and cached) with the pinned solc-js."""
    sources = {
        f"contracts/governance/{path.name}": path.read_text() for path in sorted(GOVERNANCE_DIR.glob("*.sol"))
    }
    return compile_sources(home, sources)


@dataclass(frozen=True)
class ParameterChange:
    """One risk parameter that a call sets, in the contract's units (one row of `risk_param_changes`)."""

    function: str
    asset: str | None  # the reserve's symbol; None for an eMode category's own parameters
    emode_category: int | None  # the category set up, or the one the reserve moves to
    parameter: str
    value: int


@dataclass(frozen=True)
class ConfiguratorCall:
    """A PoolConfigurator risk-parameter call; a reserve is named by its symbol (see RISK_FUNCTIONS)."""

    function: str
    args: tuple[str | int, ...]

    def changes(self) -> list[ParameterChange]:
        """The parameters this call sets."""
        names = RISK_FUNCTIONS[self.function]
        values = [int(v) for v in self.args[1 : 1 + len(names)]]
        asset: str | None
        category: int | None
        if self.function == "setEModeCategory":
            asset, category = None, int(self.args[0])
        else:
            asset = str(self.args[0])
            category = values[0] if self.function == "setAssetEModeCategory" else None
        return [
            ParameterChange(self.function, asset, category, name, value)
            for name, value in zip(names, values, strict=True)
        ]

    def reserves(self) -> list[str]:
        """The reserve symbols the call names (none for setEModeCategory)."""
        return [] if self.function == "setEModeCategory" else [str(self.args[0])]


@dataclass(frozen=True)
class Proposal:
    """A proposal as submitted: what :meth:`Governance.queue` and :meth:`Governance.execute` need again."""

    proposal_id: int
    proposer: str
    targets: tuple[str, ...]
    values: tuple[int, ...]
    calldatas: tuple[bytes, ...]
    description: str
    block: int

    @property
    def description_hash(self) -> bytes:
        return keccak(text=self.description)


@dataclass
class Governance:
    """Addresses and settings of the deployed governance; :meth:`to_manifest` gives its JSON form."""

    token: str
    timelock: str
    governor: str
    market: str
    pool_configurator: str
    acl_manager: str
    voting_delay: int
    voting_period: int
    min_delay: int
    quorum_percent: int
    holders: dict[str, int]
    start_block: int
    end_block: int
    rpc: SupportsRpc = field(repr=False, compare=False)
    home: Path = field(repr=False, compare=False)
    deployment: Deployment = field(repr=False, compare=False)

    # -- contracts

    @cached_property
    def compiled(self) -> dict[str, CompiledContract]:
        """The governance contracts' compiler output (read once per instance)."""
        return governance_contracts(self.home)

    def governor_contract(self) -> Contract:
        return Contract(self.rpc, self.governor, self.compiled["RiskGovernor"].abi)

    def token_contract(self) -> Contract:
        return Contract(self.rpc, self.token, self.compiled["GovToken"].abi)

    def timelock_contract(self) -> Contract:
        return Contract(self.rpc, self.timelock, self.compiled["TimelockController"].abi)

    # -- proposals

    def risk_change_calldata(self, asset: str, ltv: int, liquidation_threshold: int, bonus: int) -> bytes:
        """``PoolConfigurator.configureReserveAsCollateral(asset, ltv, lt, bonus)`` (basis points)."""
        return self.call_calldata(
            ConfiguratorCall("configureReserveAsCollateral", (asset, ltv, liquidation_threshold, bonus))
        )

    def call_calldata(self, call: ConfiguratorCall) -> bytes:
        """The calldata of a PoolConfigurator call, encoded against the deployed configurator's ABI."""
        if call.function not in RISK_FUNCTIONS:
            raise GovernanceError(f"{call.function!r} is not one of: {', '.join(RISK_FUNCTIONS)}")
        reserves = self.deployment.markets[self.market].reserves
        for asset in call.reserves():
            if asset not in reserves:
                listed = ", ".join(reserves)
                raise GovernanceError(f"{asset!r} is not a reserve of {self.market!r}; listed: {listed}")
        configurator = self.deployment.configurator(self.market)
        entry = next(
            e for e in configurator.abi if e.get("type") == "function" and e["name"] == call.function
        )
        types = [str(p["type"]) for p in entry["inputs"]]
        # A reserve symbol stands for its token; other arguments go as given.
        args = [
            self.deployment.assets[a].token if t == "address" and isinstance(a, str) and a in reserves else a
            for t, a in zip(types, call.args, strict=True)
        ]
        selector = keccak(text=f"{call.function}({','.join(types)})")[:4]
        return selector + encode(types, args)

    def propose_calls(self, proposer: str, calls: Sequence[ConfiguratorCall], description: str) -> Proposal:
        """Propose PoolConfigurator calls, executed in order (all or none) if the proposal passes."""
        calldatas = [self.call_calldata(call) for call in calls]
        targets = [self.pool_configurator] * len(calls)
        return self.propose(proposer, targets, [0] * len(calls), calldatas, description)

    def propose_risk_change(
        self,
        proposer: str,
        asset: str,
        ltv: int,
        liquidation_threshold: int,
        bonus: int,
        description: str,
    ) -> Proposal:
        """Propose new collateral parameters (basis points) for ``asset`` in the governed market."""
        calldata = self.risk_change_calldata(asset, ltv, liquidation_threshold, bonus)
        return self.propose(proposer, [self.pool_configurator], [0], [calldata], description)

    def propose(
        self,
        proposer: str,
        targets: Sequence[str],
        values: Sequence[int],
        calldatas: Sequence[bytes],
        description: str,
    ) -> Proposal:
        """Submit any proposal; returns it with the id the governor gave it."""
        governor = self.governor_contract()
        args = (list(targets), list(values), list(calldatas), description)
        receipt = governor.transact(proposer, "propose", *args, gas=GOVERNANCE_GAS)
        proposal_id = int(governor.call("hashProposal", *args[:3], keccak(text=description)))
        return Proposal(
            proposal_id=proposal_id,
            proposer=proposer.lower(),
            targets=tuple(t.lower() for t in targets),
            values=tuple(values),
            calldatas=tuple(calldatas),
            description=description,
            block=int(receipt["blockNumber"], 16),
        )

    def state(self, proposal: Proposal | int) -> str:
        """The proposal's state name (``Pending``, ``Active``, ..., ``Executed``)."""
        return STATES[int(self.governor_contract().call("state", _id(proposal)))]

    def votes(self, proposal: Proposal | int) -> dict[str, int]:
        """Votes so far: ``{"against": .., "for": .., "abstain": ..}``."""
        against, in_favour, abstain = self.governor_contract().call("proposalVotes", _id(proposal))
        return {"against": int(against), "for": int(in_favour), "abstain": int(abstain)}

    def vote(self, proposal: Proposal | int, voter: str, support: int, reason: str = "") -> dict[str, Any]:
        """Cast ``voter``'s vote (:data:`AGAINST`, :data:`FOR` or :data:`ABSTAIN`); returns the receipt."""
        if support not in (AGAINST, FOR, ABSTAIN):
            raise GovernanceError(f"support must be 0 (against), 1 (for) or 2 (abstain), got {support}")
        governor = self.governor_contract()
        if reason:
            return governor.transact(voter, "castVoteWithReason", _id(proposal), support, reason)
        return governor.transact(voter, "castVote", _id(proposal), support)

    def advance_to_voting(self, proposal: Proposal | int) -> None:
        """Mine blocks until voting on the proposal is open."""
        start = int(self.governor_contract().call("proposalSnapshot", _id(proposal))) + 1
        self._mine_until(start)

    def advance_past_voting(self, proposal: Proposal | int) -> None:
        """Mine blocks until the voting period has ended."""
        deadline = int(self.governor_contract().call("proposalDeadline", _id(proposal)))
        self._mine_until(deadline + 1)

    def queue(self, proposal: Proposal) -> dict[str, Any]:
        """Queue a succeeded proposal in the timelock; returns the receipt."""
        self._require(proposal, "Succeeded")
        return self.governor_contract().transact(
            proposal.proposer, "queue", *self._call_args(proposal), gas=GOVERNANCE_GAS
        )

    def execute(self, proposal: Proposal, *, sender: str | None = None, warp: bool = True) -> dict[str, Any]:
        """Execute a queued proposal (after moving time past its ETA when ``warp``); returns the receipt."""
        self._require(proposal, "Queued")
        governor = self.governor_contract()
        if warp:
            eta = int(governor.call("proposalEta", proposal.proposal_id))
            latest = int(self.rpc.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
            if latest < eta:
                self.rpc.rpc("evm_setNextBlockTimestamp", [eta])
        return governor.transact(
            sender or proposal.proposer, "execute", *self._call_args(proposal), gas=GOVERNANCE_GAS
        )

    def pass_proposal(self, proposal: Proposal, votes: Mapping[str, int]) -> dict[str, Any]:
        """Vote (``{voter: support}``), queue and execute in one go; returns the execution receipt."""
        self.advance_to_voting(proposal)
        for voter, support in votes.items():
            self.vote(proposal, voter, support)
        self.advance_past_voting(proposal)
        self.queue(proposal)
        return self.execute(proposal)

    # -- manifest

    def to_manifest(self) -> dict[str, Any]:
        """The ``governance`` section of the devnet manifest."""
        return {
            "token": self.token,
            "timelock": self.timelock,
            "governor": self.governor,
            "market": self.market,
            "pool_configurator": self.pool_configurator,
            "acl_manager": self.acl_manager,
            "voting_delay": self.voting_delay,
            "voting_period": self.voting_period,
            "min_delay": self.min_delay,
            "quorum_percent": self.quorum_percent,
            "holders": dict(self.holders),
            "start_block": self.start_block,
            "end_block": self.end_block,
        }

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], deployment: Deployment) -> Governance | None:
        """The governance of a full devnet manifest, or None when the manifest has no such section."""
        body = manifest.get("governance")
        if not body:
            return None
        return cls(
            token=str(body["token"]),
            timelock=str(body["timelock"]),
            governor=str(body["governor"]),
            market=str(body["market"]),
            pool_configurator=str(body["pool_configurator"]),
            acl_manager=str(body["acl_manager"]),
            voting_delay=int(body["voting_delay"]),
            voting_period=int(body["voting_period"]),
            min_delay=int(body["min_delay"]),
            quorum_percent=int(body["quorum_percent"]),
            holders={str(a): int(v) for a, v in body["holders"].items()},
            start_block=int(body["start_block"]),
            end_block=int(body["end_block"]),
            rpc=deployment.rpc,
            home=deployment.home,
            deployment=deployment,
        )

    # -- internals

    def _call_args(self, proposal: Proposal) -> tuple[Any, ...]:
        return (
            list(proposal.targets),
            list(proposal.values),
            list(proposal.calldatas),
            proposal.description_hash,
        )

    def _require(self, proposal: Proposal, expected: str) -> None:
        state = self.state(proposal)
        if state != expected:
            raise GovernanceError(f"proposal {proposal.proposal_id} is {state}, not {expected}")

    def _mine_until(self, block: int) -> None:
        latest = int(self.rpc.rpc("eth_blockNumber"), 16)
        if block > latest:
            self.rpc.rpc("anvil_mine", [hex(block - latest)])


def _id(proposal: Proposal | int) -> int:
    return proposal.proposal_id if isinstance(proposal, Proposal) else int(proposal)


def deploy_governance(
    deployment: Deployment,
    home: Path,
    holders: Mapping[str, int],
    *,
    market: str = "aave",
    voting_delay: int = VOTING_DELAY_BLOCKS,
    voting_period: int = VOTING_PERIOD_BLOCKS,
    min_delay: int = TIMELOCK_DELAY_S,
    quorum_percent: int = QUORUM_PERCENT,
    proposal_threshold: int = PROPOSAL_THRESHOLD,
) -> Governance:
    """Deploy token, timelock and governor; the timelock becomes RISK_ADMIN of ``market``.

    ``holders`` maps addresses to token amounts (18 decimals); each delegates its votes to itself, which
    needs an unlocked account or anvil impersonation (used for addresses the node does not hold).
    """
    if market not in deployment.markets:
        raise GovernanceError(f"unknown market {market!r}; deployed: {', '.join(deployment.markets)}")
    if not holders:
        raise GovernanceError("governance needs at least one token holder")
    if voting_period < 1 or voting_delay < 0 or min_delay < 0 or not 0 < quorum_percent <= 100:
        raise GovernanceError("voting period must be ≥ 1 block, delays ≥ 0 and quorum in (0, 100] percent")
    rpc = rpc_for(deployment.rpc)
    owner = deployment.deployer
    start = int(rpc.rpc("eth_blockNumber"), 16) + 1
    compiled = governance_contracts(home)
    accounts = {str(a).lower() for a in rpc.rpc("eth_accounts")}
    wallets = {address.lower(): int(amount) for address, amount in holders.items()}
    token = deploy_contract(
        rpc,
        compiled["GovToken"],
        ["Risk Governance Token", "RISK", list(wallets), list(wallets.values())],
        owner,
        gas=DEPLOY_GAS,
    )
    timelock = deploy_contract(
        rpc, compiled["TimelockController"], [min_delay, [], [ZERO_ADDRESS], owner], owner, gas=DEPLOY_GAS
    )
    governor = deploy_contract(
        rpc,
        compiled["RiskGovernor"],
        [token, timelock, voting_delay, voting_period, proposal_threshold, quorum_percent],
        owner,
        gas=DEPLOY_GAS,
    )
    lock = Contract(rpc, timelock, compiled["TimelockController"].abi)
    lock.transact(owner, "grantRole", bytes.fromhex(PROPOSER_ROLE[2:]), governor)
    lock.transact(owner, "grantRole", bytes.fromhex(CANCELLER_ROLE[2:]), governor)
    lock.transact(owner, "renounceRole", bytes.fromhex(DEFAULT_ADMIN_ROLE[2:]), owner)
    acl = deployment.markets[market].acl_manager
    # Every PoolConfigurator function in RISK_FUNCTIONS is onlyRiskOrPoolAdmins: RISK_ADMIN suffices.
    deployment.contract(acl, "ACLManager").transact(owner, "addRiskAdmin", timelock)
    votes = Contract(rpc, token, compiled["GovToken"].abi)
    for wallet in wallets:
        impersonate = wallet not in accounts
        if impersonate:
            rpc.rpc("anvil_impersonateAccount", [wallet])
            if int(rpc.rpc("eth_getBalance", [wallet, "latest"]), 16) == 0:
                rpc.rpc("anvil_setBalance", [wallet, hex(10**18)])
        try:
            votes.transact(wallet, "delegate", wallet, gas=200_000)
        finally:
            if impersonate:
                rpc.rpc("anvil_stopImpersonatingAccount", [wallet])
    return Governance(
        token=token,
        timelock=timelock,
        governor=governor,
        market=market,
        pool_configurator=deployment.markets[market].pool_configurator,
        acl_manager=acl,
        voting_delay=voting_delay,
        voting_period=voting_period,
        min_delay=min_delay,
        quorum_percent=quorum_percent,
        holders=wallets,
        start_block=start,
        end_block=int(rpc.rpc("eth_blockNumber"), 16),
        rpc=rpc,
        home=home,
        deployment=deployment,
    )
