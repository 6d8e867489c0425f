"""The report's sections, in the order risk providers post them on DAO forums.

Each builder takes the connection, the markets loaded at the report's block and the :class:`Scope`, and
returns one :class:`Section` whose every table carries the SQL or command that reproduces it. SQL reads
the documented reader views only (docs/SQL.md), with literal values, so a reader can paste it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from chainrisk.contagion.inputs import Conn, Inputs, token_symbols
from chainrisk.reports import plots
from chainrisk.reports.model import Plot, Section, Table, Value, num
from chainrisk.reports.sql import query

CASCADE_DROP = 30  # percent every moving asset falls in the cascade section
CURVE_MAX_DROP, CURVE_STEP = 50, 10  # percent
TOP = 10

HF = {"health_factor": ".3f"}
VOL = {"volatility": ".4f", "probability": ".3f", "daily_vol": ".4f"}


@dataclass(frozen=True)
class Scope:
    """Where the report stands: the chain, the block, whether that is the indexed head (state from
    ``positions_current``) or a past block (``health_at``), and the window of flows."""

    chain_id: int
    block: int
    at_head: bool
    window_days: int
    window_end: datetime | None
    no_scenarios: str | None = None  # why the markets could not be loaded for the scenario sections

    @property
    def accounts(self) -> str:
        """The source of account rows (pool, user_address, collateral_usd, debt_usd, health_factor)."""
        return "positions_current" if self.at_head else f"health_at({self.block})"

    @property
    def window(self) -> str:
        """SQL condition on ``block_time`` for the flows of the period, ending at the report's block."""
        if self.window_end is None:
            return "false"
        start = self.window_end - timedelta(days=self.window_days)
        return (
            f"block_time > timestamptz '{start.isoformat()}' AND block_time <= timestamptz"
            f" '{self.window_end.isoformat()}'"
        )


def rows(table: Table) -> list[dict[str, Value]]:
    return [dict(zip(table.columns, r, strict=True)) for r in table.rows]


def command(scope: Scope, *args: str) -> str:
    at = [] if scope.at_head else ["--block", str(scope.block)]
    return " ".join(["chainrisk", *args, *at])


# ---------------------------------------------------------------------------------------------- state


def markets(conn: Conn, inputs: Inputs | None, scope: Scope) -> Section:
    section = Section("markets", "Markets and their positions")
    section.tables.append(
        query(
            conn,
            "Markets",
            f"""
SELECT p.pool AS market, l.label, count(*) AS accounts, count(*) FILTER (WHERE p.debt_usd > 0) AS borrowers,
       round(sum(p.collateral_usd), 2) AS collateral_usd, round(sum(p.debt_usd), 2) AS debt_usd
FROM {scope.accounts} p
LEFT JOIN address_labels l ON l.chain_id = p.chain_id AND l.address = p.pool
WHERE p.chain_id = {scope.chain_id}
GROUP BY p.pool, l.label
ORDER BY debt_usd DESC, p.pool""",
        )
    )
    assets = "positions_by_asset" if scope.at_head else f"positions_at({scope.block})"
    section.tables.append(
        query(
            conn,
            "Collateral and debt per asset",
            f"""
SELECT a.pool AS market, coalesce(k.symbol, a.asset) AS asset, count(DISTINCT a.user_address) AS wallets,
       round(sum(a.collateral_usd), 2) AS collateral_usd, round(sum(a.debt_usd), 2) AS debt_usd
FROM {assets} a
LEFT JOIN tracked_tokens k ON k.chain_id = a.chain_id AND k.token = a.asset
WHERE a.chain_id = {scope.chain_id} AND (a.collateral_usd > 0 OR a.debt_usd > 0)
GROUP BY a.pool, coalesce(k.symbol, a.asset)
ORDER BY a.pool, debt_usd DESC, asset""",
        )
    )
    return section


