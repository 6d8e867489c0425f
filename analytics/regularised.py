"""HAR-X with a ridge penalty, for many correlated exogenous columns (the whole on-chain feature set).

The regression is log-HAR's (tomorrow's log realised measure on today's daily, weekly and monthly log
levels) plus every feature column, fitted by penalised least squares on columns standardised with the
fitted window's own mean and spread, the intercept left free:

    min over b:  (1/n) Σ (yₜ − ȳ − zₜᵀ b)² + α Σ_{j penalised} b_j²

`penalise="features"` (the default, `log-har-x-ridge`) penalises the exogenous columns only, so α = 0 is
HAR-X and α → ∞ is log-HAR: the penalty decides how far to trust the on-chain columns. `penalise="all"`
(`log-har-x-ridge-all`) shrinks the HAR terms as well, toward a constant forecast. A column constant over
the window carries no information and gets a zero coefficient. The forecast is exp(prediction + ½ s²) with
s² = RSS / (n − 1 − df), df = tr of the ridge hat matrix, so that α = 0 is exactly
`HAR(log=True, features=…)`. α is chosen once, before the evaluation window, by rolling-origin
(time-series) cross-validation on the training part only: `analytics.recalibration.choose` with
`PENALTY_GRID`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from analytics.baselines import _FittedHAR, _har_design, _require, _transform
from analytics.recursive import RecalibrationError

__all__ = ["HAR_TERMS", "PENALTY_GRID", "RidgeHAR", "ridge"]

# α on standardised columns, from none to a penalty a hundred times the columns' own variance.
PENALTY_GRID = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
HAR_TERMS = 3  # daily, weekly and monthly levels come first in the design
Penalise = Literal["features", "all"]


def ridge(
    x: np.ndarray, y: np.ndarray, alpha: float, penalised: np.ndarray | None = None
) -> tuple[np.ndarray, float, float]:
    """(coefficients on the raw columns, intercept, effective degrees of freedom) of the ridge fit.

    `penalised` flags the columns the penalty applies to (default: all). Columns with zero spread are
    left out (coefficient 0).
    """
    n = len(y)
    flags = np.ones(x.shape[1], dtype=bool) if penalised is None else penalised
    centre, spread = x.mean(axis=0), x.std(axis=0)
    keep = spread > 0
    z = (x[:, keep] - centre[keep]) / spread[keep]
    gram = z.T @ z
    inverse = np.linalg.inv(gram + n * alpha * np.diag(flags[keep].astype(float)))
    b = inverse @ (z.T @ (y - y.mean()))
    beta = np.zeros(x.shape[1])
    beta[keep] = b / spread[keep]
    return beta, float(y.mean() - centre @ beta), float(np.trace(inverse @ gram))


@dataclass(frozen=True)
class RidgeHAR:
    """log-HAR plus `features` with a ridge penalty `alpha` on the standardised slopes of the features
    (`penalise="features"`) or of every regressor (`"all"`)."""

    features: tuple[str, ...] = ()
    alpha: float = 0.0
    penalise: Penalise = "features"
    min_history: int = 100

    @property
    def name(self) -> str:
        base = "log-har-x-ridge" if self.features else "log-har-ridge"
        return base if self.penalise == "features" else f"{base}-all"

    def tuned(self, alpha: float) -> RidgeHAR:
        """The same model with another penalty (what `recalibration.choose` varies)."""
        return replace(self, alpha=alpha)

    def _check(self, history: pd.DataFrame) -> None:
        if self.alpha < 0.0:
            raise RecalibrationError(f"{self.name}: alpha must be at least 0, got {self.alpha}")
        if self.penalise not in ("features", "all"):
            raise RecalibrationError(
                f"{self.name}: penalise must be 'features' or 'all', got {self.penalise!r}"
            )
        _require(history, self.min_history, self.name)
        missing = [f for f in self.features if f not in history.columns]
        if missing:
            columns = ", ".join(missing)
            raise RecalibrationError(f"{self.name}: feature columns missing from the data: {columns}")

    def fit(self, history: pd.DataFrame) -> _FittedHAR:
        self._check(history)
        exog = history[list(self.features)].astype(float) if self.features else None
        design = _har_design(history["target"], exog, log=True).shift(1)
        frame = design.assign(y=_transform(history["target"], log=True)).dropna()
        x, y = frame.drop(columns=["const", "y"]).to_numpy(), frame["y"].to_numpy()
        penalised = np.arange(x.shape[1]) >= (HAR_TERMS if self.penalise == "features" else 0)
        slopes, intercept, df = ridge(x, y, self.alpha, penalised)
        resid = y - intercept - x @ slopes
        resid_var = float(resid @ resid / max(len(y) - 1.0 - df, 1.0))
        return _FittedHAR(np.r_[intercept, slopes], resid_var, True, self.features)
