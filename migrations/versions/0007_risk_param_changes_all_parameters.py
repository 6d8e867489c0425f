"""risk_param_changes covers every PoolConfigurator risk-parameter call, one row per parameter

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from indexer.views import RISK_PARAM_CHANGES, RISK_PARAM_CHANGES_V2

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The columns change (long format), which CREATE OR REPLACE VIEW cannot do, so the view is recreated.
def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS risk_param_changes")
    op.execute(RISK_PARAM_CHANGES_V2)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS risk_param_changes")
    op.execute(RISK_PARAM_CHANGES)
