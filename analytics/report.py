"""The backtest behind `chainrisk forecast backtest`: load, forecast out of sample, score, one dict."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from analytics.ablation import FAMILIES, PRICE_GROUPS, AblationConfig, ablate, feature_groups
from analytics.backtest import BacktestError, daily_frame, one_day_ahead
from analytics.baselines import EWMA, GARCH, HAR, Blend, Forecast, VolatilityModel
from analytics.calibration import (
    Calibration,
    calibration_factor,
    combination_weights,
    combine,
    pre_cutoff_forecasts,
    scaled,
    split_name,
)
from analytics.evaluation import (
    christoffersen,
    diebold_mariano,
    kupiec,
    mincer_zarnowitz,
    model_confidence_set,
    mse,
    pit_ks,
    qlike,
    qlike_loss,
    top_decile_ratio,
)
from analytics.features import FEATURE_GROUPS, align, load_onchain, price_features
from analytics.hmm import HMMRegimes
from analytics.loaders import OHLCV, load_ohlcv, to_daily
from analytics.neural import NeuralConfig, NeuralForecaster
from analytics.onlinehmm import OnlineHMM, RegimeVolatility
from analytics.recalibration import ONLINE_BLOCK, TUNABLE, Choice, TunableModel, tune
from analytics.recursive import RecursiveHAR
from analytics.regimes import (
    STRESS_DATES,
    MarkovSwitching,
    RegimeModel,
    rolling_probabilities,
    stress_probabilities,
)
from analytics.regularised import RidgeHAR
from analytics.rvmodels import (
    CANDIDATES,
    HARQ,
    LHAR,
    PanelHAR,
    QuarterlyHAR,
    RangeHAR,
    range_columns,
    select,
    validation,
)

__all__ = [
    "DEFAULT_MODELS",
    "MODEL_NAMES",
    "ONCHAIN_MODELS",
    "BacktestConfig",
    "ablation_table",
    "build_model",
    "load_daily",
    "recalibration_table",
    "run_ablation",
    "run_backtest",
    "run_validation",
]

Target = Literal["parkinson", "rv"]
RegimeKind = Literal["markov", "hmm", "hmm3", "hmm-online"]
REGIME_MODELS: dict[str, tuple[str, Callable[[], RegimeModel]]] = {
    "markov": (
        "2-state switching-variance MarkovRegression on daily returns, filtered",
        lambda: MarkovSwitching(k=2, signal="returns"),
    ),
    "hmm": (
        "2-state Gaussian HMM (hmmlearn, 5 seeded restarts) on daily returns, forward-filtered",
        lambda: HMMRegimes(k=2, signal="returns"),
    ),
    "hmm3": (
        "3-state Gaussian HMM (hmmlearn, 5 seeded restarts) on daily returns, forward-filtered",
        lambda: HMMRegimes(k=3, signal="returns"),
    ),
    "hmm-online": (
        "2-state Gaussian HMM, batch EM on the first 250 days, then online EM with a forgetting factor",
        lambda: OnlineHMM(k=2, signal="returns"),
    ),
}
BENCHMARKS = ("garch-t", "log-har")
DEFAULT_MODELS = (
    "garch-n",
    "garch-t",
    "gjr-t",
    "egarch-t",
    "ewma",
    "har",
    "log-har",
    "log-har-x",
    "rnn",
    "rnn-blend",
)
NEURAL = ("rnn", "rnn-x", "rnn-blend", "rnn-liq", "rnn-x-blend")
ONCHAIN_ONLY = ("log-har-liq", "rnn-liq")
# Every model that takes the on-chain file's columns as input (tests check the list is complete).
ONCHAIN_MODELS = (
    "log-har-x",
    "rnn-x",
    "rnn-x-blend",
    "log-har-liq",
    "rnn-liq",
    "log-har-x-rls",
    "log-har-x-ridge",
    "log-har-x-ridge-all",
)
# Regime models read as variance forecasters; batch EM is slow, so they refit on the regime schedule.
REGIME_VOLATILITY = ("hmm-var",)
# Each recalibrating model and the periodically re-estimated model it would replace.
PERIODIC = {
    "log-har-rls": "log-har",
    "log-har-x-rls": "log-har-x",
    "log-har-x-ridge": "log-har-x",
    "log-har-x-ridge-all": "log-har-x",
    "hmm-online-var": "hmm-var",
}
# Coverage flags shared by every feature group of an on-chain file (see analytics/ablation.py).
SHARED_FLAGS = ("onchain_observed",)
VAR_LEVELS = (0.01, 0.05)
# The geometric combination of the other listed models, with weights fitted before 2020.
COMBO = "combo"


@dataclass(frozen=True)
class BacktestConfig:
    """One backtest: the data, the window scored, the models and how often each is re-estimated."""

    prices: Path
    target: Target = "parkinson"
    start: str = "2020-01-01"
    end: str = "2022-12-31"
    models: tuple[str, ...] = DEFAULT_MODELS
    onchain: Path | None = None
    refit_every: int = 5
    neural_refit_every: int = 90
    regime_refit_every: int = 30
    regime_model: RegimeKind = "markov"
    neural: NeuralConfig = field(default_factory=NeuralConfig)
    mcs_reps: int = 1000
    # The second asset of `panel-log-har` (a price file like `prices`).
    panel_prices: Path | None = None
    # Columns that drive time-varying transition probabilities of the Markov-switching regime filter.
    regime_drivers: tuple[str, ...] = ()


def _exog(onchain: tuple[str, ...]) -> tuple[str, ...]:
    """The leverage regressor and every column of the on-chain file, whatever the file holds."""
    return (*FEATURE_GROUPS["leverage"], *onchain)


def _liquidation_columns(onchain: tuple[str, ...]) -> tuple[str, ...]:
    """The `liq_*` columns of the on-chain file and its coverage flags; empty if it has no `liq_*`."""
    liq = tuple(c for c in onchain if c.startswith("liq_"))
    return (*liq, *(c for c in onchain if c in SHARED_FLAGS)) if liq else ()


def _builders(config: BacktestConfig, onchain: tuple[str, ...]) -> dict[str, Callable[[], VolatilityModel]]:
    exog = _exog(onchain)
    liq = _liquidation_columns(onchain)
    builders: dict[str, Callable[[], VolatilityModel]] = {
        f"{vol}-{d[0]}": (lambda vol=vol, d=d: GARCH(vol, d))  # type: ignore[misc]
        for vol in ("garch", "gjr", "egarch")
        for d in ("normal", "t")
    }
    builders.update(
        {
            "ewma": EWMA,
            "har": lambda: HAR(log=False),
            "log-har": HAR,
            "log-har-x": lambda: HAR(features=exog),
            "rnn": lambda: NeuralForecaster(config.neural),
            "rnn-x": lambda: NeuralForecaster(config.neural, features=exog),
            "rnn-blend": lambda: Blend((NeuralForecaster(config.neural), HAR()), label="rnn-blend"),
            # Ablation: one feature group at a time.
            "log-har-lev": lambda: HAR(features=FEATURE_GROUPS["leverage"]),
            "log-har-liq": lambda: HAR(features=liq),
            "rnn-liq": lambda: NeuralForecaster(config.neural, features=liq),
            "rnn-x-blend": lambda: Blend(
                (NeuralForecaster(config.neural, features=exog), HAR(features=exog)), label="rnn-x-blend"
            ),
            # Realised-volatility extensions of log-HAR (analytics/rvmodels.py).
            "log-har-range": RangeHAR,
            "log-harq": HARQ,
            "lhar": LHAR,
            "log-har-q": QuarterlyHAR,
            "panel-log-har": lambda: PanelHAR(_partner(config)),
            # Recalibration as data arrive (analytics/recursive.py, regularised.py, onlinehmm.py).
            "log-har-rls": RecursiveHAR,
            "log-har-x-rls": lambda: RecursiveHAR(features=exog),
            "log-har-x-ridge": lambda: RidgeHAR(features=exog),
            "log-har-x-ridge-all": lambda: RidgeHAR(features=exog, penalise="all"),
            "hmm-var": lambda: RegimeVolatility(HMMRegimes(k=2), "hmm-var"),
            "hmm-online-var": lambda: RegimeVolatility(OnlineHMM(k=2), "hmm-online-var"),
        }
    )
    return builders


MODEL_NAMES = tuple(_builders(BacktestConfig(Path(".")), FEATURE_GROUPS["liquidations"]))


def build_model(name: str, config: BacktestConfig, onchain: tuple[str, ...] = ()) -> VolatilityModel:
    """A model by its CLI name; `onchain` names the on-chain file's columns (empty: no file)."""
    builders = _builders(config, onchain)
    if name not in builders:
        raise BacktestError(f"unknown model {name!r}; expected one of {', '.join(builders)}")
    if name in ONCHAIN_ONLY and not onchain:
        raise BacktestError(f"model {name!r} needs on-chain features: pass --onchain")
    if name in ONCHAIN_ONLY and not _liquidation_columns(onchain):
        raise BacktestError(
            f"model {name!r} needs liquidation columns (liq_*) in the on-chain file; it has "
            f"{', '.join(onchain)}"
        )
    return builders[name]()


