"""risk_param_changes covers every PoolConfigurator risk-parameter call, one row per parameter

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The columns change (long format), which CREATE OR REPLACE VIEW cannot do, so the view is recreated.
# The SQL as this revision created it: frozen here, never edited.
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

RISK_PARAM_CHANGES_V2 = """
CREATE VIEW risk_param_changes AS
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
    op.execute("DROP VIEW IF EXISTS risk_param_changes")
    op.execute(RISK_PARAM_CHANGES_V2)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS risk_param_changes")
    op.execute(RISK_PARAM_CHANGES)
