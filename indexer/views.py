"""SQL views for analysts: stable names and plain columns over the event tables.

Views are the reader-facing interface (`chainrisk db grant-reader` grants SELECT on them and nothing
else). This module holds the current set, once: each migration keeps a frozen copy of the SQL it ran, so a
change here comes with a migration that applies it (a test checks that the two agree at the head).
"""

from __future__ import annotations

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


def _bytes32_numeric(word: str) -> str:
    """A 0x-prefixed bytes32 text as NUMERIC(78, 0), eight 32-bit limbs at a time."""
    return (
        f"(SELECT sum(('x' || substr({word}, 8 * limb + 3, 8))::bit(32)::bigint"
        " * 4294967296::numeric ^ (7 - limb))::numeric(78, 0) FROM generate_series(0, 7) AS limbs(limb))"
    )


# Block time of a governance event: the log's, else the stored header's.
_EVENT_TIME = (
    "coalesce((SELECT l.block_timestamp FROM logs l WHERE l.chain_id = {e}.chain_id"
    " AND l.block_number = {e}.block_number AND l.log_index = {e}.log_index),"
    " (SELECT b.timestamp FROM blocks b WHERE b.chain_id = {e}.chain_id AND b.number = {e}.block_number))"
)

# Every decoded governor: OpenZeppelin / Bravo / Alpha (`governor`), Aave Governance v2 (`aave_v2`: no
# description on chain, only its IPFS hash) and v3 (`aave_v3`: payloads live on the PayloadsControllers, so
# no calls; ProposalQueued carries the tallies, used when the VotingMachine's votes are not indexed).
# TimelockController operations (`timelock`: the operation id as the proposal id, scheduled = created and
# queued, ETA = scheduled time + delay) and Aave v3 payloads (`aave_v3_payload`: the payload id on its
# PayloadsController, the actions as calls, executor and ETA from the executor of the payload's access level
# as last set before it) are proposals too, so the risk changes they carry are decoded like any other.
PROPOSALS = f"""
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
        SELECT s.chain_id, s.address, s.id, {_bytes32_numeric("s.id")} AS operation_id, s.tx_hash,
               min(s.block_number) AS block_number, jsonb_agg(s.target ORDER BY s.index) AS targets,
               jsonb_agg(s.arg_data ORDER BY s.index) AS calldatas, max(s.delay) AS delay,
               min({_EVENT_TIME.format(e="s")}) AS scheduled_at
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
           (({_EVENT_TIME.format(e="q")}) + e.delay)::numeric(78, 0), q.block_number, NULL, NULL
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

POSITIONS_CURRENT = """
CREATE OR REPLACE VIEW positions_current AS
SELECT chain_id, pool, user_address, block_number,
       total_collateral_base / 1e8 AS collateral_usd,
       total_debt_base / 1e8 AS debt_usd,
       CASE WHEN total_debt_base = 0 THEN NULL ELSE health_factor / 1e18 END AS health_factor,
       ltv_bps, liquidation_threshold_bps, emode_category, protocol
FROM account_health
"""

POSITIONS_AT_RISK = """
CREATE OR REPLACE VIEW positions_at_risk AS
SELECT * FROM positions_current WHERE health_factor < 1.1 ORDER BY health_factor
"""

HF_DISTRIBUTION = """
CREATE OR REPLACE VIEW hf_distribution AS
SELECT chain_id, pool,
       CASE WHEN health_factor < 1 THEN '0: < 1.00'
            WHEN health_factor < 1.05 THEN '1: 1.00-1.05'
            WHEN health_factor < 1.1 THEN '2: 1.05-1.10'
            WHEN health_factor < 1.25 THEN '3: 1.10-1.25'
            WHEN health_factor < 1.5 THEN '4: 1.25-1.50'
            WHEN health_factor < 2 THEN '5: 1.50-2.00'
            ELSE '6: >= 2.00' END AS hf_bucket,
       count(*) AS users, sum(collateral_usd) AS collateral_usd, sum(debt_usd) AS debt_usd, protocol