def _hf_sql(scope: Scope) -> str:
    if scope.at_head:
        return f"""
SELECT h.pool AS market, l.label, h.hf_bucket, h.users, round(h.collateral_usd, 2) AS collateral_usd,
       round(h.debt_usd, 2) AS debt_usd
FROM hf_distribution h
LEFT JOIN address_labels l ON l.chain_id = h.chain_id AND l.address = h.pool
WHERE h.chain_id = {scope.chain_id}
ORDER BY h.pool, h.hf_bucket"""
    return f"""
SELECT p.pool AS market, l.label,
       CASE WHEN p.health_factor < 1 THEN '0: < 1.00' WHEN p.health_factor < 1.05 THEN '1: 1.00-1.05'
            WHEN p.health_factor < 1.1 THEN '2: 1.05-1.10' WHEN p.health_factor < 1.25 THEN '3: 1.10-1.25'
            WHEN p.health_factor < 1.5 THEN '4: 1.25-1.50' WHEN p.health_factor < 2 THEN '5: 1.50-2.00'
            ELSE '6: >= 2.00' END AS hf_bucket,
       count(*) AS users, round(sum(p.collateral_usd), 2) AS collateral_usd,
       round(sum(p.debt_usd), 2) AS debt_usd
FROM {scope.accounts} p
LEFT JOIN address_labels l ON l.chain_id = p.chain_id AND l.address = p.pool
WHERE p.chain_id = {scope.chain_id} AND p.debt_usd > 0
GROUP BY 1, 2, 3
ORDER BY 1, 3"""


def hf_distribution(conn: Conn, inputs: Inputs | None, scope: Scope) -> Section:
    section = Section("hf", "Health-factor distribution")
    table = query(conn, "Borrowers per health-factor bucket", _hf_sql(scope))
    section.tables.append(table)
    if table.rows:
        png = plots.hf_distribution(rows(table))
        section.plots.append(Plot("hf-distribution.png", "Debt per health-factor bucket", png))
    else:
        section.missing.append("No account has debt at this block.")
    return section


def top_wallets(conn: Conn, inputs: Inputs | None, scope: Scope) -> Section:
    section = Section("wallets", "Top wallets at risk")
    columns = (
        "pool AS market, user_address AS wallet, round(health_factor, 3) AS health_factor,"
        " round(collateral_usd, 2) AS collateral_usd, round(debt_usd, 2) AS debt_usd"
    )
    where = f"chain_id = {scope.chain_id} AND debt_usd > 0"
    section.tables.append(
        query(
            conn,
            f"The {TOP} lowest health factors",
            f"SELECT {columns}\nFROM {scope.accounts}\nWHERE {where}\n"
            f"ORDER BY health_factor, debt_usd DESC, pool, user_address\nLIMIT {TOP}",
            HF,
        )
    )
    section.tables.append(
        query(
            conn,
            f"The {TOP} largest borrowers",
            f"SELECT {columns}\nFROM {scope.accounts}\nWHERE {where}\n"
            f"ORDER BY debt_usd DESC, pool, user_address\nLIMIT {TOP}",
            HF,
        )
    )
    return section


# ------------------------------------------------------------------------------------------ scenarios


def lar_curve(conn: Conn, inputs: Inputs | None, scope: Scope) -> Section:
    from chainrisk.contagion.curve import curve, drops, moving_assets

    section = Section("lar", "Liquidations at risk per asset")
    if inputs is None:
        section.missing.append(f"Liquidations at risk: {_no_scenarios(scope)}")
        return section
    assets = moving_assets(inputs, [])
    if not assets:
        section.missing.append("No asset other than dollars is priced in these markets.")
        return section
    document = curve(inputs, assets, drops(CURVE_MAX_DROP, CURVE_STEP))
    shown = [p for p in document["points"] if p["drop_percent"] > 0]
    table = Table(
        "Each asset alone falling: first round and after the cascade",
        ["asset", "drop_percent", "market", "accounts_below_1", "debt_at_risk_usd", "liquidations",
         "debt_repaid_usd", "bad_debt_usd"],
        [[p["symbol"] or p["asset"], p["drop_percent"], p["market_label"] or p["market"],
          p["first_round"]["accounts"], p["first_round"]["debt_usd"], p["cascade"]["liquidations"],
          p["cascade"]["debt_repaid_usd"], p["cascade"]["bad_debt_usd"]] for p in shown],
        command(scope, "contagion", "curve", "--max-drop", str(CURVE_MAX_DROP), "--step", str(CURVE_STEP),
                "--json"),
        "command",
        {"drop_percent": "g"},
    )  # fmt: skip
    section.tables.append(table)
    section.plots.append(Plot("lar-curve.png", "Liquidations at risk against each asset's drop",
                              plots.lar_curve(document)))  # fmt: skip
    return section


