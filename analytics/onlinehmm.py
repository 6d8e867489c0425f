"""A Gaussian HMM whose parameters move with every bar: online EM with a forgetting factor.

`HMMRegimes` (analytics/hmm.py) is re-estimated by batch EM on a schedule. `OnlineHMM` is fitted by batch
EM once, on the first `init_days` of the data (maximum likelihood for the historical fit), and from then on
each bar updates both the filtered state probabilities and the parameters:

1. filter: predicted = αₜ₋₁ A, αₜ ∝ predicted ⊙ N(xₜ; μ, σ²); the pair posterior
   ξₜ(i, j) = P(sₜ₋₁ = i, sₜ = j | x₀..ₜ) comes out of the same step;
2. statistics: Sₜ = λ Sₜ₋₁ + (αₜ, αₜ xₜ, αₜ xₜ², ξₜ), with λ the forgetting factor;
3. M-step: μ = S₁/S₀, σ² = S₂/S₀ − μ², A = row-normalised Σ ξ, each computed from Sₜ plus a fixed prior of
   `prior_days` days at the batch estimates (a conjugate prior: its MAP keeps a state that has not been
   visited for a long time at its batch values instead of letting it collapse).

The statistics start as 1/(1 − λ) days (at most `init_days`) at the batch estimates, so the first online
parameters are the batch ones. It is the simple version of online EM: the statistics use filtered
probabilities, not smoothed ones (Cappé 2011 carries a smoothing recursion to be exact), so day t's
parameters are a function of days up to t only, which is the point. λ is chosen before the evaluation window
(`analytics.recalibration.choose`, scoring the variance forecasts of `RegimeVolatility`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from analytics.baselines import Forecast, InsufficientHistoryError, _positions
from analytics.hmm import HMMFit, HMMRegimes
from analytics.recursive import RecalibrationError
from analytics.regimes import Signal, signal_values

__all__ = ["OnlineHMM", "OnlineHMMFit", "RegimeVolatility", "Statistics", "online_step"]

_VAR_FLOOR = 1e-4


@dataclass(frozen=True)
class Statistics:
    """Discounted sufficient statistics of a Gaussian HMM: Σγ, Σγx, Σγx² per state and Σξ per pair."""

    weight: np.ndarray
    first: np.ndarray
    second: np.ndarray
    pairs: np.ndarray

    def __add__(self, other: Statistics) -> Statistics:
        return Statistics(
            self.weight + other.weight,
            self.first + other.first,
            self.second + other.second,
            self.pairs + other.pairs,
        )

    def scaled(self, factor: float) -> Statistics:
        return Statistics(
            self.weight * factor, self.first * factor, self.second * factor, self.pairs * factor
        )

    def params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(means, variances, transition matrix): the M-step."""
        means = self.first / self.weight
        variances = np.maximum(self.second / self.weight - means**2, _VAR_FLOOR)
        return means, variances, self.pairs / self.pairs.sum(axis=1, keepdims=True)

    @classmethod
    def at(cls, means: np.ndarray, variances: np.ndarray, transmat: np.ndarray, days: float) -> Statistics:
        """`days` days of evidence spread over the states as the chain's stationary distribution."""
        weight = days * stationary(transmat)
        return cls(weight, weight * means, weight * (variances + means**2), weight[:, None] * transmat)


def stationary(transmat: np.ndarray) -> np.ndarray:
    """π with π A = π and Σπ = 1 (least squares, so a reducible chain still gets an answer)."""
    k = len(transmat)
    system = np.vstack([transmat.T - np.eye(k), np.ones(k)])
    pi, *_ = np.linalg.lstsq(system, np.r_[np.zeros(k), 1.0], rcond=None)
    pi = np.clip(pi, 1e-6, None)
    return np.asarray(pi / pi.sum())


