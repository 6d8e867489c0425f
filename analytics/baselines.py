"""Classical variance forecasters: GARCH family (`arch`), EWMA/RiskMetrics, HAR and log-HAR (OLS).

Every model follows one shape: `Model(...).fit(history) -> Fitted`, and
`Fitted.forecast(data, days) -> Forecast` gives, for each day in `days`, the variance forecast made with
the information available at the close of the day before (rows of `data` strictly before that day).

`data` is a daily frame with a `ret` column (log close-to-close return) and a `target` column (the realised
variance measure the HAR family models); extra columns are exogenous features known at each day's close.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from analytics.errors import AnalyticsError

__all__ = [
    "EWMA",
    "GARCH",
    "HAR",
    "Blend",
    "Fitted",
    "Forecast",
    "InsufficientHistoryError",
    "NumericalWarning",
    "VolatilityModel",
]

Vol = Literal["garch", "gjr", "egarch"]
Dist = Literal["normal", "t"]
# arch prefers returns of order 1: daily log returns in percent.
_SCALE = 100.0
_FLOOR = 1e-10


class InsufficientHistoryError(AnalyticsError, ValueError):
    """Too little history to fit a model; names the model, the rows given and the rows needed."""


class NumericalWarning(UserWarning):
    """An estimation that did not converge cleanly; the forecast is still produced."""


@dataclass(frozen=True)
class Forecast:
    """Variance forecasts per day, and Student-t degrees of freedom where the model has them."""

    variance: pd.Series
    nu: pd.Series | None = None

    def quantile(self, q: float) -> pd.Series:
        """The q-quantile of the next-day return under a zero-mean predictive distribution."""
        sigma = np.sqrt(self.variance)
        if self.nu is None:
            return pd.Series(sigma * float(stats.norm.ppf(q)), index=self.variance.index)
        nu = self.nu.to_numpy()
        z = stats.t.ppf(q, nu) * np.sqrt((nu - 2.0) / nu)
        return pd.Series(sigma * z, index=self.variance.index)

    def cdf(self, returns: pd.Series) -> pd.Series:
        """Probability integral transform of realised returns under the predictive distribution."""
        z = returns / np.sqrt(self.variance)
        if self.nu is None:
            return pd.Series(stats.norm.cdf(z), index=z.index)
        nu = self.nu.to_numpy()
        return pd.Series(stats.t.cdf(z * np.sqrt(nu / (nu - 2.0)), nu), index=z.index)


class Fitted(Protocol):
    def forecast(self, data: pd.DataFrame, days: pd.DatetimeIndex) -> Forecast: ...

    def path(self, data: pd.DataFrame, horizon: int) -> np.ndarray: ...


class VolatilityModel(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def min_history(self) -> int: ...

    def fit(self, history: pd.DataFrame) -> Fitted: ...


def _require(history: pd.DataFrame, needed: int, name: str) -> None:
    if len(history) < needed:
        raise InsufficientHistoryError(f"{name} needs at least {needed} days of history, got {len(history)}")


def _positions(data: pd.DataFrame, days: pd.DatetimeIndex) -> np.ndarray:
    pos = data.index.get_indexer(days)
    if (pos < 1).any():
        raise ValueError("every forecast day must be in the data and have at least one day before it")
    return np.asarray(pos)


# --- GARCH family ---------------------------------------------------------------------------------


def _arch_model(returns: pd.Series, vol: Vol, dist: Dist) -> Any:
    from arch import arch_model

    return arch_model(
        returns.to_numpy() * _SCALE,
        mean="Constant",
        vol="EGARCH" if vol == "egarch" else "GARCH",
        p=1,
        o=0 if vol == "garch" else 1,
        q=1,
        dist="studentst" if dist == "t" else "normal",
        rescale=False,
    )


@dataclass(frozen=True)
class _FittedGARCH:
    params: np.ndarray
    vol: Vol
    dist: Dist

    def _fixed(self, returns: pd.Series) -> Any:
        return _arch_model(returns, self.vol, self.dist).fix(self.params)

    def forecast(self, data: pd.DataFrame, days: pd.DatetimeIndex) -> Forecast:
        pos = _positions(data, days)
        res = self._fixed(data["ret"].iloc[: pos.max()])
        # Row i of arch's forecast is made at the close of observation i, for observation i + 1.
        table = res.forecast(horizon=1, start=int(pos.min()) - 1, reindex=True).variance.to_numpy()[:, 0]
        variance = pd.Series(table[pos - 1] / _SCALE**2, index=days)
        nu = pd.Series(float(self.params[-1]), index=days) if self.dist == "t" else None
        return Forecast(variance, nu)

    def path(self, data: pd.DataFrame, horizon: int) -> np.ndarray:
        res = self._fixed(data["ret"])
        method = "simulation" if self.vol == "egarch" and horizon > 1 else "analytic"
        fc = res.forecast(horizon=horizon, reindex=False, method=method, simulations=500)
        return np.asarray(fc.variance.to_numpy()[-1] / _SCALE**2)


@dataclass(frozen=True)
class GARCH:
    """GARCH(1,1), GJR-GARCH(1,1,1) or EGARCH(1,1,1) with a constant mean, normal or Student-t errors."""

    vol: Vol = "garch"
    dist: Dist = "t"
    min_history: int = 250

    @property
    def name(self) -> str:
        return f"{self.vol}-{'t' if self.dist == 't' else 'n'}"

    def fit(self, history: pd.DataFrame) -> _FittedGARCH:
        _require(history, self.min_history, self.name)
        model = _arch_model(history["ret"], self.vol, self.dist)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = model.fit(disp="off", show_warning=True)
        if caught or res.convergence_flag != 0:
            warnings.warn(
                f"{self.name}: optimiser did not converge cleanly on {len(history)} days",
                NumericalWarning,
                stacklevel=2,
            )
        return _FittedGARCH(np.asarray(res.params), self.vol, self.dist)


# --- EWMA / RiskMetrics ---------------------------------------------------------------------------


def _ewma(returns: np.ndarray, lam: float, seed_days: int) -> np.ndarray:
    """h[i] is the forecast for observation i made at the close of i − 1."""
    h = np.empty(len(returns))
    h[0] = float(np.mean(returns[:seed_days] ** 2)) if len(returns) else 0.0
    for i in range(1, len(returns)):
        h[i] = lam * h[i - 1] + (1.0 - lam) * returns[i - 1] ** 2
    return h


@dataclass(frozen=True)
class _FittedEWMA:
    lam: float
    seed_days: int

    def forecast(self, data: pd.DataFrame, days: pd.DatetimeIndex) -> Forecast:
        pos = _positions(data, days)
        # A one-observation seed from the first `seed_days` rows: earlier than any forecast day.
        returns = data["ret"].fillna(0.0).to_numpy()[: pos.max() + 1]
        h = _ewma(returns, self.lam, self.seed_days)
        return Forecast(pd.Series(h[pos], index=days))

    def path(self, data: pd.DataFrame, horizon: int) -> np.ndarray:
        returns = data["ret"].fillna(0.0).to_numpy()
        h = _ewma(np.append(returns, 0.0), self.lam, self.seed_days)
        return np.full(horizon, h[-1])


@dataclass(frozen=True)
class EWMA:
    """RiskMetrics exponentially weighted variance (λ = 0.94 for daily data)."""

    lam: float = 0.94
    min_history: int = 30

    @property
    def name(self) -> str:
        return "ewma"

    def fit(self, history: pd.DataFrame) -> _FittedEWMA:
        if not 0.0 < self.lam < 1.0:
            raise ValueError(f"lam must be in (0, 1), got {self.lam}")
        _require(history, self.min_history, self.name)
        return _FittedEWMA(self.lam, self.min_history)


# --- HAR family -----------------------------------------------------------------------------------


def _har_design(target: pd.Series, exog: pd.DataFrame | None, log: bool) -> pd.DataFrame:
    """Regressors known at the close of each day (daily, weekly and monthly averages, then exogenous)."""
    level = np.log(target.clip(lower=_FLOOR)) if log else target
    design = pd.DataFrame(
        {
            "d": level,
            "w": level.rolling(5).mean(),
            "m": level.rolling(22).mean(),
        },
        index=target.index,
    )
    if exog is not None:
        design = design.join(exog)
    design.insert(0, "const", 1.0)
    return design


def _transform(target: pd.Series, log: bool) -> pd.Series:
    return np.log(target.clip(lower=_FLOOR)) if log else target


@dataclass(frozen=True)
class _FittedHAR:
    beta: np.ndarray
    resid_var: float
    log: bool
    features: tuple[str, ...]

    def _level(self, prediction: np.ndarray) -> np.ndarray:
        if self.log:
            # exp of a conditional mean of logs under-states the mean of levels: lognormal correction.
            return np.asarray(np.exp(prediction + 0.5 * self.resid_var))
        return np.asarray(np.maximum(prediction, _FLOOR))

    def forecast(self, data: pd.DataFrame, days: pd.DatetimeIndex) -> Forecast:
        pos = _positions(data, days)
        exog = data[list(self.features)] if self.features else None
        design = _har_design(data["target"], exog, self.log).to_numpy()
        prediction = design[pos - 1] @ self.beta
        return Forecast(pd.Series(self._level(prediction), index=days))

    def path(self, data: pd.DataFrame, horizon: int) -> np.ndarray:
        target = data["target"].copy()
        extended = data.copy()
        out = []
        for _ in range(horizon):
            exog = extended[list(self.features)] if self.features else None
            row = _har_design(target, exog, self.log).to_numpy()[-1]
            value = float(self._level(np.array([row @ self.beta]))[0])
            out.append(value)
            day = target.index[-1] + pd.Timedelta(days=1)
            target.loc[day] = value
            # Exogenous features are held at their last value over the horizon.
            extended.loc[day] = extended.iloc[-1]
        return np.asarray(out)


@dataclass(frozen=True)
class HAR:
    """HAR (Corsi, 2009) on the realised measure, in levels or in logs, with optional exogenous columns."""

    log: bool = True
    features: tuple[str, ...] = ()
    min_history: int = 100

    @property
    def name(self) -> str:
        base = "log-har" if self.log else "har"
        return f"{base}-x" if self.features else base

    def fit(self, history: pd.DataFrame) -> _FittedHAR:
        import statsmodels.api as sm

        _require(history, self.min_history, self.name)
        missing = [f for f in self.features if f not in history.columns]
        if missing:
            raise ValueError(f"{self.name}: feature columns missing from the data: {', '.join(missing)}")
        exog = history[list(self.features)] if self.features else None
        design = _har_design(history["target"], exog, self.log).shift(1)
        frame = design.assign(y=_transform(history["target"], self.log)).dropna()
        x = frame.drop(columns="y").to_numpy()
        # A feature constant over the whole window (on-chain data not yet available) carries no
        # information: leave it out of the fit, with a zero coefficient.
        varying = np.r_[True, x[:, 1:].std(axis=0) > 0]
        res = sm.OLS(frame["y"].to_numpy(), x[:, varying]).fit()
        beta = np.zeros(x.shape[1])
        beta[varying] = np.asarray(res.params)
        return _FittedHAR(beta, float(res.mse_resid), self.log, self.features)


# --- Blends ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FittedBlend:
    parts: tuple[Fitted, ...]

    def forecast(self, data: pd.DataFrame, days: pd.DatetimeIndex) -> Forecast:
        logs = [np.log(p.forecast(data, days).variance) for p in self.parts]
        return Forecast(pd.Series(np.exp(np.mean(logs, axis=0)), index=days))

    def path(self, data: pd.DataFrame, horizon: int) -> np.ndarray:
        logs = [np.log(p.path(data, horizon)) for p in self.parts]
        return np.asarray(np.exp(np.mean(logs, axis=0)))


@dataclass(frozen=True)
class Blend:
    """Geometric mean of several models' variance forecasts (equal weights, no fitted combination)."""

    models: tuple[VolatilityModel, ...]
    label: str = "blend"

    @property
    def name(self) -> str:
        return self.label

    @property
    def min_history(self) -> int:
        return max(m.min_history for m in self.models)

    def fit(self, history: pd.DataFrame) -> _FittedBlend:
        return _FittedBlend(tuple(m.fit(history) for m in self.models))
