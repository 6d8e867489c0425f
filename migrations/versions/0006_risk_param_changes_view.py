"""risk_param_changes view: collateral-parameter changes proposed through governance

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from indexer.views import RISK_PARAM_CHANGES

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(RISK_PARAM_CHANGES)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS risk_param_changes")
