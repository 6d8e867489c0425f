"""Markov-switching volatility regimes (statsmodels MarkovRegression), filtered in real time.

Two signals are supported: daily returns with a switching variance (the textbook switching-variance
model), and the log of the daily realised measure with a switching level and variance, which separates
calm and turbulent days more sharply. Probabilities are *filtered*: P(regime at t | data up to t).
`rolling_probabilities` re-estimates on a schedule from data strictly before each block, then filters
through the block, so no probability depends on data after its own day.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from analytics.baselines import InsufficientHistoryError, NumericalWarning

__all__ = [
    "STRESS_DATES",
    "MarkovSwitching",
    "RegimeFit",
    "RegimeModel",
    "rolling_probabilities",
    "signal_values",
    "stress_probabilities",
]

Signal = Literal["returns", "log_range"]
STRESS_DATES = ("2020-03-12", "2021-05-19", "2022-05-09", "2022-06-13", "2022-11-09")
# Days with no range (a halted market) would be log-outliers that break EM: floor at 0.1% daily vol.
_FLOOR = 1e-6


def signal_values(data: pd.DataFrame, signal: Signal) -> pd.Series:
    """The series a regime model is fitted on: returns in percent, or the log realised measure."""
    if signal == "returns":
        return data["ret"] * 100.0
    return pd.Series(np.log(data["target"].clip(lower=_FLOOR)), index=data.index)


def _model(values: np.ndarray, k: int, signal: Signal, tvtp: np.ndarray | None) -> Any:
    from statsmodels.tsa.regime_switching.markov_regression import MarkovRegression

    return MarkovRegression(
        values,
        k_regimes=k,
        trend="c",
        switching_trend=signal == "log_range",
        switching_variance=True,
        exog_tvtp=tvtp,
    )


@dataclass(frozen=True)
class RegimeFit:
    """Fitted parameters, the regime order (calm → turbulent) and the per-regime daily volatility."""

    params: np.ndarray
    order: np.ndarray
    center: float
    scale: float
    k: int
    signal: Signal
    tvtp_columns: tuple[str, ...]
    param_names: tuple[str, ...] = ()

    def daily_vols(self) -> list[float | None]:
        """Each regime's daily return volatility (switching-variance on returns only), calm first."""
        if self.signal != "returns":
            return [None] * self.k
        sigma2 = [self.params[self.param_names.index(f"sigma2[{i}]")] for i in self.order]
        return [float(np.sqrt(s) * self.scale / 100.0) for s in sigma2]

    def filtered(self, data: pd.DataFrame) -> pd.DataFrame:
        """Filtered regime probabilities for every day of `data`, columns 0 (calm) … k − 1 (turbulent)."""
        values = (signal_values(data, self.signal).to_numpy() - self.center) / self.scale
        tvtp = _tvtp(data, self.tvtp_columns)
        res = _model(values, self.k, self.signal, tvtp).filter(self.params)
        probs = np.asarray(res.filtered_marginal_probabilities)[:, self.order]
        return pd.DataFrame(probs, index=data.index, columns=range(self.k))


class FilteredRegimes(Protocol):
    def filtered(self, data: pd.DataFrame) -> pd.DataFrame: ...

    def daily_vols(self) -> list[float | None]: ...


class RegimeModel(Protocol):
    """What the rolling filter needs: a state count, a history floor and a fit giving a filter."""

    @property
    def k(self) -> int: ...

    @property
    def min_history(self) -> int: ...

    def fit(self, history: pd.DataFrame) -> FilteredRegimes: ...


def _tvtp(data: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray | None:
    if not columns:
        return None
    # Transition into day t depends on signals known at the close of t − 1.
    lagged = data[list(columns)].shift(1).fillna(0.0)
    return np.column_stack([np.ones(len(data)), lagged.to_numpy()])


def _order(model: Any, params: np.ndarray, signal: Signal) -> np.ndarray:
    names = list(model.param_names)
    key = "const" if signal == "log_range" else "sigma2"
    levels = [params[names.index(f"{key}[{i}]")] for i in range(model.k_regimes)]
    return np.argsort(levels)


@dataclass(frozen=True)
class MarkovSwitching:
    """A k-state switching model; `tvtp` names columns that drive time-varying transition probabilities."""

    k: Literal[2, 3] = 2
    signal: Signal = "returns"
    tvtp: tuple[str, ...] = ()
    search_reps: int = 5
    seed: int = 0
    min_history: int = 250

    def fit(self, history: pd.DataFrame) -> RegimeFit:
        if len(history) < self.min_history:
            raise InsufficientHistoryError(
                f"{self.k}-state regime model needs at least {self.min_history} days of history, "
                f"got {len(history)}"
            )
        raw = signal_values(history, self.signal).to_numpy()
        # statsmodels' default start values assume data of order one: standardise with history moments.
        center, scale = float(raw.mean()), float(raw.std())
        values = (raw - center) / scale
        model = _model(values, self.k, self.signal, _tvtp(history, self.tvtp))
        # Without its own generator statsmodels draws the search_reps starts from fresh entropy, so
        # two processes fitting the same history would differ in the fifth digit.
        rng = np.random.default_rng(self.seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = model.fit(disp=False, search_reps=self.search_reps, rng=rng)
            except np.linalg.LinAlgError:
                res = model.fit(disp=False)
        if caught:
            warnings.warn(
                f"{self.k}-state regime model: {caught[0].message} ({len(history)} days)",
                NumericalWarning,
                stacklevel=2,
            )
        params = np.asarray(res.params)
        order = _order(model, params, self.signal)
        names = tuple(model.param_names)
        return RegimeFit(params, order, center, scale, self.k, self.signal, self.tvtp, names)


def rolling_probabilities(
    model: RegimeModel,
    data: pd.DataFrame,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    refit_every: int = 30,
) -> pd.Series:
    """Filtered probability of the most turbulent regime for each day in [start, end], no look-ahead."""
    index = pd.DatetimeIndex(data.index)
    days = index[(index >= _ts(start)) & (index <= _ts(end))]
    parts = []
    for block in range(0, len(days), refit_every):
        block_days = days[block : block + refit_every]
        fit = model.fit(data.loc[index < block_days[0]])
        visible = data.loc[index <= block_days[-1]]
        parts.append(fit.filtered(visible)[model.k - 1].loc[block_days])
    out: pd.Series = pd.concat(parts).rename("p_high")
    return out


def stress_probabilities(
    model: RegimeModel, data: pd.DataFrame, dates: tuple[str, ...] = STRESS_DATES, refit_every: int = 30
) -> dict[str, float | None]:
    """P(turbulent) at the close of each stress date, from a fit on data before that date's refit block."""
    index = pd.DatetimeIndex(data.index)
    out: dict[str, float | None] = {}
    for date in dates:
        day = _ts(date)
        if day not in index or (index < day).sum() < model.min_history:
            out[date] = None
            continue
        # The refit block that contains the date starts at a multiple of refit_every days before it.
        offset = int((index < day).sum()) % refit_every
        refit_at = index[index < day][-offset] if offset else day
        fit = model.fit(data.loc[index < refit_at])
        out[date] = float(fit.filtered(data.loc[index <= day])[model.k - 1].iloc[-1])
    return out


def _ts(value: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