def cascade(conn: Conn, inputs: Inputs | None, scope: Scope) -> Section:
    from chainrisk.contagion.curve import moving_assets
    from chainrisk.contagion.report import report, simulate

    section = Section("cascade", "Cascade and tail risk")
    assets = [] if inputs is None else moving_assets(inputs, [])
    if inputs is None:
        section.missing.append(f"The cascade round by round: {_no_scenarios(scope)}")
    elif assets:
        shock = {a: 1 - Fraction(CASCADE_DROP, 100) for a in assets}
        document: dict[str, Any] = report(inputs, shock, simulate(inputs, shock))
        names = [inputs.symbols.get(a, a) for a in assets]
        args = [x for n in names for x in ("--shock", f"{n}=-{CASCADE_DROP}%")]
        table = _rounds_table(document, command(scope, "contagion", "simulate", *args, "--json"))
        section.tables.append(table)
        bad = sum(float(b["usd"]) for b in document["bad_debt"])
        section.text.append(
            f"Cascade: {', '.join(names)} all down {CASCADE_DROP}% at once; {document['depth']} round(s) with"
            f" liquidations, bad debt left {bad:,.2f} USD."
        )
        if table.rows:
            title = f"Cascade round by round, {', '.join(names)} -{CASCADE_DROP}%"
            section.plots.append(
                Plot("cascade-rounds.png", title, plots.cascade_rounds(rows(table), bad, title))
            )
    _tail(conn, scope, section)
    return section


def _no_scenarios(scope: Scope) -> str:
    return (
        f"the cascade needs the markets' Uniswap v3 pools indexed ({scope.no_scenarios}); the state"
        " sections do not."
    )


def _rounds_table(document: Mapping[str, Any], reproduce: str) -> Table:
    lines = []
    for r in document["rounds"]:
        done = r["liquidations"]
        lines.append([r["round"], len(done), len({x["wallet"] for x in done}),
                      sum(float(x["debt_repaid_usd"]) for x in done),
                      sum(float(x["collateral_seized_usd"]) for x in done)])  # fmt: skip
    columns = ["round", "liquidations", "wallets", "debt_repaid_usd", "collateral_seized_usd"]
    return Table("Liquidations per round", columns, lines, reproduce, "command")