FROM positions_current
WHERE debt_usd > 0
GROUP BY 1, 2, 3, protocol
"""


# The price of an asset in force just before an event at (block, log_index): the token's own feed when
# configured, else the asset's latest source in any indexed AaveOracle. Views below embed the text this
# returns.
def _price_before(alias: str, token: str, asset: str, chain: str, block: str, log_index: str) -> str:
    return f"""LEFT JOIN LATERAL (
    SELECT a.current / 10::numeric ^ {token}.price_decimals AS price_usd
    FROM (SELECT coalesce({token}.price_feed, (
              SELECT s.source FROM aave_oracle_asset_source_updated s
              WHERE s.chain_id = {chain} AND s.asset = {asset}
                AND (s.block_number, s.log_index) < ({block}, {log_index})
              ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1)) AS feed) f
    JOIN LATERAL (
        SELECT u.current FROM price_answer_updated u
        WHERE u.chain_id = {chain} AND u.address = f.feed
          AND (u.block_number, u.log_index) < ({block}, {log_index})
        ORDER BY u.block_number DESC, u.log_index DESC LIMIT 1) a ON true
) {alias} ON true"""


TOKEN_TRANSFERS = f"""
CREATE OR REPLACE VIEW token_transfers AS
SELECT t.chain_id, t.block_number, t.log_index, t.tx_hash,
       to_timestamp(coalesce(l.block_timestamp, b.timestamp)) AS block_time,
       t.address AS token, k.symbol, t.from_address, t.to_address,
       t.value / 10::numeric ^ k.decimals AS amount, p.price_usd,
       t.value / 10::numeric ^ k.decimals * p.price_usd AS usd,
       k.whale_threshold_usd
FROM erc20_transfers t
JOIN tracked_tokens k ON k.chain_id = t.chain_id AND k.token = t.address
LEFT JOIN logs l ON l.chain_id = t.chain_id AND l.block_number = t.block_number AND l.log_index = t.log_index
LEFT JOIN blocks b ON b.chain_id = t.chain_id AND b.number = t.block_number
{_price_before("p", "k", "t.address", "t.chain_id", "t.block_number", "t.log_index")}
"""

WHALE_FLOWS = """
CREATE OR REPLACE VIEW whale_flows AS
SELECT t.chain_id, t.block_number, t.log_index, t.tx_hash, t.block_time, t.token, t.symbol,
       t.from_address, f.label AS from_label, f.category AS from_category,
       t.to_address, o.label AS to_label, o.category AS to_category,
       t.amount, t.price_usd, t.usd, t.whale_threshold_usd,
       CASE WHEN f.category = 'exchange' AND o.category = 'exchange' THEN 'between_exchanges'
            WHEN o.category = 'exchange' THEN 'to_exchange'
            WHEN f.category = 'exchange' THEN 'from_exchange'
            ELSE 'other' END AS direction
FROM token_transfers t
LEFT JOIN address_labels f ON f.chain_id = t.chain_id AND f.address = t.from_address
LEFT JOIN address_labels o ON o.chain_id = t.chain_id AND o.address = t.to_address
WHERE t.usd >= t.whale_threshold_usd
"""

# Transfers between an exchange and a non-exchange address, per UTC hour; positive net = into exchanges.
EXCHANGE_NETFLOWS = """
CREATE OR REPLACE VIEW exchange_netflows AS
WITH flows AS (
    SELECT t.chain_id, t.token, t.symbol, date_trunc('hour', t.block_time, 'UTC') AS hour,
           o.category IS NOT DISTINCT FROM 'exchange' AS inbound, t.amount, t.usd
    FROM token_transfers t
    LEFT JOIN address_labels f ON f.chain_id = t.chain_id AND f.address = t.from_address
    LEFT JOIN address_labels o ON o.chain_id = t.chain_id AND o.address = t.to_address
    WHERE (f.category IS NOT DISTINCT FROM 'exchange') <> (o.category IS NOT DISTINCT FROM 'exchange')
)
SELECT chain_id, token, symbol, hour, count(*) AS transfers,
       coalesce(sum(amount) FILTER (WHERE inbound), 0) AS inflow,
       coalesce(sum(amount) FILTER (WHERE NOT inbound), 0) AS outflow,
       coalesce(sum(CASE WHEN inbound THEN amount ELSE -amount END), 0) AS netflow,
       coalesce(sum(usd) FILTER (WHERE inbound), 0) AS inflow_usd,
       coalesce(sum(usd) FILTER (WHERE NOT inbound), 0) AS outflow_usd,
       sum(CASE WHEN inbound THEN usd ELSE -usd END) AS netflow_usd