def refit_every(name: str, config: BacktestConfig) -> int:
    """How often a model is re-estimated: never for the ones that learn from every bar."""
    if name in TUNABLE and TUNABLE[name].online:
        return ONLINE_BLOCK
    if name in NEURAL:
        return config.neural_refit_every
    if name in REGIME_VOLATILITY:
        return config.regime_refit_every
    return config.refit_every


def prepare_model(
    name: str, config: BacktestConfig, frame: pd.DataFrame, onchain: tuple[str, ...], evaluation_start: str
) -> tuple[VolatilityModel, Choice | None]:
    """The model behind a name, its hyper-parameter (if it has one) chosen on data before
    `evaluation_start` only (`analytics.recalibration`)."""
    model = build_model(name, config, onchain)
    if name not in TUNABLE:
        return model, None
    tunable: TunableModel = model  # type: ignore[assignment]
    return tune(name, tunable, frame, evaluation_start, refit_every(name, config))


def load_daily(path: Path) -> tuple[pd.DataFrame, OHLCV]:
    """Daily bars from any OHLCV export; intraday files are aggregated and gain an `rv` column."""
    data = load_ohlcv(path)
    if data.freq < pd.Timedelta(days=1):
        return to_daily(data), data
    return data.bars, data


def price_frame(path: Path, target: Target) -> pd.DataFrame:
    """Returns, the target measure and the range columns of one price file."""
    bars, _ = load_daily(path)
    try:
        frame = daily_frame(bars, target)
    except ValueError as exc:
        raise BacktestError(str(exc)) from None
    return frame.join(range_columns(bars))


