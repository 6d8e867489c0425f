"""risk_param_changes view: collateral-parameter changes proposed through governance

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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


def upgrade() -> None:
    op.execute(RISK_PARAM_CHANGES)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS risk_param_changes")