FROM flows
GROUP BY chain_id, token, symbol, hour
"""

# Columns appended to the 0002 view: prices in force just before the liquidation, in USD. Morpho Blue's
# Liquidate rows follow (pool = market id, debt_to_cover = repaid assets, liquidator = caller).
LIQUIDATIONS = f"""
CREATE OR REPLACE VIEW liquidations AS
SELECT q.chain_id, q.address AS pool, q.block_number, q.tx_hash, q.log_index, q.user_address AS borrower,
       q.collateral_asset, q.debt_asset, q.debt_to_cover, q.liquidated_collateral_amount, q.liquidator,
       q.receive_a_token,
       to_timestamp(coalesce(l.block_timestamp, b.timestamp)) AS block_time,
       ck.symbol AS collateral_symbol, dk.symbol AS debt_symbol,
       q.debt_to_cover / 10::numeric ^ dk.decimals AS debt_repaid,
       q.liquidated_collateral_amount / 10::numeric ^ ck.decimals AS collateral_seized,
       q.debt_to_cover / 10::numeric ^ dk.decimals * dp.price_usd AS debt_repaid_usd,
       q.liquidated_collateral_amount / 10::numeric ^ ck.decimals * cp.price_usd AS collateral_seized_usd,
       'aave_v3' AS protocol
FROM aave_v3_liquidation_call q
LEFT JOIN logs l ON l.chain_id = q.chain_id AND l.block_number = q.block_number AND l.log_index = q.log_index
LEFT JOIN blocks b ON b.chain_id = q.chain_id AND b.number = q.block_number
LEFT JOIN tracked_tokens ck ON ck.chain_id = q.chain_id AND ck.token = q.collateral_asset
LEFT JOIN tracked_tokens dk ON dk.chain_id = q.chain_id AND dk.token = q.debt_asset
{_price_before("cp", "ck", "q.collateral_asset", "q.chain_id", "q.block_number", "q.log_index")}
{_price_before("dp", "dk", "q.debt_asset", "q.chain_id", "q.block_number", "q.log_index")}
UNION ALL
SELECT q.chain_id, q.id, q.block_number, q.tx_hash, q.log_index, q.borrower,
       m.collateral_token, m.loan_token, q.repaid_assets, q.seized_assets, q.caller, NULL,
       to_timestamp(coalesce(l.block_timestamp, b.timestamp)),
       ck.symbol, dk.symbol,
       q.repaid_assets / 10::numeric ^ dk.decimals,
       q.seized_assets / 10::numeric ^ ck.decimals,
       q.repaid_assets / 10::numeric ^ dk.decimals * dp.price_usd,
       q.seized_assets / 10::numeric ^ ck.decimals * cp.price_usd,
       'morpho_blue'
FROM morpho_blue_liquidate q
JOIN morpho_blue_create_market m ON m.chain_id = q.chain_id AND m.address = q.address AND m.id = q.id
LEFT JOIN logs l ON l.chain_id = q.chain_id AND l.block_number = q.block_number AND l.log_index = q.log_index
LEFT JOIN blocks b ON b.chain_id = q.chain_id AND b.number = q.block_number
LEFT JOIN tracked_tokens ck ON ck.chain_id = q.chain_id AND ck.token = m.collateral_token
LEFT JOIN tracked_tokens dk ON dk.chain_id = q.chain_id AND dk.token = m.loan_token
{_price_before("cp", "ck", "m.collateral_token", "q.chain_id", "q.block_number", "q.log_index")}
{_price_before("dp", "dk", "m.loan_token", "q.chain_id", "q.block_number", "q.log_index")}
"""

# Realised rows now carry their USD value (the deficit valued at the debt asset's price just before).
# Morpho Blue realises bad debt in Liquidate (badDebtAssets of the market's loan token); its pool is the
# market id.
BAD_DEBT = f"""
CREATE OR REPLACE VIEW bad_debt AS
SELECT chain_id, pool, user_address, 'unrealised' AS kind, block_number,
       NULL::text AS debt_asset, NULL::numeric AS amount, debt_usd - collateral_usd AS usd, protocol