def _partner(config: BacktestConfig) -> pd.DataFrame:
    if config.panel_prices is None:
        raise BacktestError("model 'panel-log-har' needs a second asset: pass --panel-prices")
    return price_frame(config.panel_prices, config.target)


def model_frame(prices: Path, target: Target, onchain: Path | None) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Model input (returns, target, range and price features, on-chain columns) and the on-chain
    columns' names (empty without a file)."""
    frame = price_frame(prices, target)
    frame = frame.join(price_features(frame))
    if onchain is None:
        return frame, ()
    features = load_onchain(onchain)
    clash = [c for c in features.columns if c in frame.columns]
    if clash:
        raise BacktestError(f"on-chain file {onchain}: column {clash[0]!r} is a price column; rename it")
    return frame.join(align(features, pd.DatetimeIndex(frame.index))), tuple(features.columns)


def _frame(config: BacktestConfig) -> pd.DataFrame:
    return model_frame(config.prices, config.target, config.onchain)[0]


def run_validation(prices: tuple[Path, Path], start: str, until: str, refit_every: int = 5) -> dict[str, Any]:
    """The pre-registered selection: every candidate and log-HAR on [start, until], rows after `until`
    dropped before anything is built (the panel partner too); the candidate chosen by `rvmodels.select`."""
    cutoff = pd.Timestamp(until, tz="UTC")
    frames = {
        path.name: (lambda f: f.loc[f.index <= cutoff])(price_frame(path, "parkinson")) for path in prices
    }
    names = list(frames)

    def builder(name: str) -> Callable[[str], VolatilityModel]:
        def build(asset: str) -> VolatilityModel:
            if name == "panel-log-har":
                return PanelHAR(frames[names[1 - names.index(asset)]])
            return build_model(name, BacktestConfig(Path(".")))

        return build

    began = time.perf_counter()
    result = validation(frames, {n: builder(n) for n in ("log-har", *CANDIDATES)}, start, until, refit_every)
    result["selected"] = select(result)
    result["wall_s"] = round(time.perf_counter() - began, 1)
    return result


