"""governance queue events (TimelockController operations, Aave v3 PayloadsController payloads) in the
proposals view; the reports reader view

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "timelock_call_scheduled",
    "timelock_call_executed",
    "timelock_cancelled",
    "timelock_min_delay_change",
    "aave_payload_created",
    "aave_payload_queued",
    "aave_payload_executed",
    "aave_payload_cancelled",
    "aave_payloads_executor_set",
)

# The SQL as this revision created it: frozen here, never edited.
PROPOSALS = """
CREATE OR REPLACE VIEW proposals AS
WITH tallies AS (
    SELECT chain_id, governor, proposal_id, count(*) AS voters,
           coalesce(sum(weight) FILTER (WHERE support = 'for'), 0) AS votes_for,
           coalesce(sum(weight) FILTER (WHERE support = 'against'), 0) AS votes_against,
           coalesce(sum(weight) FILTER (WHERE support = 'abstain'), 0) AS votes_abstain
    FROM votes GROUP BY 1, 2, 3
), timelock_operations AS (
    -- An operation's calls come from one transaction; a cancelled operation scheduled again is the new one.
    SELECT DISTINCT ON (chain_id, address, id) * FROM (
        SELECT s.chain_id, s.address, s.id, (SELECT sum(('x' || substr(s.id, 8 * limb + 3, 8))::bit(32)::bigint * 4294967296::numeric ^ (7 - limb))::numeric(78, 0) FROM generate_series(0, 7) AS limbs(limb)) AS operation_id, s.tx_hash,
               min(s.block_number) AS block_number, jsonb_agg(s.target ORDER BY s.index) AS targets,
               jsonb_agg(s.arg_data ORDER BY s.index) AS calldatas, max(s.delay) AS delay,
               min(coalesce((SELECT l.block_timestamp FROM logs l WHERE l.chain_id = s.chain_id AND l.block_number = s.block_number AND l.log_index = s.log_index), (SELECT b.timestamp FROM blocks b WHERE b.chain_id = s.chain_id AND b.number = s.block_number))) AS scheduled_at
        FROM timelock_call_scheduled s
        GROUP BY s.chain_id, s.address, s.id, s.tx_hash
    ) o
    ORDER BY chain_id, address, id, block_number DESC
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
    UNION ALL
    SELECT 'timelock', chain_id, address, operation_id, NULL, NULL, targets, NULL, calldatas,
           NULL::numeric(78, 0), NULL::numeric(78, 0), block_number, tx_hash, NULL, NULL, NULL
    FROM timelock_operations
    UNION ALL
    SELECT 'aave_v3_payload', p.chain_id, p.address, p.payload_id::numeric(78, 0), p.creator, NULL,
           (SELECT jsonb_agg(a ->> 'target' ORDER BY n) FROM jsonb_array_elements(p.actions)
                WITH ORDINALITY AS x(a, n)),
           (SELECT jsonb_agg(a ->> 'signature' ORDER BY n) FROM jsonb_array_elements(p.actions)
                WITH ORDINALITY AS x(a, n)),
           (SELECT jsonb_agg(a ->> 'call_data' ORDER BY n) FROM jsonb_array_elements(p.actions)
                WITH ORDINALITY AS x(a, n)),
           NULL::numeric(78, 0), NULL::numeric(78, 0), p.block_number, p.tx_hash, e.executor,
           (SELECT jsonb_agg(a -> 'with_delegate_call' ORDER BY n) FROM jsonb_array_elements(p.actions)
                WITH ORDINALITY AS x(a, n)),
           NULL
    FROM aave_payload_created p
    LEFT JOIN LATERAL (
        SELECT s.executor FROM aave_payloads_executor_set s
        WHERE s.chain_id = p.chain_id AND s.address = p.address
          AND s.access_level = p.maximum_access_level_required AND s.block_number <= p.block_number
        ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1
    ) e ON true
), queued AS (
    SELECT chain_id, address, proposal_id, eta, block_number,
           NULL::numeric AS votes_for, NULL::numeric AS votes_against
    FROM gov_proposal_queued
    UNION ALL
    SELECT chain_id, address, id, execution_time, block_number, NULL, NULL FROM aave_gov_v2_proposal_queued
    UNION ALL
    SELECT chain_id, address, proposal_id, NULL::numeric(78, 0), block_number, votes_for, votes_against
    FROM aave_gov_v3_proposal_queued
    UNION ALL
    SELECT chain_id, address, operation_id, (scheduled_at + delay)::numeric(78, 0), block_number, NULL, NULL
    FROM timelock_operations
    UNION ALL
    SELECT q.chain_id, q.address, q.payload_id::numeric(78, 0),
           ((coalesce((SELECT l.block_timestamp FROM logs l WHERE l.chain_id = q.chain_id AND l.block_number = q.block_number AND l.log_index = q.log_index), (SELECT b.timestamp FROM blocks b WHERE b.chain_id = q.chain_id AND b.number = q.block_number))) + e.delay)::numeric(78, 0), q.block_number, NULL, NULL
    FROM aave_payload_queued q
    JOIN aave_payload_created c USING (chain_id, address, payload_id)
    LEFT JOIN LATERAL (
        SELECT s.delay FROM aave_payloads_executor_set s
        WHERE s.chain_id = q.chain_id AND s.address = q.address
          AND s.access_level = c.maximum_access_level_required AND s.block_number <= q.block_number
        ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1
    ) e ON true
), executed AS (
    SELECT chain_id, address, proposal_id, block_number FROM gov_proposal_executed
    UNION ALL
    SELECT chain_id, address, id, block_number FROM aave_gov_v2_proposal_executed
    UNION ALL
    SELECT chain_id, address, proposal_id, block_number FROM aave_gov_v3_proposal_executed
    UNION ALL
    SELECT o.chain_id, o.address, o.operation_id, min(x.block_number)
    FROM timelock_call_executed x
    JOIN timelock_operations o ON o.chain_id = x.chain_id AND o.address = x.address AND o.id = x.id
                              AND x.block_number >= o.block_number
    GROUP BY 1, 2, 3
    UNION ALL
    SELECT chain_id, address, payload_id::numeric(78, 0), block_number FROM aave_payload_executed
), canceled AS (
    SELECT chain_id, address, proposal_id, block_number FROM gov_proposal_canceled
    UNION ALL
    SELECT chain_id, address, proposal_id, block_number FROM aave_gov_v3_proposal_canceled
    UNION ALL
    SELECT o.chain_id, o.address, o.operation_id, min(k.block_number)
    FROM timelock_cancelled k
    JOIN timelock_operations o ON o.chain_id = k.chain_id AND o.address = k.address AND o.id = k.id
                              AND k.block_number >= o.block_number
    GROUP BY 1, 2, 3
    UNION ALL
    SELECT chain_id, address, payload_id::numeric(78, 0), block_number FROM aave_payload_cancelled
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

REPORTS_GENERATED = """
CREATE OR REPLACE VIEW reports_generated AS
SELECT r.id AS report_id, r.kind, r.period, r.period_start,
       r.period_start + CASE r.period WHEN 'weekly' THEN 6 ELSE 0 END AS period_end,
       r.chain_id, r.block, r.created_at, r.summary ->> 'title' AS title, r.summary -> 'lines' AS summary,
       r.directory, r.files, r.files ->> 'report.html' AS html_sha256,
       a.id AS alert_id, a.facts ->> 'link' AS link,
       coalesce(d.deliveries, '{}'::jsonb) AS announced_to,
       coalesce(d.sent, 0) AS channels_sent, coalesce(d.channels, 0) AS channels
FROM reports r
LEFT JOIN alerts a ON a.rule = 'report:' || r.kind AND a.facts ->> 'report_id' = r.id::text
LEFT JOIN (
    SELECT alert_id, jsonb_object_agg(channel, state) AS deliveries,
           count(*) FILTER (WHERE state = 'sent') AS sent, count(*) AS channels
    FROM alert_deliveries
    GROUP BY alert_id
) d ON d.alert_id = a.id
"""

# What downgrade restores: the proposals view as revision 0016 made it (same columns, so
# risk_param_changes, which reads it, stays valid).
PROPOSALS_BEFORE = """
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

COMMENTS = {
    "reports_generated": (
        "One row per stored report: its kind, period (period_start to period_end, both UTC days included), "
        "chain and block, when it was written (created_at), its title and summary lines, the folder and each "
        "file's SHA-256, and its announcement: the outbox alert (alert_id), the link it carried, and its "
        "delivery state per channel (announced_to: channel -> state; channels_sent of channels). No "
        "announcement (no channels configured): alert_id NULL, announced_to empty."
    ),
}


def upgrade() -> None:
    op.create_table(
        "timelock_call_scheduled",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("index", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("value", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("arg_data", sa.Text(), nullable=True),
        sa.Column("predecessor", sa.Text(), nullable=True),
        sa.Column("delay", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded CallScheduled(bytes32,uint256,address,uint256,bytes,bytes32,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "timelock_call_executed",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("index", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("value", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("arg_data", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded CallExecuted(bytes32,uint256,address,uint256,bytes) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "timelock_cancelled",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded Cancelled(bytes32) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "timelock_min_delay_change",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("old_duration", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("new_duration", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded MinDelayChange(uint256,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "aave_payload_created",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("payload_id", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("creator", sa.Text(), nullable=True),
        sa.Column("actions", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("maximum_access_level_required", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded PayloadCreated(uint40,address,(address,bool,uint8,uint256,string,bytes)[],uint8) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "aave_payload_queued",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("payload_id", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded PayloadQueued(uint40) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "aave_payload_executed",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("payload_id", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded PayloadExecuted(uint40) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "aave_payload_cancelled",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("payload_id", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded PayloadCancelled(uint40) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "aave_payloads_executor_set",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("access_level", sa.Integer(), nullable=True),
        sa.Column("executor", sa.Text(), nullable=True),
        sa.Column("delay", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded ExecutorSet(uint8,address,uint40) events.",
        info={"chain_derived": True},
    )
    op.execute(PROPOSALS)
    op.execute(REPORTS_GENERATED)
    for view, comment in COMMENTS.items():
        op.execute(f"COMMENT ON VIEW {view} IS '{comment.replace(chr(39), chr(39) * 2)}'")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS reports_generated")
    op.execute(PROPOSALS_BEFORE)
    for table in reversed(TABLES):
        op.drop_table(table)
