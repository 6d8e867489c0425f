"""Monte Carlo scenarios drawn from the analytics: the day's volatility forecasts and regimes, dependence
and fat tails estimated from the recorded price history, and named historical stress days.

    model = scenario_model(inputs, request, conn)   # conn: forecasts_latest and regimes_latest, or None
    factors = draw(model, n=10_000, seed=7)          # (n, assets) price factors, one column per asset
    record = model.record                            # every input, so that seed + record repeat the run

How a scenario is drawn (the graph gets arrays, it never reads the analytics):

* Series. Each moving (non-stable) asset follows a recorded daily price series, chosen by its symbol:
  WETH, ETH, wstETH, stETH, cbETH, rETH, weETH follow ETH; WBTC, cbBTC, tBTC follow BTC (the Binance daily
  files under data/prices). Assets on one series move together (one column of draws): a liquid staking
  token's ratio to ETH is not a daily risk factor here. An asset whose indexed oracle prices in the
  database cover the history window and two years follows those instead (its own column); the day count
  is recorded either way. An asset with no series needs ``--vol`` (and ``--corr`` when others move).
* Volatility of the day. The service model's (``analytics.SERVICE_MODEL``) latest forecast for the series
  from ``forecasts_latest``: its own horizon when one is stored for the horizon asked, else the one-day
  forecast times sqrt(h). Without a stored forecast, the same model is fitted in process on the series and
  its h-day forecast (summed daily variances) used. ``--vol`` overrides an asset's (times sqrt(h) over h
  days). The source of each is recorded.
* Regime. The regime probabilities of the latest day (``regimes_latest``, or the service's regime filter
  fitted in process from statsmodels' default start) make each scenario's volatility a mixture: one
  uniform per scenario picks the regime of every series (so turbulent days are joint), and regime r scales
  the volatility by ``v_r / sqrt(sum_j p_j v_j^2)`` (v: the regimes' daily vols), so the mixture's variance
  is the forecast's: the regimes shape the tails, the forecast sets the level. The regime holds over the
  horizon.
* Dependence. The correlation of the aligned daily log returns of the series over the last
  ``history_days`` common days (``--corr`` sets every pair instead).
* Fat tails. ``t``: a multivariate Student-t with that correlation, degrees of freedom fitted by maximum
  likelihood on the pooled standardised residuals (or ``--df``), one draw per scenario scaled by the
  horizon volatility (square root of time). ``fhs``: filtered historical simulation, whole days of joint
  standardised residuals (each day's log return over its EWMA volatility, lambda 0.94, known the day
  before; scaled to unit root mean square) resampled, h of them summed for an h-day horizon, and rescaled
  by the day's volatility.
* Stress days. A named day's scenario is the series' recorded move: close of the last day of the horizon
  (the day itself for one day) over the close of the day before. Stress scenarios are separate rows, never
  part of the Monte Carlo sample (:func:`stress_results` reports each one's cascade).
* Replay. :func:`model_from_record` rebuilds the model from a run's recorded inputs (FHS residuals from
  the recorded series window, checked against their digest), so seed + record draw the same factors
  even after the database's forecasts have moved on.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chainrisk.contagion.inputs import Inputs, pegged, symbol_token
from chainrisk.inputs import OptionError

if TYPE_CHECKING:
    import pandas as pd
    import psycopg
    from numpy.typing import NDArray

    from chainrisk.contagion.var import VarRequest

    FloatArray = NDArray[np.float64]
    Conn = psycopg.Connection[tuple[object, ...]]
else:
    FloatArray = Any
    Conn = Any

METHODS = ("t", "fhs")
HORIZONS = {"1d": 1, "3d": 3, "7d": 7}
STRESS_DAYS = ("2020-03-12", "2021-05-19", "2022-05-09", "2022-06-13", "2022-11-09")
DEFAULT_HISTORY_DAYS = 3 * 365
MIN_HISTORY_DAYS = 60
MAX_HISTORY_DAYS = 20 * 365
EWMA_LAMBDA = 0.94
EWMA_WARMUP = 30
# A fitted tail index below this has no finite variance to scale; above it the t is as good as normal.
DF_BOUNDS = (2.5, 100.0)

PRICES = Path(__file__).resolve().parents[2] / "data" / "prices"
SERIES_FILES = {"ETH": "binance-ethusdt-daily.csv", "BTC": "binance-btcusdt-daily.csv"}
SERIES_OF_SYMBOL = {
    **dict.fromkeys(("weth", "eth", "wsteth", "steth", "cbeth", "reth", "weeth"), "ETH"),
    **dict.fromkeys(("wbtc", "btc", "cbbtc", "tbtc"), "BTC"),
}

FORECAST_SQL = (
    "SELECT horizon_days, volatility, as_of::text, model_version FROM forecasts_latest"
    " WHERE upper(asset) = %s AND model = %s AND horizon_days IN (1, %s) ORDER BY horizon_days DESC"
)
# A token's oracle answers in USD, as `chainrisk serve` exports them for its forecasts.
ORACLE_TICKS = """
SELECT to_timestamp(u.updated_at::double precision) AS time,
       u.current / 10::numeric ^ k.price_decimals AS price
