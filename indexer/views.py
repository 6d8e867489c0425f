"""SQL views for analysts: stable names and plain columns over the event tables.

Views are the reader-facing interface (`chainrisk db grant-reader` grants SELECT on them and nothing
else). Migrations execute these constants, so a released constant is never edited: a change adds a new
constant and a migration that applies it.
"""

from __future__ import annotations

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

LIQUIDATIONS = """
CREATE OR REPLACE VIEW liquidations AS
SELECT chain_id, address AS pool, block_number, tx_hash, log_index, user_address AS borrower,
       collateral_asset, debt_asset, debt_to_cover, liquidated_collateral_amount, liquidator,
       receive_a_token
FROM aave_v3_liquidation_call
"""

VIEWS: dict[str, str] = {"votes": VOTES, "proposals": PROPOSALS, "liquidations": LIQUIDATIONS}

POSITIONS_CURRENT = """
CREATE OR REPLACE VIEW positions_current AS
SELECT chain_id, pool, user_address, block_number,
       total_collateral_base / 1e8 AS collateral_usd,
       total_debt_base / 1e8 AS debt_usd,
       CASE WHEN total_debt_base = 0 THEN NULL ELSE health_factor / 1e18 END AS health_factor,
       ltv_bps, liquidation_threshold_bps, emode_category
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
       count(*) AS users, sum(collateral_usd) AS collateral_usd, sum(debt_usd) AS debt_usd
FROM positions_current
WHERE debt_usd > 0
GROUP BY 1, 2, 3
"""

BAD_DEBT = """
CREATE OR REPLACE VIEW bad_debt AS
SELECT chain_id, pool, user_address, 'unrealised' AS kind, block_number,
       NULL::text AS debt_asset, NULL::numeric AS amount, debt_usd - collateral_usd AS usd
FROM positions_current
WHERE debt_usd > collateral_usd
UNION ALL
SELECT chain_id, address, user_address, 'realised', block_number, debt_asset, amount_created, NULL
FROM aave_v3_deficit_created
"""

VIEWS.update(
    positions_current=POSITIONS_CURRENT,
    positions_at_risk=POSITIONS_AT_RISK,
    hf_distribution=HF_DISTRIBUTION,
    bad_debt=BAD_DEBT,
)

# Proposal calls that set a reserve's collateral parameters, with the values before (the reserve's last
# CollateralConfigurationChanged before execution, or before now if not executed) and after. OpenZeppelin
# Governor calldata carries the selector; Bravo/Alpha put the signature text apart from the arguments.
RISK_PARAM_CHANGES = """
CREATE OR REPLACE VIEW risk_param_changes AS
WITH calls AS (
    SELECT p.chain_id, p.governor, p.proposal_id, p.title, p.state, p.executed_block, t.target,
           coalesce(s.signature, '') AS signature, c.calldata
    FROM proposals p
    CROSS JOIN LATERAL jsonb_array_elements_text(p.targets) WITH ORDINALITY AS t(target, n)
    JOIN LATERAL jsonb_array_elements_text(p.calldatas) WITH ORDINALITY AS c(calldata, n) ON c.n = t.n
    LEFT JOIN LATERAL jsonb_array_elements_text(p.signatures) WITH ORDINALITY AS s(signature, n) ON s.n = t.n
), collateral AS (
    SELECT *, CASE WHEN signature = '' THEN substr(calldata, 11) ELSE substr(calldata, 3) END AS args
    FROM calls
    WHERE (signature = '' AND substr(calldata, 3, 8) = '7c4e560b')
       OR signature = 'configureReserveAsCollateral(address,uint256,uint256,uint256)'
), decoded AS (
    SELECT chain_id, governor, proposal_id, title, state, executed_block, lower(target) AS configurator,
           '0x' || substr(args, 25, 40) AS asset,
           ('x' || substr(args, 65 + 48, 16))::bit(64)::bigint AS new_ltv,
           ('x' || substr(args, 129 + 48, 16))::bit(64)::bigint AS new_liquidation_threshold,
           ('x' || substr(args, 193 + 48, 16))::bit(64)::bigint AS new_liquidation_bonus
    FROM collateral
)
SELECT d.chain_id, d.governor, d.proposal_id, d.title, d.state, d.executed_block, d.configurator,
       'configureReserveAsCollateral' AS function, d.asset,
       o.ltv AS old_ltv, d.new_ltv,
       o.liquidation_threshold AS old_liquidation_threshold, d.new_liquidation_threshold,
       o.liquidation_bonus AS old_liquidation_bonus, d.new_liquidation_bonus
FROM decoded d
LEFT JOIN LATERAL (
    SELECT e.ltv, e.liquidation_threshold, e.liquidation_bonus
    FROM aave_v3_collateral_configuration_changed e
    WHERE e.chain_id = d.chain_id AND e.address = d.configurator AND e.asset = d.asset
      AND e.block_number < coalesce(d.executed_block, 9223372036854775807)
    ORDER BY e.block_number DESC, e.log_index DESC
    LIMIT 1
) o ON true
"""

VIEWS["risk_param_changes"] = RISK_PARAM_CHANGES
