"""Multiplicative recalibration of a variance forecaster, estimated on a slice before a cut-off only.

Two factors, each fixed before the evaluation window and applied unchanged to every later forecast:

- `qcal`: c = mean(proxy / forecast) over the calibration slice, the scale that minimises QLIKE there
  (d/dc of mean(p/(cf) − ln(p/(cf)) − 1) vanishes at c = mean(p/f));
- `tcal`: the smallest scale at which the median forecast/realised ratio over the slice's top-decile
  realised days reaches `target_ratio` (a scale multiplies that median), never below 1.

`combo` (in `chainrisk forecast backtest`) is the geometric combination of the other listed models with
simplex weights that minimise QLIKE over the same slice (`combination_weights`), then frozen.

The slice is the model's own out-of-sample forecasts over the `validation_days` days up to `until`, made
from data up to `until` only (later rows are dropped before anything is fitted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from analytics.backtest import BacktestError, one_day_ahead
from analytics.baselines import Forecast, VolatilityModel
from analytics.evaluation import top_decile_ratio

__all__ = [
    "KINDS",
    "Calibration",
    "calibration_factor",
    "combination_weights",
    "combine",
    "factor",
    "pre_cutoff_forecasts",
    "scaled",
    "split_name",
]

Kind = Literal["qcal", "tcal"]
KINDS: tuple[Kind, ...] = ("qcal", "tcal")


@dataclass(frozen=True)
class Calibration:
    until: str = "2019-12-31"
    validation_days: int = 365
    target_ratio: float = 0.6
    refit_every: int = 5


def split_name(name: str) -> tuple[str, Kind | None]:
    """`log-har-tcal` → (`log-har`, `tcal`); a name without a calibration suffix → (name, None)."""
    for kind in KINDS:
        if name.endswith(f"-{kind}"):
            return name[: -len(kind) - 1], kind
    return name, None


def factor(kind: Kind, proxy: pd.Series, forecast: pd.Series, target_ratio: float) -> float:
    if kind == "qcal":
        return float(np.mean(proxy / forecast))
    return max(1.0, target_ratio / top_decile_ratio(proxy, forecast))


def pre_cutoff_forecasts(
    model: VolatilityModel, frame: pd.DataFrame, settings: Calibration, evaluation_start: str
) -> tuple[pd.Series, pd.Series, dict[str, str]]:
    """The model's one-day-ahead forecasts over the slice before `until`, from data up to `until` only."""
    cutoff = pd.Timestamp(settings.until, tz="UTC")
    if cutoff >= pd.Timestamp(evaluation_start, tz="UTC"):
        raise BacktestError(
            f"calibration cut-off {settings.until} must be before the evaluation start {evaluation_start}"
        )
    seen = frame.loc[frame.index <= cutoff]
    if len(seen) < settings.validation_days + model.min_history:
        raise BacktestError(
            f"calibrating {model.name} needs {settings.validation_days + model.min_history} days up to "
            f"{settings.until}, the price file has {len(seen)}"
        )
    start = seen.index[-settings.validation_days]
    fc = one_day_ahead(model, seen, start, seen.index[-1], refit_every=settings.refit_every)
    proxy = seen["target"].loc[fc.variance.index]
    return fc.variance, proxy, {"from": str(start.date()), "to": str(seen.index[-1].date())}


def calibration_factor(
    model: VolatilityModel, frame: pd.DataFrame, kind: Kind, settings: Calibration, evaluation_start: str
) -> tuple[float, dict[str, str]]:
    """The factor for `model`, from its forecasts over the slice before `until`; and the slice's dates."""
    forecast, proxy, window = pre_cutoff_forecasts(model, frame, settings, evaluation_start)
    return factor(kind, proxy, forecast, settings.target_ratio), window


def combination_weights(log_forecasts: np.ndarray, proxy: np.ndarray) -> np.ndarray:
    """Weights on the simplex minimising the QLIKE of exp(log_forecasts @ w) against `proxy`.

    Weights are a softmax of free parameters, so they stay non-negative and sum to one; the start is the
    equal-weight combination.
    """
    from scipy.optimize import minimize

    def weights(theta: np.ndarray) -> np.ndarray:
        e = np.exp(theta - theta.max())
        out: np.ndarray = e / e.sum()
        return out

    def loss(theta: np.ndarray) -> float:
        ratio = proxy * np.exp(-(log_forecasts @ weights(theta)))
        return float(np.mean(ratio - np.log(ratio) - 1.0))

    result = minimize(loss, np.zeros(log_forecasts.shape[1]), method="Nelder-Mead", options={"xatol": 1e-6})
    return weights(np.asarray(result.x))


def combine(forecasts: list[Forecast], w: np.ndarray) -> Forecast:
    """Geometric combination exp(Σ w_i log f_i), normal predictive distribution."""
    logs = np.column_stack([np.log(f.variance.to_numpy()) for f in forecasts])
    return Forecast(pd.Series(np.exp(logs @ w), index=forecasts[0].variance.index))


def scaled(fc: Forecast, value: float) -> Forecast:
    return Forecast(fc.variance * value, fc.nu)
