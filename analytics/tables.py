"""PostgreSQL tables for forecasts and regime probabilities (SQLAlchemy Core, this package's MetaData)."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["forecast_runs", "metadata", "regime_probabilities", "volatility_forecasts"]

metadata = sa.MetaData()

forecast_runs = sa.Table(
    "forecast_runs",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("input_start", sa.Date, nullable=False),
    sa.Column("input_end", sa.Date, nullable=False),
    sa.Column("code_version", sa.Text, nullable=False),
    comment="One `chainrisk forecast run`: the inputs' source and time range.",
)

volatility_forecasts = sa.Table(
    "volatility_forecasts",
    metadata,
    sa.Column(
        "run_id", sa.BigInteger, sa.ForeignKey("forecast_runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("horizon_days", sa.SmallInteger, primary_key=True),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column(
        "as_of", sa.Date, nullable=False, comment="Last day of input; the forecast covers the days after."
    ),
    sa.Column(
        "variance", sa.Float, nullable=False, comment="Forecast variance of the summed daily log returns."
    ),
    sa.Column("volatility", sa.Float, nullable=False),
    sa.Column("interval_level", sa.Float, nullable=False),
    sa.Column("return_lower", sa.Float, nullable=False, comment="Lower quantile of the horizon log return."),
    sa.Column("return_upper", sa.Float, nullable=False, comment="Upper quantile of the horizon log return."),
    sa.CheckConstraint("variance > 0", name="ck_volatility_forecasts_positive"),
    comment="Latest 1- and 7-day variance forecasts with return intervals, per model.",
)

regime_probabilities = sa.Table(
    "regime_probabilities",
    metadata,
    sa.Column(
        "run_id", sa.BigInteger, sa.ForeignKey("forecast_runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("regime", sa.SmallInteger, primary_key=True, comment="0 calm … k − 1 turbulent"),
    sa.Column("k", sa.SmallInteger, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("daily_vol", sa.Float, comment="The regime's fitted daily volatility."),
    comment="Filtered (real-time) regime probabilities for recent days.",
)