def run_ablation(config: BacktestConfig, families: tuple[str, ...] = FAMILIES) -> dict[str, Any]:
    """Feature-group ablation of HAR-X and the neural model over [start, end]; a JSON-ready dict."""
    if config.onchain is None:
        raise BacktestError("ablation needs on-chain features: pass --onchain")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise BacktestError(f"unknown ablation family {unknown[0]!r}; expected one of {', '.join(FAMILIES)}")
    frame = _frame(config)
    groups = {**PRICE_GROUPS, **feature_groups(load_onchain(config.onchain).columns)}
    start = pd.Timestamp(config.start, tz="UTC")
    _check_history(frame, start, NeuralForecaster(config.neural))
    settings = AblationConfig(
        config.start, config.end, families, config.refit_every, config.neural_refit_every, config.neural
    )
    began = time.perf_counter()
    families_out = ablate(frame, groups, settings)
    return {
        "prices": str(config.prices),
        "onchain": str(config.onchain),
        "target": config.target,
        "start": config.start,
        "end": config.end,
        "days": int(((frame.index >= start) & (frame.index <= pd.Timestamp(config.end, tz="UTC"))).sum()),
        "refit_every": {"classical": config.refit_every, "neural": config.neural_refit_every},
        "groups": {name: list(cols) for name, cols in groups.items()},
        "families": families_out,
        "wall_s": round(time.perf_counter() - began, 1),
    }


