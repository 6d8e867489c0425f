"""PostgreSQL tables for stored contagion runs (SQLAlchemy Core, this module's MetaData).

One row per run (its seed and everything needed to repeat it, and the report it printed), one per
scenario (total bad debt, value liquidated, depth, the drawn price factors), and the scenario's parts: bad
debt per (market, asset) and per (market, wallet), and every liquidation. USD figures are double precision:
the cascade reports them as floats, and COPY's text form of a float (its repr) reads back to the same
float. Migration 0013 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

__all__ = [
    "contagion_bad_debt",
    "contagion_liquidations",
    "contagion_runs",
    "contagion_scenarios",
    "contagion_wallet_bad_debt",
    "metadata",
]

metadata = sa.MetaData()

contagion_runs = sa.Table(
    "contagion_runs",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("chain_id", sa.Integer, nullable=False),
    sa.Column(
        "block", sa.BigInteger, nullable=False, comment="block of the state every scenario starts from"
    ),
    sa.Column("kind", sa.Text, nullable=False, comment="what ran, e.g. var (`chainrisk contagion var`)"),
    sa.Column("seed", sa.BigInteger, nullable=False, comment="seed of the scenario draws"),
    sa.Column("scenarios", sa.Integer, nullable=False),
    sa.Column("method", sa.Text, nullable=False, comment="how the scenarios were drawn, e.g. student_t"),
    sa.Column(
        "assets",
        ARRAY(sa.Text),
        nullable=False,
        comment="the drawn assets (token addresses), in the order of contagion_scenarios.factors",
    ),
    sa.Column("markets", ARRAY(sa.Text), nullable=False, comment="the markets (Aave pool addresses) run"),
    sa.Column("inputs", JSONB, nullable=False, comment="everything needed to repeat the run"),
    sa.Column("summary", JSONB, nullable=False, comment="the run's report document (VaR, ES, intervals)"),
    sa.CheckConstraint("scenarios > 0", name="ck_contagion_runs_scenarios"),
    comment="One stored contagion run: its seed, inputs and report.",
)

contagion_scenarios = sa.Table(
    "contagion_scenarios",
    metadata,
    sa.Column(
        "run_id", sa.BigInteger, sa.ForeignKey("contagion_runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("scenario", sa.Integer, primary_key=True, comment="0-based, in the order drawn"),
    sa.Column("bad_debt_usd", sa.Float, nullable=False),
    sa.Column("liquidated_usd", sa.Float, nullable=False, comment="debt repaid by every liquidation, USD"),
    sa.Column("depth", sa.SmallInteger, nullable=False, comment="rounds with liquidations"),
    sa.Column(
        "factors",
        ARRAY(sa.Float),
        nullable=False,
        comment="price factor of each asset of contagion_runs.assets (0.7: down 30%)",
    ),
    comment="One scenario of a contagion run: its price factors and cascade totals.",
)


def _scenario_key() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id", "scenario"],
        ["contagion_scenarios.run_id", "contagion_scenarios.scenario"],
        ondelete="CASCADE",
    )


contagion_bad_debt = sa.Table(
    "contagion_bad_debt",
    metadata,
    sa.Column("run_id", sa.BigInteger, primary_key=True),
    sa.Column("scenario", sa.Integer, primary_key=True),
    sa.Column("market", sa.Text, primary_key=True),
    sa.Column("asset", sa.Text, primary_key=True, comment="the debt asset (token address)"),
    sa.Column("usd", sa.Float, nullable=False),
    _scenario_key(),
    comment="Bad debt a scenario leaves, per market and debt asset (USD at the final oracle prices).",
)

contagion_wallet_bad_debt = sa.Table(
    "contagion_wallet_bad_debt",
    metadata,
    sa.Column("run_id", sa.BigInteger, primary_key=True),
    sa.Column("scenario", sa.Integer, primary_key=True),
    sa.Column("market", sa.Text, primary_key=True),
    sa.Column("wallet", sa.Text, primary_key=True),
    sa.Column("usd", sa.Float, nullable=False),
    _scenario_key(),
    sa.Index("ix_contagion_wallet_bad_debt_wallet", "run_id", "market", "wallet"),
    comment="Bad debt a scenario leaves, per market and wallet (USD at the final oracle prices).",
)

contagion_liquidations = sa.Table(
    "contagion_liquidations",
    metadata,
    sa.Column("run_id", sa.BigInteger, primary_key=True),
    sa.Column("scenario", sa.Integer, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, comment="0-based order within the scenario's cascade"),
    sa.Column("round", sa.SmallInteger, nullable=False),
    sa.Column("market", sa.Text, nullable=False),
    sa.Column("wallet", sa.Text, nullable=False),
    sa.Column("collateral_asset", sa.Text, nullable=False),
    sa.Column("debt_asset", sa.Text, nullable=False),
    sa.Column("debt_repaid_usd", sa.Float, nullable=False),
    sa.Column("collateral_seized_usd", sa.Float, nullable=False),
    _scenario_key(),
    sa.Index("ix_contagion_liquidations_wallet", "run_id", "market", "wallet"),
    comment="Every liquidation of a scenario's cascade, USD at the oracle prices of its round.",
)