FROM tracked_tokens k
JOIN price_answer_updated u ON u.chain_id = k.chain_id
WHERE k.chain_id = %s AND lower(k.token) = %s AND u.updated_at IS NOT NULL AND u.current > 0
  AND u.address IN (
      SELECT k.price_feed WHERE k.price_feed IS NOT NULL
      UNION
      SELECT s.source FROM aave_oracle_asset_source_updated s
      WHERE k.price_feed IS NULL AND s.chain_id = k.chain_id AND s.asset = k.token)
ORDER BY u.block_number, u.log_index
"""
# Database prices replace the bundled file only when they also cover two years: the service model
# recalibrates on the last year before its forecast, and the regime filter needs calm and turbulent spells.
DATABASE_MIN_DAYS = 2 * 365
REGIME_SQL = (
    "SELECT day::text, regime, probability, daily_vol, model_version FROM regimes_latest"
    " WHERE upper(asset) = %s AND day = (SELECT max(day) FROM regimes_latest WHERE upper(asset) = %s)"
    " ORDER BY regime"
)


@dataclass(frozen=True, eq=False)
class ScenarioModel:
    """Everything a draw needs, one entry per asset (``assets``) or per column of joint draws
    (``columns``: a series name, or an asset's symbol when it has no series), and ``record``, the same
    as JSON. Compared and hashed by identity."""

    method: str
    horizon_days: int
    assets: tuple[str, ...]
    column_of: tuple[int, ...]  # each asset's column
    columns: tuple[str, ...]
    vol: tuple[float, ...]  # each asset's volatility over the horizon
    daily: tuple[float, ...]  # each asset's one-day volatility
    corr: FloatArray
    df: float | None
    residuals: FloatArray | None  # (days, columns) for fhs
    regime_p: tuple[tuple[float, ...], ...] | None  # per column, calm first; None: no mixture
    regime_scale: tuple[tuple[float, ...], ...] | None
    stress: dict[str, tuple[float, ...]]  # day → factor per asset
    record: dict[str, object]

    def daily_vols(self) -> dict[str, float]:
        return dict(zip(self.assets, self.daily, strict=True))


# ------------------------------------------------------------------------------------------- options


def check_options(
    method: str, horizon: str, df: float | None, history_days: int, stress_days: Sequence[str]
) -> tuple[int, tuple[str, ...]]:
    """The horizon in days and the stress days, or an :class:`OptionError`; no data read."""
    from chainrisk.inputs import iso_date

    if method not in METHODS:
        raise OptionError(
            f"--method {method!r}: expected t (Student-t) or fhs (filtered historical simulation)"
        )
    if horizon not in HORIZONS:
        raise OptionError(f"--horizon {horizon!r}: expected one of {', '.join(HORIZONS)}")
    if df is not None and method != "t":
        raise OptionError(f"--df {df}: degrees of freedom apply to --method t only")
    if not MIN_HISTORY_DAYS <= history_days <= MAX_HISTORY_DAYS:
        raise OptionError(
            f"--history-days {history_days}: expected {MIN_HISTORY_DAYS} to {MAX_HISTORY_DAYS:,} days"
        )
    days = tuple(dict.fromkeys(iso_date("--stress-day", d) for d in stress_days))
    return HORIZONS[horizon], days


def flag_vols(inputs: Inputs, vols: Sequence[tuple[str, float]]) -> dict[str, float]:
    """{asset: daily volatility} from ``--vol``; a stable or unknown symbol is an error."""
    moving = moving_assets(inputs)
    by_symbol = {symbol.lower(): token for token, symbol in inputs.symbols.items() if token in moving}
    out = {}
    for name, vol in vols:
        asset = symbol_token(by_symbol, name)
        if asset is None:
            known = ", ".join(sorted(inputs.symbols.get(a, a) for a in moving)) or "none"
            raise OptionError(
                f"--vol '{name}={vol}': unknown or stable asset {name!r}; expected one of {known}"
            )
        out[asset] = vol
    return out


def moving_assets(inputs: Inputs) -> list[str]:
    """The non-stable priced assets, sorted: stablecoins are the dollar the feeds are quoted in."""
    return [a for a, o in sorted(inputs.oracles.items()) if not pegged(o.price)]


def series_of(symbol: str) -> str | None:
    """The recorded price series an asset follows, by its symbol."""
    return SERIES_OF_SYMBOL.get(symbol.lower())


# ------------------------------------------------------------------------------------------- history


@dataclass(frozen=True, eq=False)
class Series:
    """One recorded daily series: the model input frame (``ret``, ``target``, …), closes, residuals.
    Compared and hashed by identity (one per series and process, from :func:`load_series`)."""

    name: str
    source: str
    frame: pd.DataFrame
    close: pd.Series
    residual: pd.Series
    chain_id: int | None = None  # a series of indexed oracle prices: its chain and token
    token: str | None = None


@functools.cache
def load_series(name: str) -> Series:
    """The bundled daily series (read once per process)."""
    from analytics.report import load_daily, model_frame

    path = PRICES / SERIES_FILES[name]
    frame, _ = model_frame(path, "parkinson", None)
    bars, _ = load_daily(path)
    return Series(name, _relative(path), frame, bars["close"], _ewma_residuals(frame["ret"]))


@dataclass(frozen=True)
class DatabaseHistory:
    """What the database holds of an asset's price: days with an oracle update, and the series built
    from them when they are long enough to replace the bundled file."""

    name: str
    days: int | None  # None: no database asked
    series: Series | None


def database_history(
    conn: Conn | None, chain_id: int, token: str, symbol: str, history_days: int
) -> DatabaseHistory:
    """The asset's indexed oracle prices as a daily series when they cover the history window, the
    service model's year of recalibration and the filter's warm-up; else only their day count."""
    name = f"{symbol}@{chain_id}"
    if conn is None:
        return DatabaseHistory(name, None, None)
    row = conn.execute(
        f"SELECT count(DISTINCT (t.time AT TIME ZONE 'UTC')::date) FROM ({ORACLE_TICKS}) t", (chain_id, token)
    ).fetchone()
    days = int(str(row[0])) if row else 0
    if days < max(history_days, DATABASE_MIN_DAYS) + EWMA_WARMUP:
        return DatabaseHistory(name, days, None)
    return DatabaseHistory(name, days, database_series(conn, chain_id, token, name))


def database_series(conn: Conn, chain_id: int, token: str, name: str) -> Series:
    """Daily bars of a token's oracle updates (highs and lows of the updates: a lower bound on the range),
    as the model input the bundled files give."""
    import pandas as pd

    from analytics.backtest import daily_frame
    from analytics.features import price_features
    from analytics.loaders import ticks_to_daily
    from analytics.rvmodels import range_columns

    rows = conn.execute(ORACLE_TICKS, (chain_id, token)).fetchall()
    ticks = pd.DataFrame({"time": [r[0] for r in rows], "price": [float(str(r[1])) for r in rows]})
    bars = ticks_to_daily(ticks)
    frame = daily_frame(bars, "parkinson").join(range_columns(bars))
    frame = frame.join(price_features(frame))
    source = f"database: oracle updates of {token} on chain {chain_id}"
    return Series(name, source, frame, bars["close"], _ewma_residuals(frame["ret"]), chain_id, token)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(PRICES.parents[1]))
    except ValueError:
        return str(path)


def _ewma_residuals(ret: pd.Series) -> pd.Series:
    """Each day's return over its EWMA volatility from the days before (RiskMetrics), warm-up dropped."""
    r = ret.to_numpy(dtype=np.float64)
    var = np.empty_like(r)
    var[0] = float(np.mean(r[:EWMA_WARMUP] ** 2))
    for t in range(1, r.size):
        var[t] = EWMA_LAMBDA * var[t - 1] + (1 - EWMA_LAMBDA) * r[t - 1] ** 2
    return (ret / np.sqrt(var)).iloc[EWMA_WARMUP:]


def _window(series: Sequence[Series], days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Aligned returns and residuals of the series over their last ``days`` common days."""
    import pandas as pd

    returns = pd.concat({s.name: s.frame["ret"] for s in series}, axis=1, join="inner")
    residuals = pd.concat({s.name: s.residual for s in series}, axis=1, join="inner")
    common = returns.index.intersection(residuals.index)[-days:]
    return returns.loc[common], residuals.loc[common]


# ------------------------------------------------------------------------------------------- forecasts


def _db_forecast(conn: Conn | None, name: str, horizon: int) -> dict[str, Any] | None:
    from analytics.service import SERVICE_MODEL

    if conn is None:
        return None
    row = conn.execute(FORECAST_SQL, (name, SERVICE_MODEL, horizon)).fetchone()
    if row is None:
        return None
    stored, vol, as_of, version = int(str(row[0])), float(str(row[1])), str(row[2]), str(row[3])
    scaled = vol if stored == horizon else vol * math.sqrt(horizon)
    return {"source": "database", "model": version, "as_of": as_of, "horizon_stored": stored, "vol": scaled}


@functools.cache
def _computed_forecast(series: Series, horizon: int) -> dict[str, Any]:
    """The service model's h-day forecast fitted on the whole series (once per process: the same
    series gives the same forecast)."""
    from analytics.live import _version
    from analytics.report import BacktestConfig, prepare_model
    from analytics.service import SERVICE_MODEL

    frame = series.frame
    as_of = frame.index[-1]
    after = str((as_of + timedelta(days=1)).date())
    model, choice = prepare_model(SERVICE_MODEL, BacktestConfig(prices=Path(".")), frame, (), after)
    path = model.fit(frame).path(frame, horizon)
    return {
        "source": "computed",
        "model": _version(SERVICE_MODEL, choice),
        "as_of": str(as_of.date()),
        "horizon_stored": None,
        "vol": float(np.sqrt(np.sum(path[:horizon]))),
    }


def _db_regime(conn: Conn | None, name: str) -> dict[str, Any] | None:
    if conn is None:
        return None
    rows = conn.execute(REGIME_SQL, (name, name)).fetchall()
    if not rows or any(r[3] is None for r in rows):
        return None  # a regime filter on the realised measure has no daily vols to mix
    return {
        "source": "database",
        "model": str(rows[0][4]),
        "day": str(rows[0][0]),
        "probabilities": [float(str(r[2])) for r in rows],
        "daily_vols": [float(str(r[3])) for r in rows],
    }


@functools.cache
def _computed_regime(series: Series) -> dict[str, Any] | None:
    """The service's regime filter (two-state switching variance on returns) fitted on the whole series,
    its last day's filtered probabilities (once per process). Fitted from statsmodels' default start, with
    no random search: its random starts are drawn from fresh entropy whatever numpy's seed, which would move
    the probabilities in the fifth digit from one run to the next and break a run's exact repetition."""
    import warnings

    from analytics.live import CODE_VERSION
    from analytics.regimes import MarkovSwitching

    model = MarkovSwitching(k=2, signal="returns", search_reps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the optimiser's chatter; the fit is judged by its vols
        fit = model.fit(series.frame)
    vols = fit.daily_vols()
    if any(v is None for v in vols):
        return None
    last = fit.filtered(series.frame).iloc[-1]
    return {
        "source": "computed",
        "model": f"markov-{model.k}[search_reps=0]:{CODE_VERSION}",
        "day": str(series.frame.index[-1].date()),
        "probabilities": [float(last[r]) for r in range(model.k)],
        "daily_vols": [float(v) for v in vols if v is not None],
    }


def regime_scales(probabilities: Sequence[float], daily_vols: Sequence[float]) -> tuple[float, ...]:
    """Each regime's volatility multiplier: ``v_r / sqrt(sum p v^2)``, so the mixture keeps the variance."""
    p, v = np.asarray(probabilities, dtype=np.float64), np.asarray(daily_vols, dtype=np.float64)
    p = p / p.sum()
    return tuple(float(x) for x in v / math.sqrt(float(np.sum(p * v**2))))


# ------------------------------------------------------------------------------------------- the model


def scenario_model(inputs: Inputs, request: VarRequest, conn: Conn | None = None) -> ScenarioModel:
    """The scenarios' inputs for the moving assets of ``inputs``: forecasts and regimes from the database
    when it holds them (``conn``), else computed from the bundled series; see the module docstring."""
    assets = moving_assets(inputs)
    flags = flag_vols(inputs, request.vols)
    symbol = {a: inputs.symbols.get(a, a) for a in assets}
    database = {
        a: database_history(conn, inputs.chain_id, a, symbol[a], request.history_days) for a in assets
    }
    column = {
        a: database[a].name if database[a].series else series_of(symbol[a]) or symbol[a] for a in assets
    }
    columns = tuple(dict.fromkeys(column[a] for a in sorted(assets, key=lambda a: column[a])))
    series = {c: load_series(c) for c in columns if c in SERIES_FILES}
    series.update({column[a]: d.series for a, d in database.items() if d.series is not None})
    _check_unrecorded(request, assets, symbol, column, flags, columns, series)
    h = request.horizon_days
    forecasts = {c: _db_forecast(conn, c, h) or dict(_computed_forecast(s, h)) for c, s in series.items()}
    regimes = {
        c: (_db_regime(conn, c) or _computed_regime(s)) if request.regimes else None
        for c, s in series.items()
    }
    recorded = [series[c] for c in columns if c in series]
    returns, residuals = _window(recorded, request.history_days) if recorded else (None, None)
    corr = _correlation(columns, returns, request.corr)
    unit = _unit_residuals(residuals) if residuals is not None else None
    df = _df(request, unit)
    vol = {a: flags[a] * math.sqrt(h) if a in flags else float(forecasts[column[a]]["vol"]) for a in assets}
    scale = [regimes.get(c) for c in columns]
    p = None if not any(scale) else tuple(tuple(r["probabilities"]) if r else (1.0,) for r in scale)
    s = (
        None
        if p is None
        else tuple(regime_scales(r["probabilities"], r["daily_vols"]) if r else (1.0,) for r in scale)
    )
    stress = {
        d: _stress_factors(d, h, [series.get(column[a]) for a in assets], [symbol[a] for a in assets])
        for d in request.stress_days
    }
    model = ScenarioModel(
        method=request.method,
        horizon_days=h,
        assets=tuple(assets),
        column_of=tuple(columns.index(column[a]) for a in assets),
        columns=columns,
        vol=tuple(vol[a] for a in assets),
        daily=tuple(vol[a] / math.sqrt(h) for a in assets),
        corr=corr,
        df=df,
        residuals=None if request.method != "fhs" or unit is None else unit.to_numpy(dtype=np.float64),
        regime_p=p,
        regime_scale=s,
        stress=stress,
        record={},
    )
    record = _record(model, request, series, forecasts, regimes, flags, returns, symbol, database)
    return replace(model, record=record)


def _check_unrecorded(
    request: VarRequest,
    assets: Sequence[str],
    symbol: Mapping[str, str],
    column: Mapping[str, str],
    flags: Mapping[str, float],
    columns: Sequence[str],
    series: Mapping[str, Series],
) -> None:
    """An asset without a recorded series moves only by what the flags say, and cannot be resampled."""
    for asset in assets:
        if column[asset] in series:
            continue
        name = symbol[asset]
        if asset not in flags:
            raise OptionError(
                f"no recorded price series for {name}: give its daily volatility with --vol {name}=VOL,"
                f" e.g. --vol {name}=0.05"
            )
        if len(columns) > 1 and request.corr is None:
            raise OptionError(
                f"--vol {name}=...: {name} has no recorded price series, so its correlation with the other"
                " assets is not estimated; give it with --corr, e.g. --corr 0.8"
            )
        if request.method == "fhs":
            raise OptionError(
                f"--method fhs: {name} has no recorded price series to resample; use --method t"
            )
        if request.stress_days:
            raise OptionError(
                f"--stress-day: {name} has no recorded price series to take the day's move from"
            )


def _correlation(columns: Sequence[str], returns: pd.DataFrame | None, flag: float | None) -> FloatArray:
    k = len(columns)
    if flag is not None:
        matrix: FloatArray = np.full((k, k), flag) + np.eye(k) * (1 - flag)
        return matrix
    if returns is None:
        return np.eye(k)
    estimated: FloatArray = returns[list(columns)].corr().to_numpy(dtype=np.float64)
    return estimated


def _unit_residuals(residuals: pd.DataFrame) -> pd.DataFrame:
    """Residuals scaled to unit root mean square per series, so that a draw's variance is the forecast's."""
    unit: pd.DataFrame = residuals / np.sqrt((residuals**2).mean())
    return unit


def _df(request: VarRequest, unit: pd.DataFrame | None) -> float | None:
    """``--df``, else the Student-t tail index fitted (maximum likelihood, centred) on pooled residuals."""
    import warnings

    from scipy import stats

    if request.method != "t":
        return None
    if request.df is not None:
        return request.df
    if unit is None:
        raise OptionError("--df: no recorded price series to estimate the degrees of freedom from; give --df")
    pooled = unit.to_numpy(dtype=np.float64).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the optimiser's overflow chatter at large df
        df = float(stats.t.fit(pooled, floc=0.0)[0])
    return float(min(max(df, DF_BOUNDS[0]), DF_BOUNDS[1]))


def _stress_factors(
    day: str, horizon: int, series: Sequence[Series | None], symbols: Sequence[str]
) -> tuple[float, ...]:
    """The recorded move of each asset's series: close at the horizon's last day over the previous close."""
    import pandas as pd

    first = date.fromisoformat(day)
    before = pd.Timestamp(first - timedelta(days=1), tz="UTC")
    last = pd.Timestamp(first + timedelta(days=horizon - 1), tz="UTC")
    factors = []
    for s, name in zip(series, symbols, strict=True):
        if s is None:
            raise OptionError(f"--stress-day {day}: {name} has no recorded price series")
        missing = [t for t in (before, last) if t not in s.close.index]
        if missing:
            covered = f"{s.close.index[0].date()} to {s.close.index[-1].date()}"
            raise OptionError(
                f"--stress-day {day}: the {s.name} series ({s.source}) has no close on"
                f" {missing[0].date()}; it covers {covered}"
            )
        factors.append(float(s.close.loc[last] / s.close.loc[before]))
    return tuple(factors)


def _record(
    model: ScenarioModel,
    request: VarRequest,
    series: Mapping[str, Series],
    forecasts: Mapping[str, Mapping[str, Any]],
    regimes: Mapping[str, Mapping[str, Any] | None],
    flags: Mapping[str, float],
    returns: pd.DataFrame | None,
    symbol: Mapping[str, str],
    database: Mapping[str, DatabaseHistory],
) -> dict[str, object]:
    """The scenarios' inputs as JSON: with the seed, enough to draw the same factors again."""
    h = model.horizon_days
    vol: dict[str, object] = {}
    for i, asset in enumerate(model.assets):
        name = model.columns[model.column_of[i]]
        given = forecasts.get(name, {}) if asset not in flags else {"source": "flag"}
        vol[asset] = {
            "symbol": symbol[asset],
            "series": name if name in series else None,
            "daily": model.daily[i],
            "horizon": model.vol[i],
            "source": given.get("source"),
            "model": given.get("model"),
            "as_of": given.get("as_of"),
            "horizon_stored": given.get("horizon_stored"),
            "database_price_days": database[asset].days,
        }
    history: dict[str, object] | None = None
    if returns is not None:
        history = {
            "days_asked": request.history_days,
            "days": len(returns),
            "first": str(returns.index[0].date()),
            "last": str(returns.index[-1].date()),
            "series": {
                s.name: {
                    "source": s.source,
                    "first": str(s.frame.index[0].date()),
                    "last": str(s.frame.index[-1].date()),
                    **({} if s.token is None else {"chain_id": s.chain_id, "token": s.token}),
                }
                for s in series.values()
            },
            "residual_filter": f"EWMA lambda {EWMA_LAMBDA} (warm-up {EWMA_WARMUP} days), unit RMS per series",
        }
        if model.residuals is not None:
            history["residuals_sha256"] = hashlib.sha256(model.residuals.tobytes()).hexdigest()
    return {
        "method": model.method,
        "horizon_days": h,
        "horizon_scaling": "sqrt-time" if model.method == "t" else "sum of h resampled days",
        "df": model.df,
        "df_source": None if model.df is None else "flag" if request.df is not None else "estimated",
        "corr": {
            "columns": list(model.columns),
            "matrix": model.corr.tolist(),
            "source": "flag" if request.corr is not None else "estimated",
        },
        "history": history,
        "vol": vol,
        "regimes": None
        if model.regime_p is None or model.regime_scale is None
        else {
            c: None
            if regimes.get(c) is None
            else {**(regimes[c] or {}), "scale": list(model.regime_scale[i])}
            for i, c in enumerate(model.columns)
        },
        "stress_days": {
            day: {a: f for a, f in zip(model.assets, factors, strict=True)}
            for day, factors in model.stress.items()
        },
    }


# ------------------------------------------------------------------------------------------- drawing


def draw(model: ScenarioModel, n: int, seed: int) -> FloatArray:
    """``n`` scenarios of price factors, one column per asset of ``model`` (the stress days apart)."""
    from graph.tail import fhs_scenarios, student_t_scenarios

    if not model.assets:
        return np.ones((n, 0))
    rng = np.random.default_rng(seed)
    ones = np.ones(len(model.columns))
    h = model.horizon_days
    if model.method == "fhs":
        if model.residuals is None:
            raise ValueError("an fhs model without residuals")
        drawn = fhs_scenarios(model.residuals, ones, n=n, rng=rng, horizon_days=h).factors
        unit = np.log(drawn) / math.sqrt(h)
    else:
        df = model.df if model.df is not None else DF_BOUNDS[1]
        unit = np.log(student_t_scenarios(model.corr, ones, df=df, n=n, rng=rng).factors)
    unit = unit * _regime_multipliers(model, n, rng)
    factors: FloatArray = np.exp(unit[:, list(model.column_of)] * np.asarray(model.vol))
    return factors


def _regime_multipliers(model: ScenarioModel, n: int, rng: np.random.Generator) -> FloatArray:
    """(n, columns): each scenario's regime volatility multiplier per series, one uniform per scenario."""
    ones: FloatArray = np.ones((n, len(model.columns)))
    if model.regime_p is None or model.regime_scale is None:
        return ones
    u = rng.random(n)
    for c, (p, scale) in enumerate(zip(model.regime_p, model.regime_scale, strict=True)):
        cumulative = np.cumsum(p) / np.sum(p)
        regime = np.minimum(np.searchsorted(cumulative, u, side="right"), len(p) - 1)
        ones[:, c] = np.asarray(scale)[regime]
    return ones


_LAST: dict[str, tuple[Inputs, VarRequest, ScenarioModel]] = {}


def model_for(inputs: Inputs, request: VarRequest) -> ScenarioModel:
    """The request's model (set by the command, which has the database), else one computed without it
    from the bundled series; the last one is kept, so a run computes it once."""
    if request.model is not None:
        return request.model
    last = _LAST.get("model")
    if last is not None and last[0] is inputs and last[1] == request:
        return last[2]
    model = scenario_model(inputs, request, None)
    _LAST["model"] = (inputs, request, model)
    return model


def stress_results(inputs: Inputs, request: VarRequest) -> list[dict[str, object]]:
    """Each named stress day's cascade, in USD, in the order asked: its price factors, bad debt (total
    and per market), value liquidated and depth. Not part of the Monte Carlo sample."""
    from fractions import Fraction

    from chainrisk.contagion.var import outcome

    model = model_for(inputs, request)
    out: list[dict[str, object]] = []
    for day, factors in model.stress.items():
        shock = {a: Fraction(f).limit_denominator(10**12) for a, f in zip(model.assets, factors, strict=True)}
        result = outcome(inputs, shock)
        out.append(
            {
                "day": day,
                "horizon_days": model.horizon_days,
                "factors": {
                    a: {"symbol": inputs.symbols.get(a), "factor": f}
                    for a, f in zip(model.assets, factors, strict=True)
                },
                "bad_debt_usd": result.bad_debt,
                "bad_debt_by_market_usd": result.by_market,
                "liquidated_usd": result.liquidated,
                "depth": result.depth,
            }
        )
    return out


# ------------------------------------------------------------------------------------------- replay


def model_from_record(inputs: Inputs, record: Mapping[str, Any], conn: Conn | None = None) -> ScenarioModel:
    """The model a run's ``"inputs"`` block records, to draw its scenarios again exactly: volatilities,
    correlation, df, regimes and stress moves as recorded; FHS residuals rebuilt from the recorded series
    window (the database's oracle prices for a database series: ``conn``) and checked against their
    recorded digest."""
    try:
        return _from_record(inputs, record, conn)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise OptionError(f"--replay: not the inputs of a contagion var run ({exc!r})") from None


def _from_record(inputs: Inputs, record: Mapping[str, Any], conn: Conn | None) -> ScenarioModel:
    import pandas as pd

    vol: Mapping[str, Mapping[str, Any]] = record["vol"]
    assets = tuple(vol)
    moving = moving_assets(inputs)
    if sorted(assets) != moving:
        names = ", ".join(sorted(inputs.symbols.get(a, a) for a in moving)) or "none"
        raise OptionError(
            f"--replay: the recorded run moved {', '.join(v['symbol'] for v in vol.values()) or 'nothing'};"
            f" the assets here are {names}"
        )
    columns = tuple(str(c) for c in record["corr"]["columns"])
    column_of = tuple(columns.index(v["series"] or v["symbol"]) for v in vol.values())
    residuals = None
    if record["method"] == "fhs":
        history = record["history"]
        series = [_recorded_series(c, history["series"][c], conn) for c in columns]
        _, aligned = _window(series, MAX_HISTORY_DAYS * 2)  # all of it; the recorded dates cut it
        window = aligned.loc[
            pd.Timestamp(history["first"], tz="UTC") : pd.Timestamp(history["last"], tz="UTC")
        ]
        residuals = _unit_residuals(window)[list(columns)].to_numpy(dtype=np.float64)
        if hashlib.sha256(residuals.tobytes()).hexdigest() != history.get("residuals_sha256"):
            raise OptionError(
                "--replay: the recorded price series no longer give the recorded residuals"
                f" ({history['first']} to {history['last']}); the price files have changed"
            )
    regimes = record["regimes"]
    p = s = None
    if regimes is not None:
        p = tuple(tuple(regimes[c]["probabilities"]) if regimes.get(c) else (1.0,) for c in columns)
        s = tuple(tuple(regimes[c]["scale"]) if regimes.get(c) else (1.0,) for c in columns)
    stress = {day: tuple(float(f[a]) for a in assets) for day, f in record["stress_days"].items()}
    return ScenarioModel(
        method=str(record["method"]),
        horizon_days=int(record["horizon_days"]),
        assets=assets,
        column_of=column_of,
        columns=columns,
        vol=tuple(float(v["horizon"]) for v in vol.values()),
        daily=tuple(float(v["daily"]) for v in vol.values()),
        corr=np.asarray(record["corr"]["matrix"], dtype=np.float64),
        df=None if record["df"] is None else float(record["df"]),
        residuals=residuals,
        regime_p=p,
        regime_scale=s,
        stress=stress,
        record=dict(record),
    )


def _recorded_series(name: str, entry: Mapping[str, Any], conn: Conn | None) -> Series:
    if name in SERIES_FILES:
        return load_series(name)
    if conn is None or "token" not in entry:
        raise OptionError(f"--replay: the series {name} ({entry.get('source')}) cannot be read again here")
    return database_series(conn, int(entry["chain_id"]), str(entry["token"]), name)


@dataclass(frozen=True)
class Replay:
    """An earlier run to draw again: its request (seed, scenario count, method, horizon), chain, block
    and recorded inputs."""

    request: VarRequest
    chain_id: int
    block: int
    record: dict[str, Any]


def read_replay(path: Path, given: Sequence[str]) -> Replay:
    """The ``--json`` document of an earlier ``contagion var`` run, read before the database is opened;
    ``given`` names the scenario options also given, which a replay refuses (the file decides them)."""
    import json

    from chainrisk.contagion.var import var_request
    from chainrisk.inputs import input_file

    if given:
        raise OptionError(
            f"--replay takes the seed, scenario count and every scenario input from {str(path)!r};"
            f" drop {given[0]}"
        )
    input_file("--replay", path, "JSON document")
    try:
        document = json.loads(path.read_text())
        record = dict(document["inputs"])
        request = var_request(
            int(record["scenarios"]),
            int(record["seed"]),
            [],
            method=str(record["method"]),
            horizon=f"{int(record['horizon_days'])}d",
            regimes=record["regimes"] is not None,
        )
        return Replay(request, int(document["chain_id"]), int(document["block"]), record)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OptionError(
            f"--replay {str(path)!r}: not the --json document of a contagion var run ({exc!r})"
        ) from None
