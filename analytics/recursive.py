"""log-HAR and HAR-X whose coefficients are updated with every new bar (Bayesian, with forgetting).

The regression of tomorrow's log realised measure on today's HAR regressors (and exogenous columns) is
given a normal–inverse-gamma (NIG) prior: β | σ² ~ N(m₀, σ² Λ₀⁻¹), σ² ~ IG(a₀, b₀). Each bar updates the
posterior in information form; before it does, the evidence gathered so far is discounted by the
forgetting factor λ toward the prior (stabilised forgetting), so a day k bars back weighs λᵏ:

    Λₜ = λ (Λₜ₋₁ − Λ₀) + Λ₀ + x xᵀ          ηₜ = λ (ηₜ₋₁ − η₀) + η₀ + x y        (η = Λ m)
    aₜ = λ (aₜ₋₁ − a₀) + a₀ + ½             cₜ = λ (cₜ₋₁ − c₀) + c₀ + y²         (b = ½ (c − ηᵀ Λ⁻¹ η))

With λ = 1 this is the textbook conjugate update: the posterior mean is the ridge solution
(Λ₀ + XᵀX)⁻¹ (Λ₀ m₀ + Xᵀy), and with Λ₀ = 0 it is OLS, so the recursion is recursive least squares in
information form. With λ < 1 it is exponentially weighted ridge regression; the prior is never discounted,
which keeps Λ invertible however long a regressor stays constant. The prior here is m₀ = 0 with precision κ
times each slope's variance over the first `min_history` usable days (the intercept is left free): κ
pseudo-days of evidence for "no effect", fixed at the start so the recursion never depends on when it was
started. The forecast is exp(xᵀm + ½ b/a), the lognormal mean correction of `HAR(log=True)` with the
posterior's noise variance. The parameter-uncertainty term of the predictive variance, (b/a) xᵀΛ⁻¹x, is left
out on purpose: a column that has not varied yet (an on-chain source before its first day) carries only the
prior's spread, and the term would inflate the forecast by orders of magnitude on the day the source starts,
for no information about volatility.

λ is not a free knob at evaluation time: `analytics.recalibration.choose` picks it from a grid on the year
before the evaluation window, from data up to the day before it only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analytics.baselines import Forecast, _har_design, _positions, _require
from analytics.errors import AnalyticsError

__all__ = ["FORGETTING_GRID", "NIGPrior", "NIGState", "RecalibrationError", "RecursiveHAR", "nig_update"]

# Effective memories 1/(1 − λ) of about 33, 50, 100, 200, 500 and 1,000 days, and no forgetting.
FORGETTING_GRID = (0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 1.0)
_FLOOR = 1e-10


class RecalibrationError(AnalyticsError, ValueError):
    """A recalibrating model asked for something it cannot do; the message names the option."""


@dataclass(frozen=True)
class NIGPrior:
    """β | σ² ~ N(mean, σ² precision⁻¹), σ² ~ inverse-gamma(shape, rate)."""

    mean: np.ndarray
    precision: np.ndarray
    shape: float = 1.0
    rate: float = 0.5

    def state(self) -> NIGState:
        """The prior as a posterior that has seen no data."""
        moment = self.precision @ self.mean
        return NIGState(self.precision, moment, self.shape, 2.0 * self.rate + float(self.mean @ moment))


@dataclass(frozen=True)
class NIGState:
    """Posterior in information form: precision Λ, η = Λ m, shape a and c = 2b + ηᵀm."""

    precision: np.ndarray
    moment: np.ndarray
    shape: float
    energy: float

    def mean(self) -> np.ndarray:
        return np.asarray(np.linalg.solve(self.precision, self.moment))

    def rate(self) -> float:
        return 0.5 * (self.energy - float(self.moment @ self.mean()))

    def noise_variance(self) -> float:
        """b / a: the posterior's estimate of the residual variance."""
        return max(self.rate() / self.shape, _FLOOR)


def _discounted(value: np.ndarray, prior: np.ndarray, forgetting: float) -> np.ndarray:
    return np.asarray(forgetting * (value - prior) + prior)


def nig_update(state: NIGState, prior: NIGState, x: np.ndarray, y: float, forgetting: float) -> NIGState:
    """One bar: past evidence discounted by `forgetting` toward the prior, then (x, y) added."""
    return NIGState(
        _discounted(state.precision, prior.precision, forgetting) + np.outer(x, x),
        _discounted(state.moment, prior.moment, forgetting) + x * y,
        forgetting * (state.shape - prior.shape) + prior.shape + 0.5,
        forgetting * (state.energy - prior.energy) + prior.energy + y * y,
    )


def nig_batch(prior: NIGState, x: np.ndarray, y: np.ndarray, forgetting: float) -> NIGState:
    """The state `nig_update` reaches from the prior after rows x, y in order, in one weighted sum."""
    weights = forgetting ** np.arange(len(y) - 1, -1, -1, dtype=float)
    wx = x * weights[:, None]
    return NIGState(
        prior.precision + wx.T @ x,
        prior.moment + wx.T @ y,
        prior.shape + 0.5 * float(weights.sum()),
        prior.energy + float(weights @ (y * y)),
    )


