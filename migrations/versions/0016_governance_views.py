"""proposals and votes of every decoded governor: Aave Governance v2 and v3 (and its VotingMachine)

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The SQL as this revision created it: frozen here, never edited.
VOTES = """
CREATE OR REPLACE VIEW votes AS
SELECT chain_id, address AS governor, proposal_id, voter,
       CASE support WHEN 0 THEN 'against' WHEN 1 THEN 'for' WHEN 2 THEN 'abstain' END AS support,
       weight, reason, block_number, tx_hash, log_index, chain_id AS voting_chain_id,
       address AS voting_contract
FROM gov_vote_cast
UNION ALL
SELECT chain_id, address, proposal_id, voter,
       CASE support WHEN 0 THEN 'against' WHEN 1 THEN 'for' WHEN 2 THEN 'abstain' END,
       weight, reason, block_number, tx_hash, log_index, chain_id, address
FROM gov_vote_cast_with_params
UNION ALL
SELECT chain_id, address, proposal_id, voter, CASE WHEN support THEN 'for' ELSE 'against' END,
       votes, NULL, block_number, tx_hash, log_index, chain_id, address
FROM gov_alpha_vote_cast
UNION ALL
SELECT chain_id, address, id, voter, CASE WHEN support THEN 'for' ELSE 'against' END,
       voting_power, NULL, block_number, tx_hash, log_index, chain_id, address
FROM aave_gov_v2_vote_emitted
UNION ALL
-- An Aave v3 VotingMachine (often on another chain) counts votes for the Governance core's proposal of
-- the same id: the vote is the core's (same chain preferred), the machine is kept in voting_*.
SELECT coalesce(g.chain_id, v.chain_id), coalesce(g.address, v.address), v.proposal_id, v.voter,
       CASE WHEN v.support THEN 'for' ELSE 'against' END, v.voting_power, NULL, v.block_number, v.tx_hash,
       v.log_index, v.chain_id, v.address
