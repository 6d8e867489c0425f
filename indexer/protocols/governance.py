"""Governance events: OpenZeppelin Governor / Compound GovernorBravo, GovernorAlpha, Aave Governance v2/v3.

Bravo and OZ share topics. Aave v3's ProposalExecuted/Canceled share Bravo's topic0 with the id indexed,
and the v3 VotingMachine's VoteEmitted shares v2's topic0 with different indexing: such contracts are
decoded by their configured kind (address), never by topic alone. OpenZeppelin's TimelockController and
Aave's PayloadsController are decoded as configured contracts only.
"""

from collections.abc import Callable, Sequence
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError

from indexer.decode import DecodeError
from indexer.events import EventSpec, Param, event

_CREATED = (
    "ProposalCreated(uint256 proposalId, address proposer, address[] targets, uint256[] values,"
    " string[] signatures, bytes[] calldatas, uint256 voteStart, uint256 voteEnd, string description)"
)

BRAVO_EVENTS = (
    event(_CREATED, "gov_proposal_created"),
    event(
        "VoteCast(address indexed voter, uint256 proposalId, uint8 support, uint256 weight, string reason)",
        "gov_vote_cast",
    ),
    event(
        "VoteCastWithParams(address indexed voter, uint256 proposalId, uint8 support, uint256 weight,"
        " string reason, bytes params)",
        "gov_vote_cast_with_params",
    ),
    event("ProposalQueued(uint256 proposalId, uint256 eta)", "gov_proposal_queued"),
    event("ProposalExecuted(uint256 proposalId)", "gov_proposal_executed"),
    event("ProposalCanceled(uint256 proposalId)", "gov_proposal_canceled"),
)

ALPHA_EVENTS = (
    event(_CREATED, "gov_proposal_created"),
    event(
        "VoteCast(address voter, uint256 proposalId, bool support, uint256 votes)",
        "gov_alpha_vote_cast",
    ),
    event("ProposalQueued(uint256 proposalId, uint256 eta)", "gov_proposal_queued"),
    event("ProposalExecuted(uint256 proposalId)", "gov_proposal_executed"),
    event("ProposalCanceled(uint256 proposalId)", "gov_proposal_canceled"),
)

AAVE_V2_EVENTS = (
    event(
        "ProposalCreated(uint256 id, address indexed creator, address indexed executor, address[] targets,"
        " uint256[] values, string[] signatures, bytes[] calldatas, bool[] withDelegatecalls,"
        " uint256 startBlock, uint256 endBlock, address strategy, bytes32 ipfsHash)",
        "aave_gov_v2_proposal_created",
    ),
    event(
        "VoteEmitted(uint256 id, address indexed voter, bool support, uint256 votingPower)",
        "aave_gov_v2_vote_emitted",
    ),
    event(
        "ProposalQueued(uint256 id, uint256 executionTime, address indexed initiatorQueueing)",
        "aave_gov_v2_proposal_queued",
    ),
    event(
        "ProposalExecuted(uint256 id, address indexed initiatorExecution)", "aave_gov_v2_proposal_executed"
    ),
    # ProposalCanceled(uint256 id): Bravo's event to the byte, so it shares Bravo's table.
    event("ProposalCanceled(uint256 proposalId)", "gov_proposal_canceled"),
)

AAVE_V3_EVENTS = (
    event(
        "ProposalCreated(uint256 indexed proposalId, address indexed creator, uint8 indexed accessLevel,"
        " bytes32 ipfsHash)",
        "aave_gov_v3_proposal_created",
    ),
    event(
        "ProposalQueued(uint256 indexed proposalId, uint128 votesFor, uint128 votesAgainst)",
        "aave_gov_v3_proposal_queued",
    ),
    event("ProposalExecuted(uint256 indexed proposalId)", "aave_gov_v3_proposal_executed"),
    event("ProposalCanceled(uint256 indexed proposalId)", "aave_gov_v3_proposal_canceled"),
)

AAVE_V3_VOTING_EVENTS = (
    event(
        "VoteEmitted(uint256 indexed proposalId, address indexed voter, bool indexed support,"
        " uint256 votingPower)",
        "aave_gov_v3_vote_emitted",
    ),
)