def ablation_table(result: dict[str, Any]) -> str:
    """The variants of an ablation result as a Markdown table (Δ = change in QLIKE, + is worse)."""
    lines = [
        "| family | variant | features | QLIKE | Δ vs full | DM p | Δ vs base | DM p | top-decile ratio |",
        "|" + "---|" * 9,
    ]
    for family, block in result["families"].items():
        for name, row in block["scores"].items():
            full, base = row.get("vs_full"), row.get("vs_base")
            cells = [
                family,
                name,
                ", ".join(block["variants"][name]) or "—",
                _fmt(row["qlike"], 4),
                _change(full),
                _fmt(full["dm_pvalue"]) if full else "—",
                _change(base),
                _fmt(base["dm_pvalue"]) if base else "—",
                _fmt(row["top_decile_ratio"], 2),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _change(row: dict[str, float] | None) -> str:
    return "—" if row is None else f"{100 * row['qlike_change']:+.1f}%"


def _check_history(frame: pd.DataFrame, start: pd.Timestamp, model: VolatilityModel) -> None:
    before = int((frame.index < start).sum())
    if before < model.min_history:
        raise BacktestError(
            f"{model.name} needs {model.min_history} days of history before {start.date()}, "
            f"the price file has {before}"
        )


def _var_block(fc: Forecast, returns: pd.Series) -> dict[str, Any]:
    out: dict[str, Any] = {"var_breach_rate": {}, "kupiec_pvalue": {}, "christoffersen_pvalue": {}}
    for level in VAR_LEVELS:
        key = f"{level:.0%}"
        hits = (returns < fc.quantile(level)).to_numpy().astype(int)
        out["var_breach_rate"][key] = float(hits.mean())
        out["kupiec_pvalue"][key] = kupiec(hits, level).pvalue
        out["christoffersen_pvalue"][key] = christoffersen(hits).pvalue
    out["pit_ks_pvalue"] = pit_ks(fc.cdf(returns)).pvalue
    return out


def _stress_ratios(fc: Forecast, proxy: pd.Series) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for date in STRESS_DATES:
        day = pd.Timestamp(date, tz="UTC")
        out[date] = float(fc.variance[day] / proxy[day]) if day in fc.variance.index else None
    return out


def _scores(fc: Forecast, frame: pd.DataFrame) -> dict[str, Any]:
    proxy = frame["target"].loc[fc.variance.index]
    mz = mincer_zarnowitz(proxy, fc.variance)
    return {
        "qlike": qlike(proxy, fc.variance),
        # The mean is driven by a handful of crash days; the median day says how the rest went.
        "qlike_median": float(np.median(qlike_loss(proxy, fc.variance))),
        "mse": mse(proxy, fc.variance),
        "top_decile_ratio": top_decile_ratio(proxy, fc.variance),
        "stress_ratio": _stress_ratios(fc, proxy),
        "mincer_zarnowitz": {"a": mz.intercept, "b": mz.slope, "r2": mz.r_squared, "pvalue": mz.pvalue},
        **_var_block(fc, frame["ret"].loc[fc.variance.index]),
    }


def _comparisons(forecasts: dict[str, Forecast], proxy: pd.Series, reps: int) -> dict[str, dict[str, Any]]:
    losses = pd.DataFrame({n: qlike_loss(proxy, f.variance) for n, f in forecasts.items()}, index=proxy.index)
    mcs = model_confidence_set(losses, reps=reps) if len(losses.columns) > 1 else {c: 1.0 for c in losses}
    out: dict[str, dict[str, Any]] = {}
    for name in forecasts:
        row: dict[str, Any] = {"mcs_pvalue": mcs[name], "in_mcs": bool(mcs[name] > 0.1)}
        for bench in BENCHMARKS:
            key = bench.replace("-", "_")
            if bench in losses and bench != name:
                dm = diebold_mariano(losses[name].to_numpy(), losses[bench].to_numpy())
                row[f"dm_pvalue_vs_{key}"] = dm.pvalue
                row[f"dm_stat_vs_{key}"] = dm.statistic
                row[f"qlike_gain_vs_{key}"] = -dm.mean_difference / float(losses[bench].mean())
            else:
                row[f"dm_pvalue_vs_{key}"] = None
        periodic = PERIODIC.get(name, "")
        if periodic in losses:
            row["vs_periodic"] = _versus(losses[name], losses[periodic], periodic)
        out[name] = row
    return out


def _versus(loss: pd.Series, other: pd.Series, name: str) -> dict[str, Any]:
    dm = diebold_mariano(loss.to_numpy(), other.to_numpy())
    gain = -dm.mean_difference / float(other.mean())
    return {"model": name, "qlike_gain": gain, "dm_pvalue": dm.pvalue, "dm_stat": dm.statistic}


def _forecast(model: VolatilityModel, frame: pd.DataFrame, config: BacktestConfig, name: str) -> Forecast:
    return one_day_ahead(model, frame, config.start, config.end, refit_every=refit_every(name, config))


def _prepared(
    bases: Mapping[str, tuple[str, str | None]],
    config: BacktestConfig,
    frame: pd.DataFrame,
    onchain: tuple[str, ...],
) -> tuple[dict[str, VolatilityModel], dict[str, dict[str, Any]], dict[str, float]]:
    """The models, the hyper-parameters chosen before the window, and the seconds each choice took
    (counted in the model's wall time: a service pays it too)."""
    models: dict[str, VolatilityModel] = {}
    choices: dict[str, dict[str, Any]] = {}
    wall: dict[str, float] = {}
    for name, (base, _) in bases.items():
        began = time.perf_counter()
        models[name], choice = prepare_model(base, config, frame, onchain, config.start)
        if choice is not None:
            choices[name] = choice.as_dict()
        wall[name] = time.perf_counter() - began
    return models, choices, wall


def run_backtest(config: BacktestConfig, save_forecasts: Path | None = None) -> dict[str, Any]:
    """Forecast every model out of sample over [start, end] and score them; a JSON-ready dict."""
    frame, onchain = model_frame(config.prices, config.target, config.onchain)
    start = pd.Timestamp(config.start, tz="UTC")
    bases = {name: split_name(name) for name in config.models if name != COMBO}
    for base, _ in bases.values():
        _check_history(frame, start, build_model(base, config, onchain))
    check_drivers(config.regime_drivers, frame)
    setup = regime_setup(config.regime_model, config.regime_drivers, frame, config.start)
    models, choices, wall = _prepared(bases, config, frame, onchain)
    raw: dict[str, Forecast] = {}
    forecasts: dict[str, Forecast] = {}
    calibrations: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        began = time.perf_counter() - wall[name]
        base, kind = bases[name]
        if base not in raw:
            raw[base] = _forecast(model, frame, config, base)
        forecasts[name] = raw[base]
        if kind is not None:
            every = refit_every(base, config)
            value, window = calibration_factor(
                model, frame, kind, Calibration(refit_every=every), config.start
            )
            forecasts[name] = scaled(raw[base], value)
            calibrations[name] = {"kind": kind, "factor": value, **window}
        wall[name] = time.perf_counter() - began
    if COMBO in config.models:
        began = time.perf_counter()
        forecasts[COMBO], calibrations[COMBO] = _combination(models, bases, raw, frame, config)
        wall[COMBO] = time.perf_counter() - began
    proxy = frame["target"].loc[next(iter(forecasts.values())).variance.index]
    if save_forecasts is not None:
        table = forecasts_frame(forecasts, proxy).join(frame["ret"])
        table.join(_regime_path(frame, config, setup)).to_csv(save_forecasts, index_label="day")
    compared = _comparisons(forecasts, proxy, config.mcs_reps)
    results = {
        name: {
            **_scores(fc, frame),
            **compared[name],
            "wall_s": round(wall[name], 3),
            **({"calibration": calibrations[name]} if name in calibrations else {}),
            **({"recalibration": choices[name]} if name in choices else {}),
        }
        for name, fc in forecasts.items()
    }
    return {
        "prices": str(config.prices),
        "onchain": str(config.onchain) if config.onchain else None,
        "target": config.target,
        "start": config.start,
        "end": config.end,
        "days": len(proxy),
        "refit_every": {"classical": config.refit_every, "neural": config.neural_refit_every},
        "models": results,
        "regimes": _regimes(frame, config, setup),
    }


def regime_model(kind: str, drivers: tuple[str, ...] = ()) -> tuple[str, RegimeModel]:
    """The regime model behind `--regime-model` (with `--regime-drivers`) and its one-line description."""
    if kind not in REGIME_MODELS:
        raise BacktestError(f"unknown regime model {kind!r}; expected one of {', '.join(REGIME_MODELS)}")
    description, build = REGIME_MODELS[kind]
    if not drivers:
        return description, build()
    if kind != "markov":
        raise BacktestError(
            f"regime drivers need the markov regime model (time-varying transition probabilities), "
            f"got {kind!r}"
        )
    driven = f"{description}; transition probabilities driven by lagged {', '.join(drivers)}"
    return driven, MarkovSwitching(k=2, signal="returns", tvtp=drivers)


@dataclass(frozen=True)
class RegimeSetup:
    """The regime filter of a run, its description, and the forgetting factor chosen for the online HMM."""

    kind: str
    description: str
    model: RegimeModel
    drivers: tuple[str, ...]
    choice: Choice | None

    @property
    def online(self) -> bool:
        return isinstance(self.model, OnlineHMM)


def regime_setup(
    kind: str, drivers: tuple[str, ...], frame: pd.DataFrame, evaluation_start: str
) -> RegimeSetup:
    """The regime model, with the online HMM's forgetting factor chosen on data before `evaluation_start`
    (by the QLIKE of its variance forecasts, as for `hmm-online-var`)."""
    description, model = regime_model(kind, drivers)
    if not isinstance(model, OnlineHMM):
        return RegimeSetup(kind, description, model, drivers, None)
    tuned, choice = tune(
        "hmm-online-var", RegimeVolatility(model, kind), frame, evaluation_start, ONLINE_BLOCK
    )
    if not isinstance(tuned, RegimeVolatility) or not isinstance(tuned.regimes, OnlineHMM):
        raise TypeError("tuning the online HMM gave another model")
    return RegimeSetup(kind, description, tuned.regimes, drivers, choice)


def check_drivers(drivers: tuple[str, ...], frame: pd.DataFrame) -> None:
    """Every regime driver is a column of the model input (a price feature or an on-chain column)."""
    missing = [d for d in drivers if d not in frame.columns]
    if missing:
        known = ", ".join(c for c in frame.columns if c not in ("ret", "target"))
        raise BacktestError(
            f"regime driver {missing[0]!r} is not a column of the data; the columns are {known}"
        )


def _combination(
    models: dict[str, VolatilityModel],
    bases: Mapping[str, tuple[str, str | None]],
    raw: dict[str, Forecast],
    frame: pd.DataFrame,
    config: BacktestConfig,
) -> tuple[Forecast, dict[str, Any]]:
    """`combo`: the other uncalibrated listed models, combined with weights fitted on the pre-2020 slice."""
    members = [name for name, (_, kind) in bases.items() if kind is None]
    if len(members) < 2:
        raise BacktestError("combo needs at least two other uncalibrated models in --models")
    slices = [
        pre_cutoff_forecasts(
            models[name], frame, Calibration(refit_every=refit_every(bases[name][0], config)), config.start
        )
        for name in members
    ]
    # Every member is scored on the same slice, so the first one's proxy and dates serve for all.
    _, proxy, window = slices[0]
    logs = np.column_stack([np.log(forecast.to_numpy()) for forecast, _, _ in slices])
    w = combination_weights(logs, proxy.to_numpy())
    weights = {name: float(v) for name, v in zip(members, w, strict=True)}
    return combine([raw[name] for name in members], w), {"kind": "combo", "weights": weights, **window}


def _regimes(frame: pd.DataFrame, config: BacktestConfig, setup: RegimeSetup) -> dict[str, Any]:
    inside = [d for d in STRESS_DATES if config.start <= d <= config.end]
    # The online filter's path does not depend on when it is fitted: fit on everything before the date.
    every = 1 if setup.online else config.regime_refit_every
    probs = stress_probabilities(setup.model, frame, tuple(inside), refit_every=every)
    out: dict[str, Any] = {
        "regime_model": setup.kind,
        "model": setup.description,
        "drivers": list(setup.drivers),
        "refit_every": None if setup.online else every,
        "stress_p_high": probs,
    }
    if setup.choice is not None:
        out["recalibration"] = setup.choice.as_dict()
    return out


def _regime_path(frame: pd.DataFrame, config: BacktestConfig, setup: RegimeSetup) -> pd.Series:
    every = ONLINE_BLOCK if setup.online else config.regime_refit_every
    return rolling_probabilities(setup.model, frame, config.start, config.end, every)


def forecasts_frame(forecasts: dict[str, Forecast], proxy: pd.Series) -> pd.DataFrame:
    """Forecasts side by side with the proxy (for plots and tables)."""
    frame = pd.DataFrame({n: f.variance for n, f in forecasts.items()})
    frame.insert(0, "proxy", proxy)
    return frame.astype(float).replace([np.inf, -np.inf], np.nan)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown_table(result: dict[str, Any]) -> str:
    """The per-model scores of a backtest result as a Markdown table."""
    head = (
        "| model | QLIKE | ΔQLIKE vs GARCH-t | DM p | ΔQLIKE vs log-HAR | DM p | MCS p | VaR 1% | VaR 5% "
        "| Kupiec p 1% | Chr. p 1% | PIT KS p | MZ b | top-decile ratio |"
    )
    lines = [head, "|" + "---|" * 14]
    for name, m in result["models"].items():
        cells = [
            name,
            _fmt(m["qlike"], 4),
            _pct(m.get("qlike_gain_vs_garch_t")),
            _fmt(m["dm_pvalue_vs_garch_t"]),
            _pct(m.get("qlike_gain_vs_log_har")),
            _fmt(m["dm_pvalue_vs_log_har"]),
            _fmt(m["mcs_pvalue"]),
            _fmt(m["var_breach_rate"]["1%"]),
            _fmt(m["var_breach_rate"]["5%"]),
            _fmt(m["kupiec_pvalue"]["1%"]),
            _fmt(m["christoffersen_pvalue"]["1%"]),
            _fmt(m["pit_ks_pvalue"]),
            _fmt(m["mincer_zarnowitz"]["b"], 2),
            _fmt(m["top_decile_ratio"], 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if any("recalibration" in m or "vs_periodic" in m for m in result["models"].values()):
        lines += ["", recalibration_table(result)]
    return "\n".join(lines)


def recalibration_table(result: dict[str, Any]) -> str:
    """Recalibrating models beside the periodic refits: the value chosen before the window, mean and
    median daily QLIKE, the change against the periodic counterpart, log-HAR and GARCH-t (DM p), MCS."""
    lines = [
        "| model | chosen before the window | QLIKE | median QLIKE | Δ vs periodic refit (DM p) "
        "| Δ vs log-HAR (DM p) | Δ vs GARCH-t (DM p) | MCS p | in MCS |",
        "|" + "---|" * 9,
    ]
    for name, m in result["models"].items():
        chosen = m.get("recalibration")
        periodic = m.get("vs_periodic")
        cells = [
            name,
            f"{chosen['parameter']} = {chosen['value']:g}" if chosen else "—",
            _fmt(m["qlike"], 4),
            _fmt(m.get("qlike_median"), 4),
            f"{_pct(periodic['qlike_gain'])} vs {periodic['model']} ({periodic['dm_pvalue']:.3f})"
            if periodic
            else "—",
            _change_p(m, "log_har"),
            _change_p(m, "garch_t"),
            _fmt(m["mcs_pvalue"]),
            "yes" if m["in_mcs"] else "no",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _change_p(row: dict[str, Any], bench: str) -> str:
    pvalue = row.get(f"dm_pvalue_vs_{bench}")
    return "—" if pvalue is None else f"{_pct(row[f'qlike_gain_vs_{bench}'])} ({pvalue:.3f})"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{-100 * value:+.1f}%"