FROM positions_current
WHERE debt_usd > collateral_usd
UNION ALL
SELECT d.chain_id, d.address, d.user_address, 'realised', d.block_number, d.debt_asset, d.amount_created,
       d.amount_created / 10::numeric ^ k.decimals * p.price_usd, 'aave_v3'
FROM aave_v3_deficit_created d
LEFT JOIN tracked_tokens k ON k.chain_id = d.chain_id AND k.token = d.debt_asset
{_price_before("p", "k", "d.debt_asset", "d.chain_id", "d.block_number", "d.log_index")}
UNION ALL
SELECT q.chain_id, q.id, q.borrower, 'realised', q.block_number, m.loan_token, q.bad_debt_assets,
       q.bad_debt_assets / 10::numeric ^ k.decimals * p.price_usd, 'morpho_blue'
FROM morpho_blue_liquidate q
JOIN morpho_blue_create_market m ON m.chain_id = q.chain_id AND m.address = q.address AND m.id = q.id
LEFT JOIN tracked_tokens k ON k.chain_id = q.chain_id AND k.token = m.loan_token
{_price_before("p", "k", "m.loan_token", "q.chain_id", "q.block_number", "q.log_index")}
WHERE q.bad_debt_assets > 0
"""

POSITIONS_BY_ASSET = """
CREATE OR REPLACE VIEW positions_by_asset AS
SELECT r.chain_id, r.pool, r.user_address, r.asset, k.symbol, r.block_number,
       r.collateral_base / 1e8 AS collateral_usd, r.debt_base / 1e8 AS debt_usd, r.collateral_enabled,
       r.liquidation_threshold_bps, r.price / 1e8 AS price_usd, r.protocol
FROM position_reserves r
LEFT JOIN tracked_tokens k ON k.chain_id = r.chain_id AND k.token = r.asset
"""


# A uint256 ABI word (64 hex digits, SQL expression `word`) as an exact numeric: eight 32-bit limbs, each
# padded to 64 bits so the bigint cast never sees a sign bit. Views embed the text this returns.
def _uint256(word: str) -> str:
    return (
        f"(SELECT sum(('x' || lpad(substr({word}, 8 * limb + 1, 8), 16, '0'))::bit(64)::bigint"
        " * 4294967296::numeric ^ (7 - limb))::numeric(78, 0) FROM generate_series(0, 7) AS limbs(limb))"
    )


# Every PoolConfigurator risk-parameter call in a proposal, one row per parameter it sets (long format):
# the value the call sets and the value before it, i.e. the parameter's last event from that configurator
# before the executed block (before now if not executed). Selectors are keccak256 of the Aave v3.0
# signatures (checked against @aave/core-v3 1.19.3's ABI); Bravo/Alpha calls name the signature instead.
# `word` is the argument's index in the ABI-encoded arguments; `subject` says whether the parameter belongs
# to a reserve (word 0 is the asset) or to an eMode category (word 0 is the category id).
RISK_PARAM_CHANGES = f"""
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
           {_uint256("substr(k.args, 1, 64)")} AS word0,
           CASE WHEN length(k.args) >= 64 * (m.word + 1)  -- truncated calldata sets nothing known
                THEN {_uint256("substr(k.args, 64 * m.word + 1, 64)")} END AS new_value
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


# Every row of the lending history with its validity range, in USD and health factor units.
HEALTH_HISTORY = """
CREATE OR REPLACE VIEW health_history AS
SELECT chain_id, pool, user_address, block_number AS valid_from, valid_to, block_time AS valid_from_time,
       valid_to_time, total_collateral_base / 1e8 AS collateral_usd, total_debt_base / 1e8 AS debt_usd,
       health_factor / 1e18 AS health_factor, emode_category, protocol
FROM account_health_history
"""

