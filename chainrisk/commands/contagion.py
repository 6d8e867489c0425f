"""`chainrisk contagion`: liquidation cascades on the indexed markets and Uniswap v3 pools."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from chainrisk.context import app_context, console
from chainrisk.exits import new_app
from chainrisk.inputs import MAX_BLOCK, MAX_CHAIN_ID, OptionError

app = new_app(
    help="Liquidation cascades: shocked prices, liquidations, pool sales, oracles.", no_args_is_help=True
)

# Paragraphs as single lines: the help renderer wraps them to the terminal and keeps hard line breaks.
_SIMULATE_HELP = "\n\n".join(
    (
        "One scenario on an indexed chain, round by round.",
        "Every indexed Aave v3 market and Uniswap v3 pool is rebuilt from its events at --block. The shock"
        " moves the oracle price of each asset (and its pools, by arbitrage); then each round liquidates"
        " every account below health factor 1 that is worth liquidating, sells the seized collateral into"
        " the pool between collateral and debt, and lets the oracles follow the pools. It stops when a round"
        " liquidates nobody.",
        "Example: chainrisk contagion simulate --shock ETH=-30% --shock WBTC=-25%",
    )
)


@app.command("simulate", help=_SIMULATE_HELP)
def simulate_command(
    ctx: typer.Context,
    shock: Annotated[
        list[str], typer.Option(help="SYMBOL=PERCENT price move, e.g. ETH=-30% (above -100%); repeatable.")
    ],
    block: Annotated[
        int | None, typer.Option(min=0, max=MAX_BLOCK, help="Block of the state (default: indexed head).")
    ] = None,
    chain_id: Annotated[
        int | None,
        typer.Option("--chain-id", min=1, max=MAX_CHAIN_ID, help="Chain (default: the one with Aave pools)."),
    ] = None,
    rules: Annotated[str, typer.Option(help="Aave liquidation rules: 3.0 or 3.3.")] = "3.0",
    oracle: Annotated[
        str, typer.Option(help="feed (Chainlink-style, follows the pools: 50 bps, 3600 s) or fixed.")
    ] = "feed",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of tables.")
    ] = False,
) -> None:
    import psycopg

    from chainrisk.contagion import inputs as loading
    from chainrisk.contagion import report

    if rules not in ("3.0", "3.3"):
        raise OptionError(f"--rules {rules!r}: expected 3.0 or 3.3")
    if oracle not in ("feed", "fixed"):
        raise OptionError(f"--oracle {oracle!r}: expected feed or fixed")
    for given in shock:
        loading.split_shock(given)  # a malformed shock fails before the database is opened
    with psycopg.connect(app_context(ctx).conninfo()) as conn:
        inputs = loading.load_inputs(conn, chain_id, block, rules, oracle)  # type: ignore[arg-type]
    shocks = loading.parse_shocks(shock, inputs.symbols, list(inputs.oracles))
    document = report.report(inputs, shocks, report.simulate(inputs, shocks))
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        _print(document)


def _print(document: Mapping[str, Any]) -> None:
    from rich.table import Table

    out = console()
    for round_ in document["rounds"]:
        table = Table(title=f"round {round_['round']}")
        for column in ("wallet", "market", "collateral", "debt", "debt repaid USD", "collateral seized USD"):
            # The wallet stays whole (a cut address cannot be looked up); the other columns give way.
            wide = {"min_width": 42, "no_wrap": True} if column == "wallet" else {"overflow": "fold"}
            table.add_column(column, justify="right" if "USD" in column else "left", **wide)
        for x in round_["liquidations"]:
            market, collateral = (
                x["market_label"] or x["market"],
                x["collateral_symbol"] or x["collateral_asset"],
            )
            debt, repaid, seized = (
                x["debt_symbol"] or x["debt_asset"],
                x["debt_repaid_usd"],
                x["collateral_seized_usd"],
            )
            table.add_row(x["wallet"], market, collateral, debt, f"{repaid:,.2f}", f"{seized:,.2f}")
        out.print(table)
    out.print(f"chain {document['chain_id']}, block {document['block']}: depth {document['depth']} round(s)")
    for debt in document["bad_debt"]:
        where = f"{debt['market_label'] or debt['market']} {debt['symbol'] or debt['asset']}"
        out.print(f"bad debt {where}: {debt['usd']:,.2f} USD ({debt['amount']} smallest units)")
    if not document["bad_debt"]:
        out.print("bad debt: none")
    for asset, price in document["oracle_prices"].items():
        out.print(f"oracle {price['symbol'] or asset}: {price['usd']:,.2f} USD")
    for pool in document["pool_prices"]:
        base, quote = pool["symbols"]
        price = "" if pool["price"] is None else f"{pool['price']:,.6g} {quote} per {base}, "
        out.print(f"pool {base}/{quote} {pool['pool']}: {price}sqrtPriceX96 {pool['sqrt_price_x96']}")


_VAR_HELP = "\n\n".join(
    (
        "Value at risk of bad debt over many price scenarios drawn from the analytics; the run is stored.",
        "Loads the markets, pools and oracles at --block once (as simulate does) and draws --scenarios joint"
        " price moves over --horizon of the non-stable assets (stablecoins stay fixed). Each asset follows"
        " its recorded price series (ETH for WETH, wstETH, …; BTC for WBTC, …): its volatility is the"
        " latest forecast of the service model in the database (forecasts_latest), else one computed from"
        " the series (--vol overrides); the latest regime probabilities (regimes_latest, else fitted)"
        " make it a mixture of the regimes' volatilities; the correlation is that of the series' daily"
        " log returns over --history-days (--corr overrides); tails are a Student-t (--method t, --df or"
        " fitted) or resampled standardised joint days (--method fhs). --stress-days adds the five named"
        " historical stress days (--stress-day one of them or any recorded day) as separate scenarios,"
        " outside the VaR sample. Runs the cascade on each scenario and reports VaR95, VaR99, ES97.5 and"
        " ES99 of bad debt (USD) with bootstrap intervals (1,000 resamples), liquidations at risk (p95 of"
        " value liquidated) and the cascade depth histogram. The seed and every input (vols and their"
        " source, correlation, df, regimes, series and dates) are in --json, so a run repeats exactly.",
        "--engine exact (default) runs the integer cascade on every scenario, in process or on the Dask"
        " cluster --dask (or \\[contagion] dask) names; --engine fast runs the vectorised cascade on all of"
        " them and the worst --exact-worst again exactly, and reports its error on those; --engine"
        " surrogate predicts each scenario's bad debt with the latest tree surrogate (`contagion train`)"
        " instead, replays the worst --exact-worst exactly and reports its error on those (the others keep"
        " the predicted total only: no per-market bad debt, liquidations or depth). The run, every"
        " scenario, its bad debt per market, asset and wallet, and its liquidations go to the database"
        " (views contagion_run_results, contagion_tail_contributors, …; --no-store to skip).",
        "Example: chainrisk contagion var --scenarios 1000 --seed 7 --method fhs --horizon 3d --stress-days",
    )
)


Scenarios = Annotated[int, typer.Option(help="Scenarios to draw (1 to 1,000,000).")]
Block = Annotated[
    int | None, typer.Option(min=0, max=MAX_BLOCK, help="Block of the state (default: indexed head).")
]
Seed = Annotated[int | None, typer.Option(help="Random seed (default: drawn, and printed).")]
Method = Annotated[
    str, typer.Option(help="t (multivariate Student-t) or fhs (filtered historical simulation).")
]
Horizon = Annotated[str, typer.Option(help="Horizon of the price moves: 1d, 3d or 7d.")]
Vols = Annotated[
    list[str] | None,
    typer.Option(
        "--vol", help="SYMBOL=VOL daily volatility instead of the forecast, e.g. ETH=0.05; repeatable."
    ),
]
Corr = Annotated[
    float | None,
    typer.Option(help="One correlation for every pair (default: estimated from the price history)."),
]
Df = Annotated[
    float | None, typer.Option(help="Student-t degrees of freedom, above 2 (default: fitted to the history).")
]
HistoryDays = Annotated[
    int, typer.Option(help="Days of price history the dependence and residuals come from.")
]
Regimes = Annotated[
    bool, typer.Option("--regimes/--no-regimes", help="Mix the regimes' volatilities by their probabilities.")
]
StressDays = Annotated[
    bool,
    typer.Option("--stress-days", help="Add 2020-03-12, 2021-05-19, 2022-05-09, 2022-06-13, 2022-11-09."),
]
StressDay = Annotated[
    list[str] | None,
    typer.Option(help="A recorded day (YYYY-MM-DD) to add as a stress scenario; repeatable."),
]
Replay = Annotated[
    Path | None,
    typer.Option(
        help="The --json document of an earlier run: draw the same scenarios again (its seed, count, block"
        " and recorded inputs; no other scenario option)."
    ),
]
Engine = Annotated[
    str,
    typer.Option(
        help="exact (the integer cascade on every scenario), fast (the vectorised cascade over all"
        " scenarios, then the worst --exact-worst again exactly) or surrogate (the stored tree surrogate's"
        " bad debt for all scenarios, then the worst --exact-worst again exactly; needs `contagion train`)."
    ),
]
ExactWorst = Annotated[
    int | None,
    typer.Option(
        help="With --engine fast or surrogate: scenarios replayed exactly (default: the worst 6%, at least"
        " 20)."
    ),
]
Dask = Annotated[
    str | None,
    typer.Option(
        help="Dask scheduler for the scenario batches, e.g. tcp://10.0.0.5:8786"
        " (default: \\[contagion] dask)."
    ),
]
ChainId = Annotated[
    int | None,
    typer.Option("--chain-id", min=1, max=MAX_CHAIN_ID, help="Chain (default: the one with Aave pools)."),
]
Store = Annotated[bool, typer.Option("--store/--no-store", help="Store the run in the database.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]


@app.command("var", help=_VAR_HELP)
def var_command(
    ctx: typer.Context,
    scenarios: Scenarios = 1_000,
    block: Block = None,
    seed: Seed = None,
    method: Method = "t",
    horizon: Horizon = "1d",
    vol: Vols = None,
    corr: Corr = None,
    df: Df = None,
    history_days: HistoryDays = 3 * 365,
    regimes: Regimes = True,
    stress_days: StressDays = False,
    stress_day: StressDay = None,
    replay: Replay = None,
    engine: Engine = "exact",
    exact_worst: ExactWorst = None,
    dask: Dask = None,
    chain_id: ChainId = None,
    store: Store = True,
    as_json: Json = False,
) -> None:
    from chainrisk.contagion import runs
    from chainrisk.contagion.scenarios import STRESS_DAYS

    days = (*(STRESS_DAYS if stress_days else ()), *(stress_day or []))
    options = runs.VarOptions(
        scenarios, block, seed, method, horizon, tuple(vol or ()), corr, df, history_days, regimes, days,
        replay, engine, exact_worst, dask or app_context(ctx).settings.contagion.dask, chain_id,
    )  # fmt: skip
    document = runs.run_command(app_context(ctx).conninfo, options, store=store, show_progress=not as_json)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_var(document)


def _print_var(document: Mapping[str, Any]) -> None:
    from rich.table import Table

    out = console()
    given = document["inputs"]
    days = given.get("horizon_days", 1)
    # The run's description on its own line: a table title wraps in a narrow terminal.
    engine, seed = given["engine"], given["seed"]
    out.print(f"{given['scenarios']:,} scenarios of {days} day(s), seed {seed}, {engine} engine")
    table = Table(title="bad debt")
    for column in ("measure", "USD", "95% interval"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name, t in document["bad_debt_usd"].items():
        table.add_row(name, f"{t['point']:,.2f}", f"{t['low']:,.2f} – {t['high']:,.2f}")
    out.print(table)
    for market in document["bad_debt_by_market_usd"]:
        name = market["market_label"] or market["market"]
        out.print(f"market {name}: VaR99 {market['VaR99']:,.2f} USD, max {market['max']:,.2f} USD")
    out.print(f"liquidations at risk (p95): {document['liquidations_at_risk_usd']:,.2f} USD")
    depths = ", ".join(f"{d}: {n}" for d, n in enumerate(document["depth_histogram"]))
    out.print(f"depth histogram (rounds: scenarios): {depths}")
    for day in document.get("stress_days", []):
        out.print(
            f"stress day {day['day']}: bad debt {day['bad_debt_usd']:,.2f} USD, liquidated"
            f" {day['liquidated_usd']:,.2f} USD, depth {day['depth']}"
        )
    if "fast_path" in document:
        fast = document["fast_path"]
        out.print(
            f"fast engine: {fast['exact_scenarios']:,} worst scenarios replayed exactly; largest bad-debt"
            f" error among them {fast['bad_debt_max_abs_error_usd']:,.2f} USD"
        )
    if "surrogate_path" in document:
        learned = document["surrogate_path"]
        out.print(
            f"surrogate engine ({learned['model']} v{learned['version']}): {learned['exact_scenarios']:,}"
            " worst scenarios replayed exactly; largest bad-debt error among them"
            f" {learned['bad_debt_max_abs_error_usd']:,.2f} USD"
        )
    stored = f", stored as run {document['run_id']}" if "run_id" in document else ", not stored"
    out.print(f"chain {document['chain_id']}, block {document['block']}{stored}")


_CURVE_HELP = "\n\n".join(
    (
        "The liquidation-at-risk curve: what each price drop puts at risk, per asset and market.",
        "For each asset (alone; --asset picks them, default every asset that is not a dollar) and each"
        " drop from 0 to --max-drop in --step percent: the first round (accounts below health factor 1 at"
        " the dropped oracle price, their debt and collateral) and the cascade (debt repaid, collateral"
        " seized, bad debt, depth after every round), as a table, --json, and a plot with --png FILE.",
        "Example: chainrisk contagion curve --asset ETH --max-drop 50 --step 5 --png curve.png",
    )
)


@app.command("curve", help=_CURVE_HELP)
def curve_command(
    ctx: typer.Context,
    asset: Annotated[
        list[str] | None, typer.Option(help="Asset symbol to drop, e.g. ETH; repeatable (default: all).")
    ] = None,
    block: Annotated[
        int | None, typer.Option(min=0, max=MAX_BLOCK, help="Block of the state (default: indexed head).")
    ] = None,
    max_drop: Annotated[float, typer.Option(help="Largest drop, percent.")] = 60.0,
    step: Annotated[float, typer.Option(help="Step between drops, percent.")] = 5.0,
    png: Annotated[Path | None, typer.Option(help="Also draw the curve into this PNG file.")] = None,
    chain_id: ChainId = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of a table.")
    ] = False,
) -> None:
    import psycopg

    from chainrisk.contagion import curve
    from chainrisk.contagion import inputs as loading

    grid = curve.drops(max_drop, step)
    curve.check_png(png)
    with psycopg.connect(app_context(ctx).conninfo()) as conn:
        inputs = loading.load_inputs(conn, chain_id, block)
    document = curve.curve(inputs, curve.moving_assets(inputs, asset or []), grid)
    if png is not None:
        curve.write_png(document, png)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_curve(document)


def _print_curve(document: Mapping[str, Any]) -> None:
    from rich.table import Table

    from chainrisk.contagion.curve import curve_rows

    table = Table(title=f"liquidation at risk, chain {document['chain_id']} block {document['block']}")
    columns = (
        *("asset", "drop", "market", "round 1 accounts", "round 1 debt USD", "round 1 collateral USD"),
        *("liquidations", "debt repaid USD", "collateral seized USD", "bad debt USD", "depth"),
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("asset", "market") else "right")
    for row in curve_rows(document):
        table.add_row(*row)
    console().print(table)


# The learned surrogate's commands live in their own module.
from chainrisk.commands import surrogate as _surrogate  # noqa: E402

_surrogate.register(app)