@dataclass(frozen=True)
class _Pairs:
    """Regressors known at each day's close (row t) and the log target of each day (row t)."""

    x: np.ndarray
    y: np.ndarray

    def usable(self, row: int) -> bool:
        """Whether (x[row − 1], y[row]) is a complete training pair."""
        return row >= 1 and bool(np.isfinite(self.x[row - 1]).all() and np.isfinite(self.y[row]))


def _pairs(data: pd.DataFrame, features: tuple[str, ...]) -> _Pairs:
    exog = data[list(features)].astype(float) if features else None
    design = _har_design(data["target"], exog, log=True).to_numpy(dtype=float)
    return _Pairs(design, np.log(data["target"].clip(lower=_FLOOR).to_numpy(dtype=float)))


@dataclass(frozen=True)
class _FittedRecursive:
    model: RecursiveHAR
    prior: NIGState
    state: NIGState
    first_day: pd.Timestamp
    last_day: pd.Timestamp

    def _start(self, data: pd.DataFrame) -> int:
        if data.index[0] != self.first_day:
            raise RecalibrationError(
                f"{self.model.name}: data must start where the fitted history did ({self.first_day.date()})"
            )
        return int(data.index.get_indexer(pd.DatetimeIndex([self.last_day]))[0])

    def _predict(self, state: NIGState, x: np.ndarray) -> float:
        return float(np.exp(x @ state.mean() + 0.5 * state.noise_variance()))

    def _learn(self, state: NIGState, pairs: _Pairs, row: int) -> NIGState:
        if not pairs.usable(row):
            return state
        return nig_update(state, self.prior, pairs.x[row - 1], pairs.y[row], self.model.forgetting)

    def _walk(self, data: pd.DataFrame, targets: np.ndarray) -> list[float]:
        """Forecasts for rows `targets` (increasing), each after updating with every earlier row."""
        pairs = _pairs(data.iloc[: int(targets.max()) + 1], self.model.features)
        state, row, out = self.state, self._start(data), []
        for target in targets:
            while row < target - 1:
                row += 1
                state = self._learn(state, pairs, row)
            out.append(self._predict(state, pairs.x[target - 1]))
        return out

    def forecast(self, data: pd.DataFrame, days: pd.DatetimeIndex) -> Forecast:
        pos = _positions(data, days)
        if (np.diff(pos) <= 0).any() or pos.min() <= self._start(data):
            raise RecalibrationError(f"{self.model.name}: forecast days must follow the history, in order")
        return Forecast(pd.Series(self._walk(data, pos), index=days))

    def path(self, data: pd.DataFrame, horizon: int) -> np.ndarray:
        # Beyond tomorrow there is no new bar to learn from: the one-day forecast is held flat.
        one = self._walk(data, np.array([len(data)]))
        return np.full(horizon, one[0])


@dataclass(frozen=True)
class RecursiveHAR:
    """log-HAR (or HAR-X with `features`) with a conjugate NIG update of its coefficients on every bar.

    `forgetting` λ in (0, 1] discounts past bars (memory about 1/(1 − λ) days); `prior_days` κ ≥ 0 is the
    prior's weight on zero slopes, in days of evidence.
    """

    features: tuple[str, ...] = ()
    forgetting: float = 0.99
    prior_days: float = 1.0
    min_history: int = 100

    @property
    def name(self) -> str:
        return "log-har-x-rls" if self.features else "log-har-rls"

    def tuned(self, forgetting: float) -> RecursiveHAR:
        """The same model with another forgetting factor (what `recalibration.choose` varies)."""
        return replace(self, forgetting=forgetting)

    def _check(self, history: pd.DataFrame) -> None:
        if not 0.0 < self.forgetting <= 1.0:
            raise RecalibrationError(f"{self.name}: forgetting must be in (0, 1], got {self.forgetting}")
        if self.prior_days < 0.0:
            raise RecalibrationError(f"{self.name}: prior_days must be at least 0, got {self.prior_days}")
        _require(history, self.min_history, self.name)
        missing = [f for f in self.features if f not in history.columns]
        if missing:
            raise RecalibrationError(
                f"{self.name}: feature columns missing from the data: {', '.join(missing)}"
            )

    def prior(self, x: np.ndarray) -> NIGState:
        """Zero slopes with κ days of evidence, scaled by each slope's spread over the first usable days."""
        head = x[: self.min_history]
        spread = head.std(axis=0)
        spread = np.where(spread > 0, spread, 1.0)
        spread[0] = 0.0  # the intercept is left free
        return NIGPrior(np.zeros(x.shape[1]), np.diag(self.prior_days * spread**2)).state()

    def fit(self, history: pd.DataFrame) -> _FittedRecursive:
        self._check(history)
        pairs = _pairs(history, self.features)
        rows = [row for row in range(1, len(history)) if pairs.usable(row)]
        x, y = pairs.x[np.array(rows) - 1], pairs.y[np.array(rows)]
        prior = self.prior(x)
        state = nig_batch(prior, x, y, self.forgetting)
        return _FittedRecursive(
            self, prior, state, pd.Timestamp(history.index[0]), pd.Timestamp(history.index[-1])
        )