def _tail(conn: Conn, scope: Scope, section: Section) -> None:
    run = query(
        conn,
        "Latest stored Monte Carlo run (bad debt, USD)",
        f"""
SELECT run_id, block, created_at, seed, scenarios, method, round(var95_usd::numeric, 2) AS var95_usd,
       round(var99_usd::numeric, 2) AS var99_usd, round(es975_usd::numeric, 2) AS es975_usd,
       round(es99_usd::numeric, 2) AS es99_usd, scenarios_with_bad_debt,
       round(max_bad_debt_usd::numeric, 2) AS max_bad_debt_usd
FROM contagion_run_results
WHERE kind = 'var' AND chain_id = {scope.chain_id}
ORDER BY run_id DESC
LIMIT 1""",
    )
    if not run.rows:
        section.missing.append(
            f"No stored Monte Carlo run on chain {scope.chain_id}: VaR and ES of bad debt come from the"
            " latest stored `chainrisk contagion var` run (e.g. `chainrisk contagion var --scenarios 1000`,"
            " or the `contagion` job of `chainrisk serve`)."
        )
        return
    section.tables.append(run)
    latest = rows(run)[0]
    run_id = latest["run_id"]
    section.tables.append(
        query(
            conn,
            f"The {TOP} wallets that contribute most to the tail (ES99)",
            f"""
SELECT market, wallet, round(es99_bad_debt_usd::numeric, 2) AS tail_bad_debt_usd,
       round(100 * es99_share::numeric, 1) AS pct_of_es99, tail_scenarios
FROM contagion_tail_contributors
WHERE run_id = {run_id} AND es99_bad_debt_usd > 0
ORDER BY es99_bad_debt_usd DESC, market, wallet
LIMIT {TOP}""",
            {"pct_of_es99": ".1f"},
        )
    )
    losses = conn.execute(
        "SELECT bad_debt_usd FROM contagion_scenario_results WHERE run_id = %s ORDER BY scenario", (run_id,)
    ).fetchall()
    marks = {
        k: num(latest[f"{k.lower().replace('.', '')}_usd"]) for k in ("VaR95", "VaR99", "ES97.5", "ES99")
    }
    title = f"Bad debt over {latest['scenarios']} scenarios (run {run_id}, block {latest['block']})"
    section.plots.append(
        Plot(
            "bad-debt.png",
            title,
            plots.bad_debt_distribution([float(str(r[0])) for r in losses], marks, title),
        )
    )


# ----------------------------------------------------------------------------------------- exposure


def exposure(conn: Conn, inputs: Inputs | None, scope: Scope) -> Section:
    from graph.exposure import exposure_graph, market_exposure, market_labels, read_positions

    section = Section("exposure", "Exposure between markets and protocols")
    positions = read_positions(conn, scope.chain_id)
    graph = exposure_graph(positions)
    matrix = market_exposure(graph)
    if not matrix.markets or matrix.weights.sum() == 0:
        section.missing.append(f"No borrowing positions indexed on chain {scope.chain_id}.")
        return section
    labels = market_labels(conn, scope.chain_id)
    section.text.append(
        "At the indexed head (the exposure graph reads the current positions). A wallet with positions in"
        " several markets links them: market i's loans backed by collateral held in market j."
    )
    section.tables.append(_debtrank(matrix, labels, scope))
    pairs: list[list[Value]] = [
        [labels.get(a, a), labels.get(b, b), float(matrix.exposures[i, j])]
        for i, a in enumerate(matrix.markets)
        for j, b in enumerate(matrix.markets)
        if matrix.exposures[i, j] > 0
    ]
    section.tables.append(
        Table(
            "Market-to-market exposure (USD of i's loans backed in j)",
            ["market_i", "market_j", "exposure_usd"],
            pairs,
            f"chainrisk graph debtrank --chain-id {scope.chain_id} --json  (matrix: graph.exposure)",
            "command",
        )
    )
    if inputs is None:
        section.missing.append(f"Clearing at shocked prices: {_no_scenarios(scope)}")
    else:
        section.tables.append(_clearing(conn, inputs, scope))
    symbols = token_symbols(conn, scope.chain_id)
    edges = [
        (labels.get(m[1], m[1][:10]), symbols.get(a[1], a[1][:10]), float(d["exposure_usd"]))
        for m, a, d in graph.edges(data=True)
        if m[0] == "market" and a[0] == "asset"
    ]
    cross = [(str(p[0]), str(p[1]), num(p[2])) for p in pairs]
    title = f"Exposure graph, chain {scope.chain_id}"
    section.plots.append(Plot("exposure-graph.png", title, plots.exposure_graph(edges, cross, title)))
    return section


