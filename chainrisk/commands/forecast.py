"""`chainrisk forecast` commands: backtest, tune, run, bench. Heavy imports stay inside the commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from chainrisk.context import AppContext
from chainrisk.exits import new_app
from chainrisk.inputs import OptionError, date_range, input_file, iso_date, output_dir, output_file

app = new_app(help="forecast commands.", no_args_is_help=True)

Prices = Annotated[
    Path,
    typer.Option(
        "--prices", envvar="CHAINRISK_FORECAST_PRICES", help="Exchange OHLCV CSV (daily or hourly)."
    ),
]
Onchain = Annotated[
    Path | None,
    typer.Option(
        "--onchain", envvar="CHAINRISK_FORECAST_ONCHAIN", help="Aave liquidations file or daily CSV."
    ),
]
Target = Annotated[str, typer.Option("--target", envvar="CHAINRISK_FORECAST_TARGET", help="parkinson or rv.")]
Start = Annotated[str, typer.Option("--start", help="First forecast day, YYYY-MM-DD.")]
End = Annotated[str, typer.Option("--end", help="Last forecast day, YYYY-MM-DD.")]
NeuralParams = Annotated[
    Path | None,
    typer.Option("--neural-params", help="JSON of neural hyper-parameters (from `forecast tune --json`)."),
]
NeuralRefitEvery = Annotated[int, typer.Option(help="Retrain neural models every N days.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
MODELS_HELP = "Model names, comma-separated or repeated."
REGIME_HELP = (
    "Regime filter for the stress dates: markov (MarkovRegression), hmm, hmm3 (3 states) or hmm-online "
    "(parameters updated with every bar)."
)
DRIVERS_HELP = (
    "Columns (neg_ret, abs_ret or any --onchain column), comma-separated, whose lagged values drive the "
    "markov filter's transition probabilities."
)
PANEL_HELP = "Second asset's price file (panel-log-har)."


def _models(raw: list[str] | None) -> tuple[str, ...]:
    from analytics.report import DEFAULT_MODELS

    if not raw:
        return DEFAULT_MODELS
    return tuple(name.strip() for item in raw for name in item.split(",") if name.strip())


def _names(raw: list[str] | None) -> tuple[str, ...]:
    """Names given comma-separated or by repeating the option; none when absent."""
    return tuple(name.strip() for item in raw or [] for name in item.split(",") if name.strip())


def _neural_config(path: Path | None) -> Any:
    from analytics.neural import NeuralConfig

    if path is None:
        return NeuralConfig()
    input_file("--neural-params", path, "JSON file")
    try:
        params = json.loads(path.read_text())
        return NeuralConfig(**params.get("params", params))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise OptionError(f"--neural-params: cannot read hyper-parameters from {path}: {exc}") from None


def _check_target(target: str) -> None:
    if target not in ("parkinson", "rv"):
        raise OptionError(f"--target: expected parkinson or rv, got {target!r}")


def _check_files(**files: Path | None) -> None:
    """Input files named by their option (`panel_prices` is --panel-prices); absent ones pass."""
    for name, path in files.items():
        if path is not None:
            input_file("--" + name.replace("_", "-"), path, "price file" if "prices" in name else "file")


def _quiet_torch() -> None:
    import torch

    torch.set_num_threads(1)


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['prices']} · {result['target']} · {result['start']} … {result['end']}")
    for column in (
        "model",
        "QLIKE",
        "MSE",
        "DM p vs GARCH-t",
        "DM p vs log-HAR",
        "MCS",
        "VaR1%",
        "top-decile",
    ):
        table.add_column(column)
    for name, row in result["models"].items():
        table.add_row(
            name,
            f"{row['qlike']:.4f}",
            f"{row['mse']:.3g}",
            _p(row["dm_pvalue_vs_garch_t"]),
            _p(row["dm_pvalue_vs_log_har"]),
            "yes" if row["in_mcs"] else "no",
            f"{row['var_breach_rate']['1%']:.3f}",
            f"{row['top_decile_ratio']:.2f}",
        )
    Console().print(table)
    typer.echo(f"regime P(high) on stress dates: {result['regimes']['stress_p_high']}")


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


@app.command()
def backtest(
    prices: Prices,
    target: Target = "parkinson",
    start: Start = "2020-01-01",
    end: End = "2022-12-31",
    onchain: Onchain = None,
    models: Annotated[list[str] | None, typer.Option("--models", help=MODELS_HELP)] = None,
    refit_every: Annotated[int, typer.Option(help="Re-estimate classical models every N days.")] = 5,
    neural_refit_every: NeuralRefitEvery = 90,
    neural_params: NeuralParams = None,
    save_forecasts: Annotated[Path | None, typer.Option(help="Also write the forecasts to this CSV.")] = None,
    regime_model: Annotated[str, typer.Option(help=REGIME_HELP)] = "markov",
    regime_drivers: Annotated[list[str] | None, typer.Option("--regime-drivers", help=DRIVERS_HELP)] = None,
    panel_prices: Annotated[Path | None, typer.Option("--panel-prices", help=PANEL_HELP)] = None,
    as_json: Json = False,
) -> None:
    """Out-of-sample one-day-ahead backtest of volatility models, scored against a realised measure."""
    _check_target(target)
    date_range("--start", start, "--end", end)
    _check_files(prices=prices, onchain=onchain, panel_prices=panel_prices)
    if save_forecasts is not None:
        output_file("--save-forecasts", save_forecasts)
    from analytics.report import BacktestConfig, run_backtest  # after the cheap checks

    _check_regime_model(regime_model)
    _quiet_torch()
    config = BacktestConfig(
        prices=prices, target=target, regime_model=regime_model,  # type: ignore[arg-type]
        start=start, end=end, models=_models(models), onchain=onchain, panel_prices=panel_prices,
        refit_every=refit_every, neural_refit_every=neural_refit_every, neural=_neural_config(neural_params),
        regime_drivers=_names(regime_drivers),
    )  # fmt: skip
    result = run_backtest(config, save_forecasts)
    if as_json:
        typer.echo(json.dumps(result, default=float))
    else:
        _print_table(result)


def _check_regime_model(name: str) -> None:
    from analytics.report import REGIME_MODELS

    if name not in REGIME_MODELS:
        raise OptionError(f"--regime-model: expected one of {', '.join(REGIME_MODELS)}, got {name!r}")


@app.command()
def validate(
    prices: Annotated[list[Path], typer.Option("--prices", help="Price files, one per asset (two).")],
    start: Start = "2018-01-01",
    until: Annotated[str, typer.Option("--until", help="Last validation day; later rows are dropped.")] = (
        "2019-12-31"
    ),
    refit_every: Annotated[int, typer.Option(help="Re-estimate every N days.")] = 5,
    as_json: Json = False,
) -> None:
    """Pre-registered selection among the log-HAR extensions on data up to --until only."""
    if len(prices) != 2:
        raise OptionError(
            f"--prices: give exactly two price files (the panel model pools them), got {len(prices)}"
        )
    date_range("--start", start, "--until", until)
    for path in prices:
        input_file("--prices", path, "price file")
    from analytics.report import run_validation

    result = run_validation((prices[0], prices[1]), start, until, refit_every)
    if as_json:
        typer.echo(json.dumps(result, default=float))
        return
    assets = list(result["days"])
    typer.echo("| model | " + " | ".join(f"{a} QLIKE | ratio" for a in assets) + " | mean ratio |")
    typer.echo("|" + "---|" * (2 + 2 * len(assets)))
    for name, row in result["models"].items():
        cells = [f"{row['qlike'][a]:.4f} | {row['ratio'][a]:.4f}" for a in assets]
        typer.echo(f"| {name} | " + " | ".join(cells) + f" | {row['mean_ratio']:.4f} |")
    typer.echo(f"selected: {result['selected']}")


@app.command()
def ablation(
    prices: Prices,
    onchain: Annotated[
        Path, typer.Option("--onchain", envvar="CHAINRISK_FORECAST_ONCHAIN", help="On-chain feature file.")
    ],
    target: Target = "parkinson",
    start: Start = "2021-06-01",
    end: End = "2022-04-03",
    families: Annotated[
        list[str] | None, typer.Option("--families", help="har-x and/or rnn-x, comma-separated.")
    ] = None,
    refit_every: Annotated[int, typer.Option(help="Re-estimate HAR-X every N days.")] = 5,
    neural_refit_every: NeuralRefitEvery = 90,
    neural_params: NeuralParams = None,
    as_json: Json = False,
) -> None:
    """Feature-group ablation: each on-chain group (by column prefix) removed from and added to the models."""
    _check_target(target)
    date_range("--start", start, "--end", end)
    _check_files(prices=prices, onchain=onchain)
    from analytics.report import BacktestConfig, ablation_table, run_ablation

    _quiet_torch()
    config = BacktestConfig(
        prices=prices,
        target=target,  # type: ignore[arg-type]
        start=start,
        end=end,
        onchain=onchain,
        refit_every=refit_every,
        neural_refit_every=neural_refit_every,
        neural=_neural_config(neural_params),
    )
    chosen = _models(families) if families else ("har-x", "rnn-x")
    result = run_ablation(config, chosen)
    typer.echo(json.dumps(result, default=float) if as_json else ablation_table(result))


@app.command()
def tune(
    prices: Prices,
    target: Target = "parkinson",
    until: Annotated[
        str, typer.Option(help="Last day the search may see (it never sees later data).")
    ] = "2019-12-31",
    validation_days: Annotated[int, typer.Option(help="Days before --until scored in the search.")] = 365,
    trials: Annotated[int, typer.Option(help="Optuna trials.")] = 30,
    seed: Annotated[int, typer.Option(help="Sampler seed.")] = 0,
    objective: Annotated[
        str, typer.Option(help="Score the network alone (rnn) or its log-HAR blend.")
    ] = "rnn",
    as_json: Json = False,
) -> None:
    """Bayesian (TPE) search of the neural hyper-parameters on data up to --until only."""
    _check_target(target)
    if objective not in ("rnn", "blend"):
        raise OptionError(f"--objective: expected rnn or blend, got {objective!r}")
    iso_date("--until", until)
    _check_files(prices=prices)
    from analytics.tuning import tune_neural

    _quiet_torch()
    result = tune_neural(
        prices,
        target,  # type: ignore[arg-type]
        until,
        validation_days,
        trials,
        seed,
        objective=objective,  # type: ignore[arg-type]
    )
    typer.echo(json.dumps(result, default=float) if as_json else json.dumps(result, indent=2, default=float))


@app.command()
def run(
    ctx: typer.Context,
    prices: Prices,
    asset: Annotated[str, typer.Option(help="Asset label stored with the forecasts, e.g. ETH.")] = "ETH",
    target: Target = "parkinson",
    models: Annotated[list[str] | None, typer.Option("--models", help="Models to run.")] = None,
    database_url: Annotated[
        str | None, typer.Option(envvar="CHAINRISK_DATABASE_URL", help="SQLAlchemy URL; default: the app's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
    regime_model: Annotated[str, typer.Option(help=REGIME_HELP)] = "markov",
    onchain: Onchain = None,
    regime_drivers: Annotated[list[str] | None, typer.Option("--regime-drivers", help=DRIVERS_HELP)] = None,
) -> None:
    """Fit on all data and write the latest 1- and 7-day forecasts and regime probabilities to PostgreSQL.

    Without --models: analytics.SERVICE_MODELS (the service model, garch-t and ewma)."""
    _check_target(target)
    _check_files(prices=prices, onchain=onchain)
    from analytics import SERVICE_MODELS
    from analytics.live import write_latest

    _quiet_torch()
    url = database_url or _app_url(ctx)
    names = _models(models) if models else SERVICE_MODELS
    drivers = _names(regime_drivers)
    written = write_latest(url, prices, asset, target, names, regime_model, onchain, drivers)  # type: ignore[arg-type]
    typer.echo(
        json.dumps(written, default=str) if as_json else f"wrote {len(written['forecasts'])} forecasts"
    )


def _app_url(ctx: typer.Context) -> str:
    # Run from `chainrisk`, the root context carries the app's context, which resolves the URL once; the
    # forecast app run on its own has none.
    app = ctx.find_root().obj
    if not isinstance(app, AppContext):
        raise OptionError("no database configured: pass --database-url or set CHAINRISK_DATABASE_URL")
    return app.database_url()


@app.command()
def bench(
    prices: Prices,
    start: Start = "2022-01-01",
    end: End = "2022-03-31",
    models: Annotated[list[str] | None, typer.Option("--models", help="Models to time.")] = None,
    as_json: Json = False,
) -> None:
    """Backtest wall time per model over a window (daily refit for classical models)."""
    date_range("--start", start, "--end", end)
    _check_files(prices=prices)
    from analytics.report import BacktestConfig, run_backtest

    _quiet_torch()
    config = BacktestConfig(
        prices=prices, start=start, end=end, models=_models(models), refit_every=1, mcs_reps=100
    )
    result = run_backtest(config)
    times = {name: row["wall_s"] for name, row in result["models"].items()}
    out = {"prices": str(prices), "start": start, "end": end, "days": result["days"], "wall_s": times}
    typer.echo(json.dumps(out) if as_json else "\n".join(f"{k}: {v:.2f} s" for k, v in times.items()))
    sys.stdout.flush()


@app.command()
def plot(
    forecasts: Annotated[Path, typer.Option(help="CSV written by `forecast backtest --save-forecasts`.")],
    out_dir: Annotated[Path, typer.Option(help="Folder for the PNG files.")] = Path("docs/img"),
    label: Annotated[str, typer.Option(help="Name used in titles and file names, e.g. eth.")] = "series",
    models: Annotated[list[str] | None, typer.Option("--models", help="Models to draw.")] = None,
) -> None:
    """Draw forecasts against realised volatility in the stress windows, and the regime probabilities."""
    input_file("--forecasts", forecasts, "CSV file")
    output_dir("--out-dir", out_dir)
    from analytics.plots import plot_regimes, plot_stress_windows, read_forecasts

    frame = read_forecasts(forecasts)
    names = _models(models) if models else ("garch-t", "log-har", "rnn-blend")
    out_dir.mkdir(parents=True, exist_ok=True)
    stress = plot_stress_windows(
        frame, names, out_dir / f"{label}-stress.png", f"{label}: forecast vs realised"
    )
    regimes = plot_regimes(frame, out_dir / f"{label}-regimes.png", f"{label}: filtered regime probability")
    typer.echo(f"{stress}\n{regimes}")


@app.command()
def table(
    results: Annotated[Path, typer.Argument(help="JSON printed by `forecast backtest --json`.")],
) -> None:
    """Print a backtest result as a Markdown table (for docs)."""
    input_file("RESULTS", results, "JSON file")
    try:
        body = json.loads(results.read_text())
    except (OSError, ValueError) as exc:
        raise OptionError(
            f"RESULTS {str(results)!r}: not the JSON of `forecast backtest --json` ({exc})"
        ) from None
    from analytics.report import markdown_table

    typer.echo(markdown_table(body))
