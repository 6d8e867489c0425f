"""Governance inside the market scenario: risk-parameter proposals that delegates vote on, queue and execute.

The scenario calls :meth:`GovernanceAgent.act` once per hourly step, after that step's blocks are mined. A
proposal moves one phase per step: proposed (plus ``votingDelay`` empty blocks), voted on by every holder,
queued once the voting period is over (empty blocks are mined up to its deadline), and executed in the
first step after the timelock's delay. Votes come from their own seeded generator, so turning governance
on does not change what the other agents do. Everything is sent through the scenario's batched mining.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_utils.crypto import keccak

from devnet.aave import Contract
from devnet.governance import (
    ABSTAIN,
    AGAINST,
    FOR,
    ZERO_ADDRESS,
    ConfiguratorCall,
    Governance,
    ParameterChange,
)

Receipt = dict[str, Any]
GOVERNANCE_GAS = 3_000_000
SUPPORT = {AGAINST: "against", FOR: "for", ABSTAIN: "abstain"}


class Send(Protocol):
    def __call__(
        self,
        contract: Contract,
        sender: str,
        function: str,
        *args: Any,
        gas: int = ...,
        then: Callable[[Receipt], None] | None = ...,
    ) -> None: ...


@dataclass(frozen=True)
class Chain:
    """What the agent needs from the scenario: queued sends, batched mining and the clock."""

    send: Send
    mine: Callable[[], None]
    mine_empty: Callable[[int], None]
    now: Callable[[], int]


@dataclass(frozen=True)
class RiskChange:
    """One proposal: PoolConfigurator calls on the governed market, executed in order, all or none."""

    description: str
    calls: tuple[ConfiguratorCall, ...]

    def changes(self) -> list[ParameterChange]:
        return [change for call in self.calls for change in call.changes()]


def collateral_change(asset: str, ltv: int, threshold: int, bonus: int, description: str) -> RiskChange:
    """New collateral parameters (basis points) for one reserve."""
    return RiskChange(
        description, (ConfiguratorCall("configureReserveAsCollateral", (asset, ltv, threshold, bonus)),)
    )


# Changes a risk team could well make: more room for WETH, less for wstETH after a volatile stretch, then a
# routine batch of caps, a reserve factor and the ETH eMode category (the devnet's caps are in whole tokens
# and leave room, so raising them changes no one's actions; the eMode threshold must stay above its assets').
DEFAULT_CHANGES = (
    collateral_change(
        "WETH", 8_050, 8_300, 10_500, "Raise WETH LTV to 80.5% and liquidation threshold to 83%"
    ),
    collateral_change(
        "wstETH", 7_700, 7_950, 10_600, "Lower wstETH LTV to 77% and liquidation threshold to 79.5%"
    ),
    RiskChange(
        "Raise WETH supply cap to 2,000,000 and USDC borrow cap to 1,650,000,000, USDC reserve factor to 12%,"
        " ETH eMode to 93.5% LTV and 96% liquidation threshold",
        (
            ConfiguratorCall("setSupplyCap", ("WETH", 2_000_000)),
            ConfiguratorCall("setBorrowCap", ("USDC", 1_650_000_000)),
            ConfiguratorCall("setReserveFactor", ("USDC", 1_200)),
            ConfiguratorCall("setEModeCategory", (1, 9_350, 9_600, 10_100, ZERO_ADDRESS, "ETH correlated")),
        ),
    ),
)


@dataclass
class ProposalOutcome:
    """One scenario proposal and what became of it (``state`` is the governor's final state name)."""

    proposal_id: int
    description: str
    market: str
    changes: list[ParameterChange]
    proposer: str
    proposed_block: int = 0
    queued_block: int = 0
    executed_block: int = 0
    votes: dict[str, str] = field(default_factory=dict)
    state: str = "Planned"


@dataclass
class _Plan:
    step: int
    change: RiskChange
    calldatas: tuple[bytes, ...]
    outcome: ProposalOutcome
    phase: str = "planned"  # planned -> proposed -> voted -> queued -> executed (or failed)
    eta: int = 0


class GovernanceAgent:
    """Plans ``changes`` at evenly spaced steps of a ``steps``-hour run and carries each one through."""

    def __init__(
        self,
        governance: Governance,
        steps: int,
        seed: int,
        changes: tuple[RiskChange, ...] = DEFAULT_CHANGES,
    ) -> None:
        self.gov = governance
        self.rng = random.Random(f"governance:{seed}")
        self.governor = governance.governor_contract()
        self.configurator = governance.pool_configurator
        # Largest holder proposes; the larger half of the holders always vote for, the others at random.
        self.holders = sorted(governance.holders, key=lambda a: (-governance.holders[a], a))
        self.proposer = self.holders[0]
        # Executed changes the scenario's health estimates need: (market, reserve) -> (LTV, threshold) and
        # (market, eMode category) -> threshold.
        self.overrides: dict[tuple[str, str], tuple[int, int]] = {}
        self.emode_thresholds: dict[tuple[str, int], int] = {}
        reserves = governance.deployment.markets[governance.market].reserves
        usable = [c for c in changes if all(a in reserves for call in c.calls for a in call.reserves())]
        self.plans = []
        for index, change in enumerate(usable):
            calldatas = tuple(governance.call_calldata(call) for call in change.calls)
            outcome = ProposalOutcome(
                proposal_id=self._proposal_id(calldatas, change.description),
                description=change.description,
                market=governance.market,
                changes=change.changes(),
                proposer=self.proposer,
            )
            step = max(1, (index + 1) * steps // (len(usable) + 1))
            self.plans.append(_Plan(step, change, calldatas, outcome))

    def holders_to_fund(self) -> list[str]:
        """Addresses that send transactions (they need gas money)."""
        return list(self.holders)

    def act(self, step: int, chain: Chain) -> None:
        """Move every proposal on by at most one phase."""
        for plan in self.plans:
            if plan.phase == "planned" and step >= plan.step:
                self._propose(plan, chain)
            elif plan.phase == "proposed":
                self._vote(plan, chain)
            elif plan.phase == "voted":
                self._queue(plan, chain)
            elif plan.phase == "queued" and chain.now() + 12 >= plan.eta:
                self._execute(plan, chain)

    def outcomes(self) -> list[ProposalOutcome]:
        """Each planned proposal with its final state on chain."""
        for plan in self.plans:
            if plan.phase != "planned":
                plan.outcome.state = self._state(plan)
        return [plan.outcome for plan in self.plans]

    # -- phases

    def _propose(self, plan: _Plan, chain: Chain) -> None:
        def proposed(receipt: Receipt) -> None:
            plan.phase = "proposed"
            plan.outcome.proposed_block = int(receipt["blockNumber"], 16)

        args = (*self._calls(plan.calldatas), plan.change.description)
        chain.send(self.governor, self.proposer, "propose", *args, gas=GOVERNANCE_GAS, then=proposed)
        chain.mine()
        if plan.phase == "proposed":
            chain.mine_empty(self.gov.voting_delay)
        else:
            plan.phase = "failed"

    def _vote(self, plan: _Plan, chain: Chain) -> None:
        pid = plan.outcome.proposal_id
        for rank, voter in enumerate(self.holders):
            support = FOR if rank < (len(self.holders) + 1) // 2 else self._random_support()
            plan.outcome.votes[voter] = SUPPORT[support]
            chain.send(self.governor, voter, "castVote", pid, support, gas=300_000)
        chain.mine()
        plan.phase = "voted"

    def _queue(self, plan: _Plan, chain: Chain) -> None:
        pid = plan.outcome.proposal_id
        deadline = int(self.governor.call("proposalDeadline", pid))
        latest = int(self.gov.rpc.rpc("eth_blockNumber"), 16)
        chain.mine_empty(max(0, deadline + 1 - latest))  # calls see the latest block's number
        if self._state(plan) != "Succeeded":
            plan.phase = "failed"
            return

        def queued(receipt: Receipt) -> None:
            plan.phase = "queued"
            plan.outcome.queued_block = int(receipt["blockNumber"], 16)

        chain.send(self.governor, self.proposer, "queue", *self._args(plan), gas=GOVERNANCE_GAS, then=queued)
        chain.mine()
        if plan.phase == "queued":
            plan.eta = int(self.governor.call("proposalEta", pid))
        else:
            plan.phase = "failed"

    def _execute(self, plan: _Plan, chain: Chain) -> None:
        def executed(receipt: Receipt) -> None:
            plan.phase = "executed"
            plan.outcome.executed_block = int(receipt["blockNumber"], 16)
            self._remember(plan.change.calls)

        sender = self.holders[-1]  # anyone may execute through the timelock
        chain.send(self.governor, sender, "execute", *self._args(plan), gas=GOVERNANCE_GAS, then=executed)
        chain.mine()
        if plan.phase != "executed":
            plan.phase = "failed"

    # -- helpers

    def _random_support(self) -> int:
        return self.rng.choices([FOR, AGAINST, ABSTAIN], weights=[0.5, 0.3, 0.2])[0]

    def _remember(self, calls: tuple[ConfiguratorCall, ...]) -> None:
        """Record executed thresholds: the scenario's health estimates use them from now on."""
        market = self.gov.market
        for call in calls:
            if call.function == "configureReserveAsCollateral":
                asset, ltv, threshold = call.args[:3]
                self.overrides[(market, str(asset))] = (int(ltv), int(threshold))
            elif call.function == "setEModeCategory":
                category, _, threshold = call.args[:3]
                self.emode_thresholds[(market, int(category))] = int(threshold)

    def _calls(self, calldatas: tuple[bytes, ...]) -> tuple[list[str], list[int], list[bytes]]:
        return [self.configurator] * len(calldatas), [0] * len(calldatas), list(calldatas)

    def _args(self, plan: _Plan) -> tuple[Any, ...]:
        return (*self._calls(plan.calldatas), _hash(plan.change.description))

    def _proposal_id(self, calldatas: tuple[bytes, ...], description: str) -> int:
        return int(self.governor.call("hashProposal", *self._calls(calldatas), _hash(description)))

    def _state(self, plan: _Plan) -> str:
        return self.gov.state(plan.outcome.proposal_id)


def _hash(description: str) -> bytes:
    return keccak(text=description)