def _debtrank(matrix: Any, labels: Mapping[str, str], scope: Scope) -> Table:
    import numpy as np

    from graph.debtrank import debtrank

    lines: list[list[Value]] = []
    for i, market in enumerate(matrix.markets):
        initial = np.zeros(len(matrix.markets))
        initial[i] = 1.0
        result = debtrank(matrix.exposures, matrix.buffers, matrix.weights, initial, "original")
        stress, defaults = float(result.additional_stress), int(result.additional_defaults)
        lines.append([labels.get(market, market), float(matrix.collateral[i]), float(matrix.debt[i]),
                      float(matrix.buffers[i]), stress, defaults])  # fmt: skip
    return Table(
        "Each market defaulting: DebtRank stress passed on to the others",
        ["market", "collateral_usd", "debt_usd", "buffer_usd", "additional_stress", "additional_defaults"],
        lines,
        f"chainrisk graph debtrank --chain-id {scope.chain_id} --shock MARKET=1 --json  (one run per market)",
        "command",
        {"additional_stress": ".4f"},
    )


def _clearing(conn: Conn, inputs: Inputs, scope: Scope) -> Table:
    from chainrisk.contagion.clearing import clearing_report
    from chainrisk.contagion.curve import moving_assets

    shocks = [f"{inputs.symbols.get(a, a)}=-{CASCADE_DROP}%" for a in moving_assets(inputs, [])]
    document = clearing_report(conn, scope.chain_id, shocks)
    args = " ".join(f"--shock {s}" for s in shocks)
    return Table(
        f"Eisenberg-Noe clearing, every moving asset -{CASCADE_DROP}%",
        ["wallets", "wallets_defaulted", "wallet_shortfall_usd", "first_order_shortfall_usd",
         "contagion_shortfall_usd"],
        [[document["wallets"], document["wallets_defaulted"], document["wallet_shortfall_usd"],
          document["first_order_shortfall_usd"], document["contagion_shortfall_usd"]]],
        f"chainrisk graph clearing --chain-id {scope.chain_id} {args} --json",
        "command",
    )  # fmt: skip


# ------------------------------------------------------------------------------ governance and flows


def governance(conn: Conn, inputs: Inputs | None, scope: Scope) -> Section:
    section = Section("governance", "Governance changes and their impact")
    section.tables.append(
        query(
            conn,
            "Risk parameters set by proposals (latest first)",
            f"""
SELECT r.proposal_id::text AS proposal_id, r.state, r.executed_block, coalesce(k.symbol, r.asset) AS asset,
       r.emode_category, r.parameter, r.old_value::text AS old_value, r.new_value::text AS new_value
FROM risk_param_changes r
LEFT JOIN tracked_tokens k ON k.chain_id = r.chain_id AND k.token = r.asset
WHERE r.chain_id = {scope.chain_id}
ORDER BY r.executed_block DESC NULLS FIRST, r.proposal_id DESC, asset, r.parameter
LIMIT 20""",
        )
    )
    section.tables.append(
        query(
            conn,
            "Governance alerts (latest first)",
            f"""
SELECT alert_id, created_at, kind, severity, subject, title
FROM alerts_fired
WHERE kind LIKE 'governance%' AND (chain_id = {scope.chain_id} OR chain_id IS NULL)
ORDER BY alert_id DESC
LIMIT 20""",
        )
    )
    if _impact_available():
        section.tables.append(_pending_impact(conn, scope))
    else:
        section.missing.append(
            "The impact of a queued change on today's positions (wallets becoming liquidatable, collateral"
            " and debt at risk before and after) is not available in this build yet; once it is, its"
            " alerts appear in the table above."
        )
    return section


def _impact_available() -> bool:
    """Whether this build has an alert kind for a governance change's impact on positions."""
    from chainrisk.alerts.rules import kinds

    return "governance_impact" in kinds()