# OpenZeppelin TimelockController (contracts 5.x, governance/TimelockController.sol): an operation `id` is
# one call or a batch (one CallScheduled per call, `index` its position); a Governor with a timelock
# schedules through it, and so can anyone holding the proposer role, without a proposal.
TIMELOCK_EVENTS = (
    event(
        "CallScheduled(bytes32 indexed id, uint256 indexed index, address target, uint256 value, bytes data,"
        " bytes32 predecessor, uint256 delay)",
        "timelock_call_scheduled",
    ),
    event(
        "CallExecuted(bytes32 indexed id, uint256 indexed index, address target, uint256 value, bytes data)",
        "timelock_call_executed",
    ),
    event("Cancelled(bytes32 indexed id)", "timelock_cancelled"),
    event("MinDelayChange(uint256 oldDuration, uint256 newDuration)", "timelock_min_delay_change"),
)

# Aave Governance v3 PayloadsController (IPayloadsControllerCore.sol): the payloads a passed proposal
# queues, each a list of actions its executor of the required access level runs after the executor's delay.
# ExecutionAction is (address target, bool withDelegateCall, uint8 accessLevel, uint256 value,
# string signature, bytes callData); the access level enum is a uint8 in the ABI.
EXECUTION_ACTION = "(address,bool,uint8,uint256,string,bytes)"
PAYLOAD_CREATED = EventSpec(
    name="PayloadCreated",
    params=(
        Param("uint40", "payloadId", True),
        Param("address", "creator", True),
        Param(EXECUTION_ACTION + "[]", "actions", False),
        Param("uint8", "maximumAccessLevelRequired", True),
    ),
    table="aave_payload_created",
)

AAVE_PAYLOADS_EVENTS = (
    PAYLOAD_CREATED,
    event("PayloadQueued(uint40 payloadId)", "aave_payload_queued"),
    event("PayloadExecuted(uint40 payloadId)", "aave_payload_executed"),
    event("PayloadCancelled(uint40 payloadId)", "aave_payload_cancelled"),
    event(
        "ExecutorSet(uint8 indexed accessLevel, address indexed executor, uint40 delay)",
        "aave_payloads_executor_set",
    ),
)


def _topic_word(topic: str, bits: int) -> int:
    value = int(topic[2:], 16) if len(topic) == 66 else -1
    if not 0 <= value < 1 << bits:
        raise DecodeError(f"topic {topic[:10]}… is not a uint{bits}")
    return value


def _topic_address(topic: str) -> str:
    if len(topic) != 66 or topic[2:26].strip("0"):
        raise DecodeError("address topic has non-zero padding")
    return "0x" + topic[26:].lower()


def decode_payload_created(topics: Sequence[str], data: str) -> tuple[Any, ...]:
    """(payload_id, creator, actions, maximum_access_level_required); each action a JSON object with the
    struct's fields in snake case, bytes as 0x-hex and the value as a decimal string (JSON numbers lose
    precision past 2^53 in most readers)."""
    if len(topics) != 4:
        raise DecodeError(f"expected 4 topics, got {len(topics)}")
    try:
        (raw,) = abi_decode([EXECUTION_ACTION + "[]"], bytes.fromhex(data[2:]), strict=True)
    except (DecodingError, ValueError, OverflowError) as exc:
        raise DecodeError(f"data does not decode as ({EXECUTION_ACTION}[]): {exc}") from None
    actions = [
        {
            "target": str(target).lower(),
            "with_delegate_call": bool(delegate),
            "access_level": int(level),
            "value": str(int(value)),
            "signature": str(signature),
            "call_data": "0x" + bytes(call_data).hex(),
        }
        for target, delegate, level, value, signature, call_data in raw
    ]
    return (_topic_word(topics[1], 40), _topic_address(topics[2]), actions, _topic_word(topics[3], 8))


# Events whose data the generic decoder cannot turn into table values (arrays of structs).
HAND_DECODERS: dict[str, Callable[[Sequence[str], str], tuple[Any, ...]]] = {
    PAYLOAD_CREATED.table: decode_payload_created,
}
