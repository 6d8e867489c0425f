"""Reader views over the forecast tables: every forecast and regime probability, and the latest of each.

Like indexer/views.py, this holds the current definitions once; the migration that created them keeps a
frozen copy (migrations/versions/0011_forecast_views.py).
"""

from __future__ import annotations

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

VIEWS: dict[str, str] = {
    "forecasts": FORECASTS,
    "forecasts_latest": FORECASTS_LATEST,
    "regimes": REGIMES,
    "regimes_latest": REGIMES_LATEST,
}