def _pending_impact(conn: Conn, scope: Scope) -> Table:
    """What each proposal not yet executed (nor cancelled) would do to today's positions, with the risk
    parameters its calldata sets (chainrisk.governance_impact, as the governance_impact alert computes
    it; payloads whose values are not in the calldata need the alert's anvil fork and are not here)."""
    from chainrisk.governance_impact import decoded_changes, proposal_impact

    pending = conn.execute(
        "SELECT DISTINCT governor, proposal_id FROM risk_param_changes"
        " WHERE chain_id = %s AND state NOT IN ('executed', 'canceled') ORDER BY 1, 2",
        (scope.chain_id,),
    ).fetchall()
    lines: list[list[Value]] = []
    for governor, proposal in pending:
        changes = decoded_changes(conn, scope.chain_id, str(governor), int(str(proposal)))
        for m in proposal_impact(conn, scope.chain_id, changes):
            lines.append([str(proposal), m.pool, m.borrowers, m.liquidatable[0], m.liquidatable[1],
                          len(m.newly_liquidatable), len(m.entering_full_close), m.debt_at_risk_usd[0],
                          m.debt_at_risk_usd[1]])  # fmt: skip
    return Table(
        "Pending risk changes applied to today's positions",
        ["proposal_id", "market", "borrowers", "hf_below_1_before", "hf_below_1_after", "newly_below_1",
         "newly_full_close", "debt_at_risk_before_usd", "debt_at_risk_after_usd"],
        lines,
        "chainrisk alerts check  (an [[alerts]] rule of kind governance_impact: the same figures per queued"
        " proposal, chainrisk.governance_impact.proposal_impact)",
        "command",
    )  # fmt: skip


def whale_flows(conn: Conn, inputs: Inputs | None, scope: Scope) -> Section:
    section = Section("whales", "Whale flows")
    section.text.append(
        f"Transfers of tracked tokens at or above their whale threshold over the {scope.window_days} day(s)"
        " up to the report's block."
    )
    if scope.window_end is None:
        section.missing.append("No indexed block time up to the report's block.")
        return section
    where = f"chain_id = {scope.chain_id} AND block_number <= {scope.block} AND {scope.window}"
    section.tables.append(
        query(
            conn,
            "Whale transfers by token and direction",
            f"""
SELECT symbol, direction, count(*) AS transfers, round(sum(usd), 2) AS usd
FROM whale_flows
WHERE {where}
GROUP BY symbol, direction
ORDER BY usd DESC NULLS LAST, symbol, direction""",
        )
    )
    section.tables.append(
        query(
            conn,
            "Exchange net flows by token (positive: into exchanges)",
            f"""
SELECT symbol, sum(transfers) AS transfers, round(sum(inflow_usd), 2) AS inflow_usd,
       round(sum(outflow_usd), 2) AS outflow_usd, round(sum(netflow_usd), 2) AS netflow_usd
FROM exchange_netflows
WHERE chain_id = {scope.chain_id} AND {scope.window.replace("block_time", "hour")}
GROUP BY symbol
ORDER BY netflow_usd DESC NULLS LAST, symbol""",
        )
    )
    return section


def forecasts(conn: Conn, inputs: Inputs | None, scope: Scope) -> Section:
    section = Section("forecasts", "Volatility forecasts and regimes")
    vols = query(
        conn,
        "Latest volatility forecasts (daily volatility)",
        """
SELECT asset, model, horizon_days, as_of, round(volatility::numeric, 4) AS volatility
FROM forecasts_latest
ORDER BY asset, model, horizon_days""",
        VOL,
    )
    regimes = query(
        conn,
        "Latest regime probabilities",
        """
SELECT asset, day, regime, round(probability::numeric, 3) AS probability,
       round(daily_vol::numeric, 4) AS daily_vol
FROM regimes_latest g
WHERE day = (SELECT max(h.day) FROM regimes_latest h WHERE h.asset = g.asset)
ORDER BY asset, regime""",
        VOL,
    )
    section.tables += [t for t in (vols, regimes) if t.rows]
    if not vols.rows:
        section.missing.append(
            "No volatility forecast stored: `chainrisk forecast run` (or the `forecast` job of"
            " `chainrisk serve`) writes them."
        )
    if not regimes.rows:
        section.missing.append("No regime probabilities stored: the same forecast run writes them.")
    return section


