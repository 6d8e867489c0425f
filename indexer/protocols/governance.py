"""Governance events: OpenZeppelin Governor / Compound GovernorBravo, GovernorAlpha, Aave Governance v2/v3.

Bravo and OZ share topics. Aave v3's ProposalExecuted/Canceled share Bravo's topic0 with the id indexed,
and the v3 VotingMachine's VoteEmitted shares v2's topic0 with different indexing: such contracts are
decoded by their configured kind (address), never by topic alone.
"""

from indexer.events import event

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