FROM aave_gov_v3_vote_emitted v
LEFT JOIN LATERAL (
    SELECT c.chain_id, c.address FROM aave_gov_v3_proposal_created c
    WHERE c.proposal_id = v.proposal_id
    ORDER BY c.chain_id = v.chain_id DESC, c.chain_id, c.block_number
    LIMIT 1
) g ON true
"""

PROPOSALS = """
CREATE OR REPLACE VIEW proposals AS
WITH tallies AS (
    SELECT chain_id, governor, proposal_id, count(*) AS voters,
           coalesce(sum(weight) FILTER (WHERE support = 'for'), 0) AS votes_for,
           coalesce(sum(weight) FILTER (WHERE support = 'against'), 0) AS votes_against,
           coalesce(sum(weight) FILTER (WHERE support = 'abstain'), 0) AS votes_abstain
    FROM votes GROUP BY 1, 2, 3
), created AS (
    SELECT 'governor' AS kind, chain_id, address, proposal_id, proposer, description, targets, signatures,
           calldatas, vote_start, vote_end, block_number, tx_hash, NULL::text AS executor,
           NULL::jsonb AS with_delegatecalls, NULL::text AS ipfs_hash
    FROM gov_proposal_created
    UNION ALL
    SELECT 'aave_v2', chain_id, address, id, creator, NULL, targets, signatures, calldatas, start_block,
           end_block, block_number, tx_hash, executor, with_delegatecalls, ipfs_hash
    FROM aave_gov_v2_proposal_created
    UNION ALL
    SELECT 'aave_v3', chain_id, address, proposal_id, creator, NULL, NULL, NULL, NULL,
           NULL::numeric(78, 0), NULL::numeric(78, 0), block_number, tx_hash, NULL, NULL, ipfs_hash
    FROM aave_gov_v3_proposal_created
), queued AS (
    SELECT chain_id, address, proposal_id, eta, block_number,
           NULL::numeric AS votes_for, NULL::numeric AS votes_against
    FROM gov_proposal_queued
    UNION ALL
    SELECT chain_id, address, id, execution_time, block_number, NULL, NULL FROM aave_gov_v2_proposal_queued
    UNION ALL
    SELECT chain_id, address, proposal_id, NULL::numeric(78, 0), block_number, votes_for, votes_against
    FROM aave_gov_v3_proposal_queued
), executed AS (
    SELECT chain_id, address, proposal_id, block_number FROM gov_proposal_executed
    UNION ALL
    SELECT chain_id, address, id, block_number FROM aave_gov_v2_proposal_executed
    UNION ALL
    SELECT chain_id, address, proposal_id, block_number FROM aave_gov_v3_proposal_executed
), canceled AS (
    SELECT chain_id, address, proposal_id, block_number FROM gov_proposal_canceled
    UNION ALL
    SELECT chain_id, address, proposal_id, block_number FROM aave_gov_v3_proposal_canceled
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
       coalesce(t.voters, 0) AS voters,
       coalesce(t.votes_for, q.votes_for, 0) AS votes_for,
       coalesce(t.votes_against, q.votes_against, 0) AS votes_against,
       coalesce(t.votes_abstain, 0) AS votes_abstain,
       c.description, c.kind, k.block_number AS canceled_block, c.executor, c.with_delegatecalls,
       c.ipfs_hash
FROM created c
LEFT JOIN queued q USING (chain_id, address, proposal_id)
LEFT JOIN executed x USING (chain_id, address, proposal_id)
LEFT JOIN canceled k USING (chain_id, address, proposal_id)
LEFT JOIN tallies t ON t.chain_id = c.chain_id AND t.governor = c.address AND t.proposal_id = c.proposal_id
"""

# What downgrade restores: the three views as they were before this revision.
# Appended columns cannot be dropped by CREATE OR REPLACE, and risk_param_changes reads proposals.
VOTES_BEFORE = """
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

PROPOSALS_BEFORE = """
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

RISK_PARAM_CHANGES_BEFORE = """
CREATE OR REPLACE VIEW risk_param_changes AS
WITH functions(selector, signature, function, subject) AS (VALUES
    ('7c4e560b', 'configureReserveAsCollateral(address,uint256,uint256,uint256)',
     'configureReserveAsCollateral', 'reserve'),
    ('571f03e5', 'setSupplyCap(address,uint256)', 'setSupplyCap', 'reserve'),
    ('d14a0983', 'setBorrowCap(address,uint256)', 'setBorrowCap', 'reserve'),
    ('4b4e6753', 'setReserveFactor(address,uint256)', 'setReserveFactor', 'reserve'),
    ('aeb4fcc1', 'setDebtCeiling(address,uint256)', 'setDebtCeiling', 'reserve'),
    ('26d2cec2', 'setLiquidationProtocolFee(address,uint256)', 'setLiquidationProtocolFee', 'reserve'),
    ('d4fe3f99', 'setAssetEModeCategory(address,uint8)', 'setAssetEModeCategory', 'reserve'),
    ('c19d61e4', 'setEModeCategory(uint8,uint16,uint16,uint16,address,string)', 'setEModeCategory',
     'category')
), parameters(function, parameter, word) AS (VALUES
    ('configureReserveAsCollateral', 'ltv', 1),
    ('configureReserveAsCollateral', 'liquidation_threshold', 2),
    ('configureReserveAsCollateral', 'liquidation_bonus', 3),
    ('setSupplyCap', 'supply_cap', 1),
    ('setBorrowCap', 'borrow_cap', 1),
    ('setReserveFactor', 'reserve_factor', 1),
    ('setDebtCeiling', 'debt_ceiling', 1),
    ('setLiquidationProtocolFee', 'liquidation_protocol_fee', 1),
    ('setAssetEModeCategory', 'emode_category', 1),
    ('setEModeCategory', 'emode_ltv', 1),
    ('setEModeCategory', 'emode_liquidation_threshold', 2),
    ('setEModeCategory', 'emode_liquidation_bonus', 3)
), calls AS (
    SELECT p.chain_id, p.governor, p.proposal_id, p.title, p.state, p.executed_block,
           lower(t.target) AS configurator, coalesce(s.signature, '') AS signature,
           lower(c.calldata) AS calldata
    FROM proposals p
    CROSS JOIN LATERAL jsonb_array_elements_text(p.targets) WITH ORDINALITY AS t(target, n)
    JOIN LATERAL jsonb_array_elements_text(p.calldatas) WITH ORDINALITY AS c(calldata, n) ON c.n = t.n
    LEFT JOIN LATERAL jsonb_array_elements_text(p.signatures) WITH ORDINALITY AS s(signature, n) ON s.n = t.n
), known AS (
    SELECT c.*, f.function, f.subject,
           CASE WHEN c.signature = '' THEN substr(c.calldata, 11) ELSE substr(c.calldata, 3) END AS args
    FROM calls c
    JOIN functions f ON (c.signature = '' AND substr(c.calldata, 3, 8) = f.selector)
                     OR c.signature = f.signature
), changes AS (
    SELECT k.chain_id, k.governor, k.proposal_id, k.title, k.state, k.executed_block, k.configurator,
           k.function, k.subject, m.parameter,
           CASE WHEN k.subject = 'reserve' THEN '0x' || substr(k.args, 25, 40) END AS asset,
           (SELECT sum(('x' || lpad(substr(substr(k.args, 1, 64), 8 * limb + 1, 8), 16, '0'))::bit(64)::bigint * 4294967296::numeric ^ (7 - limb))::numeric(78, 0) FROM generate_series(0, 7) AS limbs(limb)) AS word0,
           CASE WHEN length(k.args) >= 64 * (m.word + 1)  -- truncated calldata sets nothing known
                THEN (SELECT sum(('x' || lpad(substr(substr(k.args, 64 * m.word + 1, 64), 8 * limb + 1, 8), 16, '0'))::bit(64)::bigint * 4294967296::numeric ^ (7 - limb))::numeric(78, 0) FROM generate_series(0, 7) AS limbs(limb)) END AS new_value
    FROM known k
    JOIN parameters m USING (function)
), history(chain_id, configurator, asset, category, parameter, value, block_number, log_index) AS (
    SELECT e.chain_id, e.address, e.asset, NULL::integer, v.parameter, v.value, e.block_number, e.log_index
    FROM aave_v3_collateral_configuration_changed e
    CROSS JOIN LATERAL (VALUES ('ltv', e.ltv), ('liquidation_threshold', e.liquidation_threshold),
                               ('liquidation_bonus', e.liquidation_bonus)) AS v(parameter, value)
    UNION ALL
    SELECT chain_id, address, asset, NULL, 'supply_cap', new_supply_cap, block_number, log_index
    FROM aave_v3_supply_cap_changed
    UNION ALL
    SELECT chain_id, address, asset, NULL, 'borrow_cap', new_borrow_cap, block_number, log_index
    FROM aave_v3_borrow_cap_changed
    UNION ALL
    SELECT chain_id, address, asset, NULL, 'reserve_factor', new_reserve_factor, block_number, log_index
    FROM aave_v3_reserve_factor_changed
    UNION ALL
    SELECT chain_id, address, asset, NULL, 'debt_ceiling', new_debt_ceiling, block_number, log_index
    FROM aave_v3_debt_ceiling_changed
    UNION ALL
    SELECT chain_id, address, asset, NULL, 'liquidation_protocol_fee', new_fee, block_number, log_index
    FROM aave_v3_liquidation_protocol_fee_changed
    UNION ALL
    SELECT chain_id, address, asset, NULL, 'emode_category', new_category_id, block_number, log_index
    FROM aave_v3_emode_asset_category_changed
    UNION ALL
    SELECT e.chain_id, e.address, NULL, e.category_id, v.parameter, v.value, e.block_number, e.log_index
    FROM aave_v3_emode_category_added e
    CROSS JOIN LATERAL (VALUES ('emode_ltv', e.ltv),
                               ('emode_liquidation_threshold', e.liquidation_threshold),
                               ('emode_liquidation_bonus', e.liquidation_bonus)) AS v(parameter, value)
)
SELECT d.chain_id, d.governor, d.proposal_id, d.title, d.state, d.executed_block, d.configurator,
       d.function, d.asset,
       d.emode_category, d.parameter, o.value AS old_value, d.new_value
FROM (
    -- Category ids are uint8; anything that does not fit an integer is a malformed call, left NULL.
    SELECT *, CASE WHEN category_word < 2147483648 THEN category_word::integer END AS emode_category
    FROM (SELECT *, CASE WHEN subject = 'category' THEN word0
                         WHEN parameter = 'emode_category' THEN new_value END AS category_word
          FROM changes) c
) d
LEFT JOIN LATERAL (
    SELECT h.value FROM history h
    WHERE h.chain_id = d.chain_id AND h.configurator = d.configurator AND h.parameter = d.parameter
      AND CASE WHEN d.subject = 'reserve' THEN h.asset = d.asset ELSE h.category = d.emode_category END
      AND h.block_number < coalesce(d.executed_block, 9223372036854775807)
    ORDER BY h.block_number DESC, h.log_index DESC
    LIMIT 1
) o ON true
"""


def upgrade() -> None:
    op.execute(VOTES)
    op.execute(PROPOSALS)


def downgrade() -> None:
    for view in ("risk_param_changes", "proposals", "votes"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    for statement in (VOTES_BEFORE, PROPOSALS_BEFORE, RISK_PARAM_CHANGES_BEFORE):
        op.execute(statement)