def _log_density(x: float, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    return np.asarray(-0.5 * (np.log(2.0 * np.pi * variances) + (x - means) ** 2 / variances))


@dataclass(frozen=True)
class Step:
    """One bar's filtered probabilities (states unordered), its log predictive density and the statistics."""

    alpha: np.ndarray
    log_density: float
    stats: Statistics


def online_step(
    stats: Statistics, prior: Statistics, alpha: np.ndarray, x: float, forgetting: float, learn: bool = True
) -> Step:
    """Filter one observation with the current parameters, then (if `learn`) update the statistics."""
    means, variances, transmat = (stats + prior).params()
    with np.errstate(divide="ignore"):
        log_joint = np.log(alpha)[:, None] + np.log(transmat) + _log_density(x, means, variances)[None, :]
    log_z = float(logsumexp(log_joint))
    xi = np.exp(log_joint - log_z)
    post = xi.sum(axis=0)
    if not learn:
        return Step(post, log_z, stats)
    new = Statistics(post, post * x, post * x * x, xi)
    return Step(post, log_z, stats.scaled(forgetting) + new)


@dataclass(frozen=True)
class _Path:
    """Per day: filtered and next-day predicted probabilities, and the parameters after the day."""

    filtered: np.ndarray
    predicted: np.ndarray
    means: np.ndarray
    variances: np.ndarray


@dataclass(frozen=True)
class OnlineHMMFit:
    """The batch start and the parameters reached at the end of the fitted history."""

    model: OnlineHMM
    start: HMMFit
    first_day: pd.Timestamp
    final_variances: np.ndarray = field(repr=False)

    @property
    def k(self) -> int:
        return self.model.k

    @property
    def scale(self) -> float:
        return self.start.scale

    def _values(self, data: pd.DataFrame) -> np.ndarray:
        if data.index[0] != self.first_day:
            raise RecalibrationError(
                f"{self.model.name}: data must start where the fitted history did ({self.first_day.date()})"
            )
        raw = signal_values(data, self.model.signal).to_numpy()
        return np.asarray((raw - self.start.center) / self.start.scale)

    def _statistics(self) -> tuple[Statistics, Statistics]:
        s = self.start
        memory = self.model.init_days if self.model.forgetting == 1.0 else 1.0 / (1.0 - self.model.forgetting)
        days = min(memory, float(self.model.init_days))
        prior = Statistics.at(s.means, s.variances, s.transmat, self.model.prior_days)
        return Statistics.at(s.means, s.variances, s.transmat, days), prior

    def path(self, data: pd.DataFrame) -> _Path:
        """The online recursion over every row of `data` (which starts where the history did)."""
        values = self._values(data)
        stats, prior = self._statistics()
        # The filter starts from the chain's stationary distribution: hmmlearn's fitted start
        # probabilities describe the first day of the batch window only.
        alpha = stationary(self.start.transmat)
        n, k = len(values), self.model.k
        out = _Path(np.empty((n, k)), np.empty((n, k)), np.empty((n, k)), np.empty((n, k)))
        for t, x in enumerate(values):
            learn = t >= self.model.init_days
            step = online_step(stats, prior, alpha, float(x), self.model.forgetting, learn)
            alpha, stats = step.alpha, step.stats
            means, variances, transmat = (stats + prior).params()
            out.filtered[t], out.predicted[t] = alpha, alpha @ transmat
            out.means[t], out.variances[t] = means, variances
        return out

    def filtered(self, data: pd.DataFrame) -> pd.DataFrame:
        """P(state at t | data up to t), columns 0 (calm) … k − 1 (turbulent) by each day's variances."""
        run = self.path(data)
        order = np.argsort(run.variances, axis=1)
        probs = np.clip(np.take_along_axis(run.filtered, order, axis=1), 0.0, 1.0)
        return pd.DataFrame(probs, index=data.index, columns=range(self.k))

    def daily_vols(self) -> list[float | None]:
        """Each state's daily return volatility at the end of the fitted history, calm first."""
        if self.model.signal != "returns":
            return [None] * self.k
        return [float(np.sqrt(v) * self.scale / 100.0) for v in np.sort(self.final_variances)]

    def predicted(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row t: next-day state probabilities, means and variances given data up to t."""
        run = self.path(data)
        return run.predicted, run.means, run.variances


@dataclass(frozen=True)
class OnlineHMM:
    """k-state Gaussian HMM: batch EM on the first `init_days`, then online EM with forgetting λ."""

    k: Literal[2, 3] = 2
    forgetting: float = 0.995
    init_days: int = 250
    prior_days: float = 10.0
    signal: Signal = "returns"
    restarts: int = 5
    seed: int = 0

    @property
    def name(self) -> str:
        return "hmm-online"

    @property
    def min_history(self) -> int:
        return self.init_days

    def tuned(self, forgetting: float) -> OnlineHMM:
        """The same model with another forgetting factor."""
        return replace(self, forgetting=forgetting)

    def fit(self, history: pd.DataFrame) -> OnlineHMMFit:
        if not 0.0 < self.forgetting <= 1.0:
            raise RecalibrationError(f"{self.name}: forgetting must be in (0, 1], got {self.forgetting}")
        if len(history) < self.init_days:
            needed, got = self.init_days, len(history)
            raise InsufficientHistoryError(
                f"{self.k}-state online HMM needs at least {needed} days of history, got {got}"
            )
        batch = HMMRegimes(self.k, self.signal, self.restarts, self.seed, min_history=self.init_days)
        start = batch.fit(history.iloc[: self.init_days])
        fit = OnlineHMMFit(self, start, pd.Timestamp(history.index[0]), start.variances)
        return replace(fit, final_variances=fit.path(history).variances[-1])


# --- regime models as variance forecasters ---------------------------------------------------------


class _Predictive(Protocol):
    @property
    def scale(self) -> float: ...

    def predicted(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


class _RegimeModel(Protocol):
    """A regime model on daily returns (a variance forecast needs the returns signal)."""

    @property
    def min_history(self) -> int: ...

    def fit(self, history: pd.DataFrame) -> _Predictive: ...


def mixture_variance(probs: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Variance of a Gaussian mixture, row by row."""
    mean = (probs * means).sum(axis=1)
    return np.asarray((probs * (variances + means**2)).sum(axis=1) - mean**2)


@dataclass(frozen=True)
class _FittedRegimeVolatility:
    fit: _Predictive

    def _variance(self, data: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
        probs, means, variances = self.fit.predicted(data.iloc[: int(rows.max()) + 1])
        spread = mixture_variance(probs[rows], means[rows], variances[rows])
        # Back from the standardised signal (returns in percent) to daily log-return variance.
        return np.asarray(spread * (self.fit.scale / 100.0) ** 2)

    def forecast(self, data: pd.DataFrame, days: pd.DatetimeIndex) -> Forecast:
        pos = _positions(data, days)
        return Forecast(pd.Series(self._variance(data, pos - 1), index=days))

    def path(self, data: pd.DataFrame, horizon: int) -> np.ndarray:
        # The chain's parameters hold beyond tomorrow; only the state probabilities move on.
        return np.full(horizon, self._variance(data, np.array([len(data) - 1]))[0])


@dataclass(frozen=True)
class RegimeVolatility:
    """A regime model read as a variance forecaster: the predicted mixture's variance of the next return."""

    regimes: _RegimeModel
    label: str

    @property
    def name(self) -> str:
        return self.label

    @property
    def min_history(self) -> int:
        return self.regimes.min_history

    def tuned(self, forgetting: float) -> RegimeVolatility:
        """The same forecaster over an online HMM with another forgetting factor."""
        if not isinstance(self.regimes, OnlineHMM):
            raise RecalibrationError(f"{self.label}: only the online HMM has a forgetting factor")
        return replace(self, regimes=self.regimes.tuned(forgetting))

    def fit(self, history: pd.DataFrame) -> _FittedRegimeVolatility:
        return _FittedRegimeVolatility(self.regimes.fit(history))
