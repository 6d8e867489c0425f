"""contagion results: runs, scenarios, bad debt, liquidations; reader views over them

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The SQL of the views as this revision created them: frozen here, never edited.
RUN_RESULTS = """
CREATE OR REPLACE VIEW contagion_run_results AS
SELECT r.id AS run_id, r.kind, r.chain_id, r.block, r.created_at, r.seed, r.scenarios, r.method,
       (r.summary #>> '{bad_debt_usd,VaR95,point}')::float8 AS var95_usd,
       (r.summary #>> '{bad_debt_usd,VaR99,point}')::float8 AS var99_usd,
       (r.summary #>> '{bad_debt_usd,ES97.5,point}')::float8 AS es975_usd,
       (r.summary #>> '{bad_debt_usd,ES99,point}')::float8 AS es99_usd,
       (r.summary ->> 'scenarios_with_bad_debt')::integer AS scenarios_with_bad_debt,
       (r.summary ->> 'max_bad_debt_usd')::float8 AS max_bad_debt_usd,
       r.assets, r.markets, r.inputs, r.summary
FROM contagion_runs r
"""

SCENARIO_RESULTS = """
CREATE OR REPLACE VIEW contagion_scenario_results AS
WITH ranked AS (
    SELECT s.run_id, s.scenario, s.bad_debt_usd, s.liquidated_usd, s.depth, s.factors, r.assets,
           r.scenarios::float8 AS n,
           row_number() OVER (PARTITION BY s.run_id ORDER BY s.bad_debt_usd, s.scenario) AS loss_rank,
           greatest(1, least(r.scenarios,
               ceil(r.scenarios::float8 * 0.99::float8 * (1::float8 - 1e-12::float8))))::bigint AS k99
    FROM contagion_scenarios s
    JOIN contagion_runs r ON r.id = s.run_id
)
SELECT run_id, scenario, bad_debt_usd, liquidated_usd, depth,
       coalesce((SELECT jsonb_object_agg(a.asset, a.factor) FROM unnest(assets, factors) AS a(asset, factor)),
                '{}'::jsonb) AS price_factors,
       loss_rank, loss_rank >= k99 AS in_tail99, loss_rank = k99 AS is_var99,
       CASE WHEN loss_rank > k99 THEN 1::float8 / (n * (1::float8 - 0.99::float8))
            WHEN loss_rank = k99 THEN (k99 / n - 0.99::float8) / (1::float8 - 0.99::float8)
            ELSE 0::float8 END AS es99_weight
FROM ranked
"""

SCENARIO_BAD_DEBT = """
CREATE OR REPLACE VIEW contagion_scenario_bad_debt AS
SELECT b.run_id, b.scenario, b.market, l.label AS market_label, b.asset, k.symbol, b.usd
FROM contagion_bad_debt b
JOIN contagion_runs r ON r.id = b.run_id
LEFT JOIN tracked_tokens k ON k.chain_id = r.chain_id AND k.token = b.asset
LEFT JOIN address_labels l ON l.chain_id = r.chain_id AND l.address = b.market
"""

SCENARIO_LIQUIDATIONS = """
CREATE OR REPLACE VIEW contagion_scenario_liquidations AS
SELECT q.run_id, q.scenario, q.seq, q.round, q.market, q.wallet, q.collateral_asset,
       ck.symbol AS collateral_symbol, q.debt_asset, dk.symbol AS debt_symbol, q.debt_repaid_usd,
       q.collateral_seized_usd
FROM contagion_liquidations q
JOIN contagion_runs r ON r.id = q.run_id
LEFT JOIN tracked_tokens ck ON ck.chain_id = r.chain_id AND ck.token = q.collateral_asset
LEFT JOIN tracked_tokens dk ON dk.chain_id = r.chain_id AND dk.token = q.debt_asset
"""

WALLET_LOSSES = """
CREATE OR REPLACE VIEW contagion_wallet_losses AS
WITH liquidated AS (
    SELECT run_id, scenario, market, wallet, sum(debt_repaid_usd) AS liquidated_usd,
           sum(collateral_seized_usd) AS collateral_seized_usd, count(*) AS liquidations
    FROM contagion_liquidations
    GROUP BY run_id, scenario, market, wallet
)
SELECT run_id, scenario, market, wallet, coalesce(b.usd, 0::float8) AS bad_debt_usd,
       coalesce(l.liquidated_usd, 0::float8) AS liquidated_usd,
       coalesce(l.collateral_seized_usd, 0::float8) AS collateral_seized_usd,
       coalesce(l.liquidations, 0) AS liquidations
FROM contagion_wallet_bad_debt b
FULL JOIN liquidated l USING (run_id, scenario, market, wallet)
"""

TAIL_CONTRIBUTORS = """
CREATE OR REPLACE VIEW contagion_tail_contributors AS
WITH tail AS (
    SELECT run_id, scenario, is_var99, es99_weight, bad_debt_usd
    FROM contagion_scenario_results
    WHERE in_tail99
), es AS (
    SELECT run_id, sum(es99_weight * bad_debt_usd) AS es99_usd
    FROM tail
    GROUP BY run_id
)
SELECT w.run_id, w.market, w.wallet,
       sum(t.es99_weight * w.bad_debt_usd) AS es99_bad_debt_usd,
       sum(t.es99_weight * w.bad_debt_usd) / nullif(max(es.es99_usd), 0) AS es99_share,
       sum(t.es99_weight * w.liquidated_usd) AS es99_liquidated_usd,
       coalesce(sum(w.bad_debt_usd) FILTER (WHERE t.is_var99), 0::float8) AS var99_bad_debt_usd,
       count(*) AS tail_scenarios
FROM contagion_wallet_losses w
JOIN tail t USING (run_id, scenario)
JOIN es USING (run_id)
GROUP BY w.run_id, w.market, w.wallet
"""

COMMENTS = {
    "contagion_run_results": (
        "One row per stored contagion run: seed, inputs and the report's VaR/ES points (USD of bad debt)."
    ),
    "contagion_scenario_results": (
        "One row per scenario of a run: bad debt, value liquidated, depth, price factor per asset; "
        "loss_rank orders the run's scenarios by bad debt (ties by scenario), in_tail99 marks ranks "
        "at or above k = ceil(0.99 n) (VaR99 is the bad debt at rank k, is_var99), es99_weight is the "
        "scenario's Acerbi-Tasche weight in ES99: 1/(0.01 n) above k, (k/n - 0.99)/0.01 at k, 0 "
        "below; the weights sum to 1."
    ),
    "contagion_scenario_bad_debt": "Bad debt per scenario, market and debt asset (USD), with symbols.",
    "contagion_scenario_liquidations": (
        "Every liquidation of every scenario (USD at the oracle prices of its round), with symbols."
    ),
    "contagion_wallet_losses": (
        "Per scenario and (market, wallet): bad debt left, debt repaid and collateral seized by its "
        "liquidations (USD), and how many liquidations."
    ),
    "contagion_tail_contributors": (
        "Per run and (market, wallet): the wallet's contribution to the tail of bad debt, over the "
        "scenarios at or beyond the run's VaR99 (in_tail99 of contagion_scenario_results). "
        "es99_bad_debt_usd is the es99_weight-weighted mean of the wallet's bad debt over those "
        "scenarios, so the wallets' values add up to the run's ES99 of bad debt wherever the cascade "
        "attributes all bad debt to wallets; es99_share is that value over the run's ES99 (NULL when "
        "ES99 is 0); es99_liquidated_usd the same weighted mean of the debt repaid in its "
        "liquidations; var99_bad_debt_usd its bad debt in the VaR99 scenario itself; tail_scenarios "
        "the number of tail scenarios in which it has bad debt or is liquidated. Wallets untouched in "
        "the tail are absent."
    ),
}

VIEWS = (
    RUN_RESULTS,
    SCENARIO_RESULTS,
    SCENARIO_BAD_DEBT,
    SCENARIO_LIQUIDATIONS,
    WALLET_LOSSES,
    TAIL_CONTRIBUTORS,
)


def upgrade() -> None:
    op.create_table(
        "contagion_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column(
            "block", sa.BigInteger(), nullable=False, comment="block of the state every scenario starts from"
        ),
        sa.Column(
            "kind", sa.Text(), nullable=False, comment="what ran, e.g. var (`chainrisk contagion var`)"
        ),
        sa.Column("seed", sa.BigInteger(), nullable=False, comment="seed of the scenario draws"),
        sa.Column("scenarios", sa.Integer(), nullable=False),
        sa.Column(
            "method", sa.Text(), nullable=False, comment="how the scenarios were drawn, e.g. student_t"
        ),
        sa.Column(
            "assets",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            comment="the drawn assets (token addresses), in the order of contagion_scenarios.factors",
        ),
        sa.Column(
            "markets",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            comment="the markets (Aave pool addresses) run",
        ),
        sa.Column(
            "inputs",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="everything needed to repeat the run",
        ),
        sa.Column(
            "summary",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="the run's report document (VaR, ES, intervals)",
        ),
        sa.CheckConstraint("scenarios > 0", name="ck_contagion_runs_scenarios"),
        sa.PrimaryKeyConstraint("id"),
        comment="One stored contagion run: its seed, inputs and report.",
    )
    op.create_table(
        "contagion_scenarios",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("scenario", sa.Integer(), nullable=False, comment="0-based, in the order drawn"),
        sa.Column("bad_debt_usd", sa.Float(), nullable=False),
        sa.Column(
            "liquidated_usd", sa.Float(), nullable=False, comment="debt repaid by every liquidation, USD"
        ),
        sa.Column("depth", sa.SmallInteger(), nullable=False, comment="rounds with liquidations"),
        sa.Column(
            "factors",
            postgresql.ARRAY(sa.Float()),
            nullable=False,
            comment="price factor of each asset of contagion_runs.assets (0.7: down 30%)",
        ),
        sa.ForeignKeyConstraint(["run_id"], ["contagion_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "scenario"),
        comment="One scenario of a contagion run: its price factors and cascade totals.",
    )
    op.create_table(
        "contagion_bad_debt",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("scenario", sa.Integer(), nullable=False),
        sa.Column("market", sa.Text(), nullable=False),
        sa.Column("asset", sa.Text(), nullable=False, comment="the debt asset (token address)"),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id", "scenario"],
            ["contagion_scenarios.run_id", "contagion_scenarios.scenario"],
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "scenario", "market", "asset"),
        comment="Bad debt a scenario leaves, per market and debt asset (USD at the final oracle prices).",
    )
    op.create_table(
        "contagion_wallet_bad_debt",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("scenario", sa.Integer(), nullable=False),
        sa.Column("market", sa.Text(), nullable=False),
        sa.Column("wallet", sa.Text(), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id", "scenario"],
            ["contagion_scenarios.run_id", "contagion_scenarios.scenario"],
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "scenario", "market", "wallet"),
        comment="Bad debt a scenario leaves, per market and wallet (USD at the final oracle prices).",
    )
    op.create_index(
        "ix_contagion_wallet_bad_debt_wallet", "contagion_wallet_bad_debt", ["run_id", "market", "wallet"]
    )
    op.create_table(
        "contagion_liquidations",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("scenario", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, comment="0-based order within the scenario's cascade"),
        sa.Column("round", sa.SmallInteger(), nullable=False),
        sa.Column("market", sa.Text(), nullable=False),
        sa.Column("wallet", sa.Text(), nullable=False),
        sa.Column("collateral_asset", sa.Text(), nullable=False),
        sa.Column("debt_asset", sa.Text(), nullable=False),
        sa.Column("debt_repaid_usd", sa.Float(), nullable=False),
        sa.Column("collateral_seized_usd", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id", "scenario"],
            ["contagion_scenarios.run_id", "contagion_scenarios.scenario"],
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "scenario", "seq"),
        comment="Every liquidation of a scenario's cascade, USD at the oracle prices of its round.",
    )
    op.create_index(
        "ix_contagion_liquidations_wallet", "contagion_liquidations", ["run_id", "market", "wallet"]
    )
    for statement in VIEWS:
        op.execute(statement)
    for view, comment in COMMENTS.items():
        op.execute(f"COMMENT ON VIEW {view} IS '{comment.replace(chr(39), chr(39) * 2)}'")


def downgrade() -> None:
    for view in reversed(list(COMMENTS)):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.drop_index("ix_contagion_liquidations_wallet", table_name="contagion_liquidations")
    op.drop_table("contagion_liquidations")
    op.drop_index("ix_contagion_wallet_bad_debt_wallet", table_name="contagion_wallet_bad_debt")
    op.drop_table("contagion_wallet_bad_debt")
    op.drop_table("contagion_bad_debt")
    op.drop_table("contagion_scenarios")
    op.drop_table("contagion_runs")
