"""Reader views over stored contagion runs: the runs, their scenarios, who is liquidated and who leaves bad
debt, and each wallet's contribution to the tail.

Like analytics/views.py, this holds the current definitions once; the migration that created them keeps a
frozen copy (migrations/versions/0013_contagion_results.py).

The tail is the one `graph.tail` measures: scenarios ranked by bad debt (ascending; ties by scenario
number), k = ceil(0.99 n) the rank of VaR99, and ES99 (Acerbi–Tasche) the mean of the ranks above k with
the VaR99 scenario weighted by what is left of the 1% (k/n − 0.99). The weights sum to 1, so a wallet's
weighted mean bad debt over those scenarios is its share of ES99, and the shares add up to ES99.
"""

from __future__ import annotations

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

VIEWS: dict[str, str] = {
    "contagion_run_results": RUN_RESULTS,
    "contagion_scenario_results": SCENARIO_RESULTS,
    "contagion_scenario_bad_debt": SCENARIO_BAD_DEBT,
    "contagion_scenario_liquidations": SCENARIO_LIQUIDATIONS,
    "contagion_wallet_losses": WALLET_LOSSES,
    "contagion_tail_contributors": TAIL_CONTRIBUTORS,
}

COMMENTS: dict[str, str] = {
    "contagion_run_results": (
        "One row per stored contagion run: seed, inputs and the report's VaR/ES points (USD of bad debt)."
    ),
    "contagion_scenario_results": (
        "One row per scenario of a run: bad debt, value liquidated, depth, price factor per asset;"
        " loss_rank orders the run's scenarios by bad debt (ties by scenario), in_tail99 marks ranks at"
        " or above k = ceil(0.99 n) (VaR99 is the bad debt at rank k, is_var99), es99_weight is the"
        " scenario's Acerbi-Tasche weight in ES99: 1/(0.01 n) above k, (k/n - 0.99)/0.01 at k, 0 below;"
        " the weights sum to 1."
    ),
    "contagion_scenario_bad_debt": "Bad debt per scenario, market and debt asset (USD), with symbols.",
    "contagion_scenario_liquidations": (
        "Every liquidation of every scenario (USD at the oracle prices of its round), with symbols."
    ),
    "contagion_wallet_losses": (
        "Per scenario and (market, wallet): bad debt left, debt repaid and collateral seized by its"
        " liquidations (USD), and how many liquidations."
    ),
    "contagion_tail_contributors": (
        "Per run and (market, wallet): the wallet's contribution to the tail of bad debt, over the"
        " scenarios at or beyond the run's VaR99 (in_tail99 of contagion_scenario_results)."
        " es99_bad_debt_usd is the es99_weight-weighted mean of the wallet's bad debt over those"
        " scenarios, so the wallets' values add up to the run's ES99 of bad debt wherever the cascade"
        " attributes all bad debt to wallets; es99_share is that value over the run's ES99 (NULL when ES99"
        " is 0); es99_liquidated_usd the same weighted mean of the debt repaid in its liquidations;"
        " var99_bad_debt_usd its bad debt in the VaR99 scenario itself; tail_scenarios the number of tail"
        " scenarios in which it has bad debt or is liquidated. Wallets untouched in the tail are absent."
    ),
}