METHODOLOGY = [
    "Positions and health factors are rebuilt from the indexed events and equal Aave's"
    " `Pool.getUserAccountData` at the block of each account's last event (`positions_current`); with"
    " `--block N` they are the history's accounts in force at N (`health_at(N)`).",
    "Prices are the indexed oracle prices (AaveOracle sources and their feeds), never an outside API.",
    f"Liquidations at risk: each non-dollar asset alone falls by 0 to {CURVE_MAX_DROP}% in {CURVE_STEP}%"
    " steps; the first round counts the accounts below health factor 1 at the dropped oracle price, the"
    " cascade liquidates them round by round (close factor, bonus, protocol fee), sells the seized"
    " collateral into the indexed Uniswap v3 pools and lets the oracles follow the pools.",
    "Tail risk: the latest stored `contagion var` run draws joint price moves from the volatility"
    " forecasts, regimes and the price history, runs the cascade on each and reports VaR and expected"
    " shortfall (Acerbi-Tasche) of bad debt; contributors are the wallets' ES99-weighted bad debt.",
    "Exposure: DebtRank over the market-to-market matrix of loans backed by collateral in other markets"
    " (buffers: over-collateralisation), and Eisenberg-Noe clearing of markets and wallets at shocked"
    " prices.",
    "Each table ends with the SQL (reader views, docs/SQL.md) or the command that reproduces its numbers.",
]


def methodology(conn: Conn, inputs: Inputs | None, scope: Scope) -> Section:
    return Section("methodology", "Methodology", text=list(METHODOLOGY))


# ------------------------------------------------------------------------------------------ summary


def summary(conn: Conn, built: Sequence[Section], scope: Scope) -> Section:
    """Bullets over a table of key figures (with its query) and the other sections' results."""
    section = Section("summary", "Summary")
    found = {s.key: s for s in built}
    key = query(
        conn,
        "Key figures",
        f"""
SELECT count(DISTINCT pool) AS markets, count(*) FILTER (WHERE debt_usd > 0) AS borrowers,
       round(sum(collateral_usd), 2) AS collateral_usd, round(sum(debt_usd), 2) AS debt_usd,
       count(*) FILTER (WHERE debt_usd > 0 AND health_factor < 1.1) AS borrowers_below_1_10,
       coalesce(round(sum(debt_usd) FILTER (WHERE debt_usd > 0 AND health_factor < 1.1), 2), 0)
           AS debt_below_1_10_usd,
       count(*) FILTER (WHERE debt_usd > 0 AND health_factor < 1) AS borrowers_below_1_00
FROM {scope.accounts}
WHERE chain_id = {scope.chain_id}""",
    )
    section.tables.append(key)
    k = rows(key)[0]
    at = "the indexed head" if scope.at_head else "a past block"
    section.text.append(
        f"Chain {scope.chain_id}, block {scope.block} ({at}): {k['markets']} market(s), {k['borrowers']}"
        f" borrower(s), {num(k['collateral_usd']):,.2f} USD of collateral and {num(k['debt_usd']):,.2f} USD"
        " of debt."
    )
    section.text.append(
        f"{k['borrowers_below_1_10']} borrower(s) below health factor 1.10, with"
        f" {num(k['debt_below_1_10_usd']):,.2f} USD of debt ({k['borrowers_below_1_00']} below 1.00)."
    )
    section.text += found["cascade"].text[:1]
    tail = [t for t in found["cascade"].tables if t.title.startswith("Latest stored")]
    if tail:
        r = rows(tail[0])[0]
        section.text.append(
            f"Monte Carlo run {r['run_id']} ({r['scenarios']} scenarios, block {r['block']}): VaR99 of"
            f" bad debt {num(r['var99_usd']):,.2f} USD, ES99 {num(r['es99_usd']):,.2f} USD."
        )
    missing = [s.title for s in built if s.missing]
    if missing:
        section.text.append(f"Not (fully) available: {', '.join(missing)} (see each section).")
    return section


BUILDERS: list[Callable[[Conn, Inputs | None, Scope], Section]] = [
    markets, hf_distribution, top_wallets, lar_curve, cascade, exposure, governance, whale_flows,
    forecasts, methodology,
]  # fmt: skip
