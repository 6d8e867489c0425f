"""reader views: votes, proposals, liquidations

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from indexer.views import LIQUIDATIONS, PROPOSALS, VOTES

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in (VOTES, PROPOSALS, LIQUIDATIONS):
        op.execute(statement)


def downgrade() -> None:
    for view in ("liquidations", "proposals", "votes"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
