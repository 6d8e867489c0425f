"""reader views over forecasts and regime probabilities

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The SQL as this revision created it: frozen here, never edited.
FORECASTS = """
CREATE OR REPLACE VIEW forecasts AS
SELECT r.asset, f.model, f.horizon_days, f.as_of, f.volatility, f.variance, f.interval_level,
       f.return_lower, f.return_upper, r.target, r.source, r.created_at, f.model_version, f.run_id
FROM volatility_forecasts f
JOIN forecast_runs r ON r.id = f.run_id
"""

FORECASTS_LATEST = """
CREATE OR REPLACE VIEW forecasts_latest AS
SELECT DISTINCT ON (asset, model, horizon_days) *
FROM forecasts
ORDER BY asset, model, horizon_days, as_of DESC, run_id DESC
"""

REGIMES = """
CREATE OR REPLACE VIEW regimes AS
SELECT p.asset, p.day, p.regime, p.k, p.probability, p.daily_vol, p.model_version, r.created_at, p.run_id
FROM regime_probabilities p
JOIN forecast_runs r ON r.id = p.run_id
"""

REGIMES_LATEST = """
CREATE OR REPLACE VIEW regimes_latest AS
SELECT g.*
FROM regimes g
WHERE g.run_id = (SELECT max(h.run_id) FROM regimes h WHERE h.asset = g.asset)
"""


def upgrade() -> None:
    for statement in (FORECASTS, FORECASTS_LATEST, REGIMES, REGIMES_LATEST):
        op.execute(statement)


def downgrade() -> None:
    for view in ("regimes_latest", "regimes", "forecasts_latest", "forecasts"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
