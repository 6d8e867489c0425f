"""Extensions of log-HAR from the realised-volatility literature, for daily OHLC data.

Each model regresses tomorrow's log realised measure (the `target` column, Parkinson by default) on
regressors known at today's close, by OLS, and forecasts exp(prediction + ½ residual variance) like
`analytics.baselines.HAR(log=True)`:

- `RangeHAR` (`log-har-range`): several range-based estimators as separate regressors;
- `HARQ` (`log-harq`): the daily coefficient scaled by a quarticity proxy (Bollerslev, Patton and
  Quaedvlieg, 2016);
- `LHAR` (`lhar`): leverage terms (Corsi and Renò, 2012);
- `PanelHAR` (`panel-log-har`): log-HAR pooled over two assets;
- `QuarterlyHAR` (`log-har-q`): an extra quarterly component (extended memory).

`validation` scores candidates on a window before a cut-off, with every row after the cut-off dropped
first: the pre-registered selection rule of docs/FORECASTING.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analytics.backtest import BacktestError, one_day_ahead
from analytics.baselines import Forecast, InsufficientHistoryError, VolatilityModel
from analytics.evaluation import qlike
from analytics.realised import garman_klass, rogers_satchell

__all__ = [
    "CANDIDATES",
    "HARQ",
    "LHAR",
    "RANGE_COLUMNS",
    "PanelHAR",
    "QuarterlyHAR",
    "RangeHAR",
    "range_columns",
    "select",
    "validation",
]

# Floor for the logs of estimators that can be exactly zero (a bar with close = open = high, say).
FLOOR = 1e-8
RANGE_COLUMNS = ("gk_var", "rs_var")
# In order of parameter count (5, 5, 5, 7, 8): the order breaks ties.
CANDIDATES = ("log-harq", "panel-log-har", "log-har-q", "log-har-range", "lhar")


def range_columns(bars: pd.DataFrame) -> pd.DataFrame:
    """Garman–Klass and Rogers–Satchell variance of each bar (known at the bar's close)."""
    return pd.DataFrame({"gk_var": garman_klass(bars), "rs_var": rogers_satchell(bars)}, index=bars.index)


def _log(series: pd.Series) -> pd.Series:
    return pd.Series(np.log(series.clip(lower=FLOOR)), index=series.index)


def _core(data: pd.DataFrame) -> pd.DataFrame:
    """Log-HAR regressors at each day's close: constant, daily, weekly (5) and monthly (22) log levels."""
    level = _log(data["target"])
    return pd.DataFrame(
        {"const": 1.0, "d": level, "w": level.rolling(5).mean(), "m": level.rolling(22).mean()},
        index=data.index,
    )


Design = Callable[[pd.DataFrame], pd.DataFrame]


def _ols(design: pd.DataFrame, y: pd.Series) -> tuple[np.ndarray, float]:
    frame = design.shift(1).assign(y=y).dropna()
    x = frame.drop(columns="y").to_numpy()
    beta, *_ = np.linalg.lstsq(x, frame["y"].to_numpy(), rcond=None)
    resid = frame["y"].to_numpy() - x @ beta
    return np.asarray(beta), float(resid @ resid / max(len(resid) - x.shape[1], 1))


@dataclass(frozen=True)
class _FittedLinear:
    beta: np.ndarray
    resid_var: float
    design: Design

    def _level(self, prediction: np.ndarray) -> np.ndarray:
        return np.asarray(np.exp(prediction + 0.5 * self.resid_var))

    def forecast(self, data: pd.DataFrame, days: pd.DatetimeIndex) -> Forecast:
        pos = data.index.get_indexer(days)
        if (pos < 1).any():
            raise ValueError("every forecast day must be in the data and have at least one day before it")
        # Rows up to the last forecast day only: nothing later can reach the design.
        x = self.design(data.iloc[: int(pos.max()) + 1]).to_numpy()
        return Forecast(pd.Series(self._level(x[pos - 1] @ self.beta), index=days))

    def path(self, data: pd.DataFrame, horizon: int) -> np.ndarray:
        # One step from the design; later steps held flat (the extra regressors have no own dynamics).
        x = self.design(data).to_numpy()[-1]
        return np.full(horizon, float(self._level(np.array([x @ self.beta]))[0]))


def _fit(design: Design, history: pd.DataFrame, needed: int, name: str) -> _FittedLinear:
    if len(history) < needed:
        raise InsufficientHistoryError(f"{name} needs at least {needed} days of history, got {len(history)}")
    beta, resid_var = _ols(design(history), _log(history["target"]))
    return _FittedLinear(beta, resid_var, design)


def _range_design(data: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in RANGE_COLUMNS if c not in data.columns]
    if missing:
        raise ValueError(f"log-har-range needs the range columns {', '.join(missing)} in the data")
    return _core(data).assign(
        gk=_log(data["gk_var"]), rs=_log(data["rs_var"]), cc=_log(data["ret"].fillna(0.0) ** 2)
    )


@dataclass(frozen=True)
class RangeHAR:
    """Log-HAR with several range estimators as separate daily regressors.

    Beside the daily, weekly and monthly log Parkinson terms, the day's log Garman–Klass (1980), log
    Rogers–Satchell (1991) and log squared close-to-close return enter with their own coefficients, so the
    regression weighs estimators with different noise (the multiple-estimator HAR idea of, e.g., Andersen,
    Bollerslev and Diebold 2007 and Patton and Sheppard 2015, with daily ranges in place of intraday
    measures). Needs the `gk_var` and `rs_var` columns (`range_columns`).
    """

    min_history: int = 100

    @property
    def name(self) -> str:
        return "log-har-range"

    def fit(self, history: pd.DataFrame) -> _FittedLinear:
        return _fit(_range_design, history, self.min_history, self.name)


def quarticity_ratio(target: pd.Series, window: int = 5) -> pd.Series:
    """√(mean P²) / mean P − 1 over the last `window` days: a range-based relative quarticity proxy."""
    second = (target**2).rolling(window).mean()
    return pd.Series(np.sqrt(second) / target.rolling(window).mean() - 1.0, index=target.index)


def _harq_design(data: pd.DataFrame) -> pd.DataFrame:
    core = _core(data)
    z = quarticity_ratio(data["target"])
    return core.assign(dq=z * (core["d"] - core["w"]))


@dataclass(frozen=True)
class HARQ:
    """Log-HARQ: the daily coefficient moves with a measurement-error proxy.

    Bollerslev, Patton and Quaedvlieg (2016, J. Econometrics 192) let the HAR daily coefficient be
    β₁ + β₁Q·RQ^½, so that a noisier daily measure (high realised quarticity relative to its variance) gets
    less weight. With one OHLC bar a day the quarticity of a single range is a fixed multiple of its squared
    variance, so the relative-error proxy here is taken over the last five days: z = √(mean₅ P²)/mean₅ P − 1
    (zero when the week's ranges are equal). The extra regressor is z·(d − w): the daily term's departure
    from the weekly level, shrunk (β₁Q < 0) when z is large.
    """

    min_history: int = 100

    @property
    def name(self) -> str:
        return "log-harq"

    def fit(self, history: pd.DataFrame) -> _FittedLinear:
        return _fit(_harq_design, history, self.min_history, self.name)


def _lhar_design(data: pd.DataFrame) -> pd.DataFrame:
    ret = data["ret"].fillna(0.0)
    neg = ret.clip(upper=0.0)
    return _core(data).assign(
        neg_d=neg, neg_w=neg.rolling(5).mean(), neg_m=neg.rolling(22).mean(), abs_d=ret.abs()
    )


@dataclass(frozen=True)
class LHAR:
    """Leverage HAR (Corsi and Renò, 2012, J. Bus. Econ. Stat. 30): log-HAR plus the daily, weekly and
    monthly averages of the negative part of the return, and the day's absolute return (size effect)."""

    min_history: int = 100

    @property
    def name(self) -> str:
        return "lhar"

    def fit(self, history: pd.DataFrame) -> _FittedLinear:
        return _fit(_lhar_design, history, self.min_history, self.name)


def _quarterly_design(data: pd.DataFrame) -> pd.DataFrame:
    core = _core(data)
    return core.assign(q=core["d"].rolling(66).mean())


@dataclass(frozen=True)
class QuarterlyHAR:
    """Extended-memory log-HAR: a quarterly (66-day) component beside the daily, weekly and monthly ones
    (the longer-horizon cascade of Corsi 2009's heterogeneous-market argument, as in Andersen, Bollerslev
    and Diebold 2007's quarterly HAR terms)."""

    min_history: int = 100

    @property
    def name(self) -> str:
        return "log-har-q"

    def fit(self, history: pd.DataFrame) -> _FittedLinear:
        return _fit(_quarterly_design, history, self.min_history, self.name)


def _panel_design(data: pd.DataFrame) -> pd.DataFrame:
    return _core(data).assign(partner=0.0)


@dataclass(frozen=True)
class PanelHAR:
    """Log-HAR pooled over two assets: common slopes, an intercept per asset, OLS on the stacked sample.

    Pooling the HAR slopes across assets doubles the estimation sample (the panel HAR of, e.g., Bollerslev,
    Hood, Huss and Pedersen 2018, "Risk everywhere"). `partner` holds the other asset's daily frame; only its
    rows up to the last day of the own history enter each fit, so no later data is used.
    """

    partner: pd.DataFrame = field(repr=False)
    min_history: int = 100

    @property
    def name(self) -> str:
        return "panel-log-har"

    def fit(self, history: pd.DataFrame) -> _FittedLinear:
        if len(history) < self.min_history:
            raise InsufficientHistoryError(
                f"{self.name} needs at least {self.min_history} days of history, got {len(history)}"
            )
        other = self.partner.loc[self.partner.index <= history.index[-1]]
        own_x, own_y = _panel_design(history), _log(history["target"])
        parts_x = [own_x.shift(1)]
        parts_y = [own_y]
        if len(other) > 22:
            parts_x.append(_panel_design(other).assign(partner=1.0).shift(1))
            parts_y.append(_log(other["target"]))
        frame = pd.concat(
            [x.assign(y=y).reset_index(drop=True) for x, y in zip(parts_x, parts_y, strict=True)]
        ).dropna()
        x = frame.drop(columns="y").to_numpy()
        beta, *_ = np.linalg.lstsq(x, frame["y"].to_numpy(), rcond=None)
        resid = frame["y"].to_numpy() - x @ beta
        resid_var = float(resid @ resid / max(len(resid) - x.shape[1], 1))
        return _FittedLinear(np.asarray(beta), resid_var, _panel_design)


# --- pre-registered selection ----------------------------------------------------------------------


def validation(
    frames: Mapping[str, pd.DataFrame],
    builders: Mapping[str, Callable[[str], VolatilityModel]],
    start: str,
    until: str,
    refit_every: int = 5,
    benchmark: str = "log-har",
) -> dict[str, Any]:
    """Mean QLIKE of each model per asset over [start, until], every row after `until` dropped first.

    `builders[name](asset)` builds a model for an asset (the panel model needs to know its partner, which
    must itself be cut at `until` by the caller). Returns per-asset QLIKE, the ratio to `benchmark` and
    the average ratio over assets.
    """
    if benchmark not in builders:
        raise BacktestError(f"the benchmark {benchmark!r} must be among the models")
    cutoff = pd.Timestamp(until, tz="UTC")
    scores: dict[str, dict[str, float]] = {name: {} for name in builders}
    days: dict[str, int] = {}
    for asset, frame in frames.items():
        seen = frame.loc[frame.index <= cutoff]
        for name, build in builders.items():
            fc = one_day_ahead(build(asset), seen, start, until, refit_every=refit_every)
            scores[name][asset] = qlike(seen["target"].loc[fc.variance.index], fc.variance)
            days[asset] = len(fc.variance)
    rows: dict[str, dict[str, Any]] = {}
    for name, per_asset in scores.items():
        ratios = {a: v / scores[benchmark][a] for a, v in per_asset.items()}
        rows[name] = {
            "qlike": per_asset,
            "ratio": ratios,
            "mean_ratio": float(np.mean(list(ratios.values()))),
        }
    return {"start": start, "until": until, "refit_every": refit_every, "days": days, "models": rows}


def select(result: Mapping[str, Any], candidates: tuple[str, ...] = CANDIDATES) -> str:
    """The candidate with the lowest average QLIKE ratio (the order of `candidates` breaks ties)."""
    rows = result["models"]
    return min(
        (c for c in candidates if c in rows), key=lambda c: (rows[c]["mean_ratio"], candidates.index(c))
    )
