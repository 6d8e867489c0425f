"""reader views: votes, proposals, liquidations

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The SQL as this revision created it: frozen here, never edited.
LIQUIDATIONS = """
CREATE OR REPLACE VIEW liquidations AS
SELECT chain_id, address AS pool, block_number, tx_hash, log_index, user_address AS borrower,
       collateral_asset, debt_asset, debt_to_cover, liquidated_collateral_amount, liquidator,
       receive_a_token
FROM aave_v3_liquidation_call
"""

PROPOSALS = """
CREATE OR REPLACE VIEW proposals AS
WITH tallies AS (
    SELECT chain_id, governor, proposal_id, count(*) AS voters,
           coalesce(sum(weight) FILTER (WHERE support = 'for'), 0) AS votes_for,
           coalesce(sum(weight) FILTER (WHERE support = 'against'), 0) AS votes_against,
           coalesce(sum(weight) FILTER (WHERE support = 'abstain'), 0) AS votes_abstain
    FROM votes GROUP BY 1, 2, 3
)
SELECT c.chain_id, c.address AS governor, c.proposal_id, c.proposer,
       split_part(ltrim(c.description, '# '), E'\\n', 1) AS title,
       c.targets, c.signatures, c.calldatas, c.vote_start, c.vote_end,
       c.block_number AS created_block, c.tx_hash AS created_tx,
       CASE WHEN x.proposal_id IS NOT NULL THEN 'executed'
            WHEN k.proposal_id IS NOT NULL THEN 'canceled'
            WHEN q.proposal_id IS NOT NULL THEN 'queued'
            ELSE 'created' END AS state,
       q.eta, q.block_number AS queued_block, x.block_number AS executed_block,
       coalesce(t.voters, 0) AS voters, coalesce(t.votes_for, 0) AS votes_for,
       coalesce(t.votes_against, 0) AS votes_against, coalesce(t.votes_abstain, 0) AS votes_abstain,
       c.description
FROM gov_proposal_created c
LEFT JOIN gov_proposal_queued q USING (chain_id, address, proposal_id)
LEFT JOIN gov_proposal_executed x USING (chain_id, address, proposal_id)
LEFT JOIN gov_proposal_canceled k USING (chain_id, address, proposal_id)
LEFT JOIN tallies t ON t.chain_id = c.chain_id AND t.governor = c.address AND t.proposal_id = c.proposal_id
"""

VOTES = """
CREATE OR REPLACE VIEW votes AS
SELECT chain_id, address AS governor, proposal_id, voter,
       CASE support WHEN 0 THEN 'against' WHEN 1 THEN 'for' WHEN 2 THEN 'abstain' END AS support,
       weight, reason, block_number, tx_hash, log_index
FROM gov_vote_cast
UNION ALL
SELECT chain_id, address, proposal_id, voter,
       CASE support WHEN 0 THEN 'against' WHEN 1 THEN 'for' WHEN 2 THEN 'abstain' END,
       weight, reason, block_number, tx_hash, log_index
FROM gov_vote_cast_with_params
UNION ALL
SELECT chain_id, address, proposal_id, voter, CASE WHEN support THEN 'for' ELSE 'against' END,
       votes, NULL, block_number, tx_hash, log_index
FROM gov_alpha_vote_cast
"""


def upgrade() -> None:
    for statement in (VOTES, PROPOSALS, LIQUIDATIONS):
        op.execute(statement)


def downgrade() -> None:
    for view in ("liquidations", "proposals", "votes"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