POSITION_HISTORY = """
CREATE OR REPLACE VIEW position_history AS
SELECT chain_id, pool, user_address, asset, block_number AS valid_from, valid_to,
       block_time AS valid_from_time, valid_to_time, collateral_base / 1e8 AS collateral_usd,
       debt_base / 1e8 AS debt_usd, collateral_enabled, liquidation_threshold_bps, price / 1e8 AS price_usd,
       protocol
FROM position_reserves_history
"""

VIEWS: dict[str, str] = {
    "votes": VOTES,
    "proposals": PROPOSALS,
    "liquidations": LIQUIDATIONS,
    "positions_current": POSITIONS_CURRENT,
    "positions_at_risk": POSITIONS_AT_RISK,
    "hf_distribution": HF_DISTRIBUTION,
    "bad_debt": BAD_DEBT,
    "risk_param_changes": RISK_PARAM_CHANGES,
    "token_transfers": TOKEN_TRANSFERS,
    "whale_flows": WHALE_FLOWS,
    "exchange_netflows": EXCHANGE_NETFLOWS,
    "positions_by_asset": POSITIONS_BY_ASSET,
    "health_history": HEALTH_HISTORY,
    "position_history": POSITION_HISTORY,
}

# The current lending state: the open rows of the history tables. Internal (the reader sees the views
# above), but defined once here like the rest.
ACCOUNT_HEALTH = """
CREATE OR REPLACE VIEW account_health AS
SELECT chain_id, pool, user_address, block_number, total_collateral_base, total_debt_base,
       available_borrows_base, liquidation_threshold_bps, ltv_bps, health_factor, emode_category, protocol
FROM account_health_history
WHERE valid_to IS NULL
"""

POSITION_RESERVES = """
CREATE OR REPLACE VIEW position_reserves AS
SELECT chain_id, pool, user_address, asset, block_number, collateral_base, debt_base, collateral_enabled,
       liquidation_threshold_bps, price, protocol
FROM position_reserves_history
WHERE valid_to IS NULL
"""

STATE_VIEWS: dict[str, str] = {"account_health": ACCOUNT_HEALTH, "position_reserves": POSITION_RESERVES}

# State at a block and daily series over the history; they read the views above, so the reader role
# needs no grant on the tables underneath.
HEALTH_AT = """
CREATE OR REPLACE FUNCTION health_at(at_block bigint)
RETURNS SETOF health_history LANGUAGE sql STABLE AS $$
    SELECT * FROM health_history
    WHERE valid_from <= at_block AND (valid_to IS NULL OR valid_to > at_block)
$$
"""

POSITIONS_AT = """
CREATE OR REPLACE FUNCTION positions_at(at_block bigint)
RETURNS SETOF position_history LANGUAGE sql STABLE AS $$
    SELECT * FROM position_history
    WHERE valid_from <= at_block AND (valid_to IS NULL OR valid_to > at_block)
$$
"""

HEALTH_DAILY = """
CREATE OR REPLACE FUNCTION health_daily(first_day date, last_day date)
RETURNS TABLE (day date, chain_id integer, pool text, user_address text, valid_from bigint,
               collateral_usd numeric, debt_usd numeric, health_factor numeric, protocol text)
LANGUAGE sql STABLE AS $$
    SELECT d.day::date, h.chain_id, h.pool, h.user_address, h.valid_from, h.collateral_usd, h.debt_usd,
           h.health_factor, h.protocol
    FROM generate_series(first_day, last_day, interval '1 day') AS d(day)
    JOIN health_history h
      ON h.valid_from_time < d.day + interval '1 day'
     AND (h.valid_to_time IS NULL OR h.valid_to_time >= d.day + interval '1 day')
$$
"""

FUNCTIONS: dict[str, str] = {
    "health_at": HEALTH_AT,
    "positions_at": POSITIONS_AT,
    "health_daily": HEALTH_DAILY,
}
