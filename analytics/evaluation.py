"""Out-of-sample evaluation: losses, Diebold–Mariano, MCS, Mincer–Zarnowitz, VaR backtests, PIT.

Losses compare a variance forecast h with a proxy σ̂² (Patton, 2011):
QLIKE = σ̂²/h − ln(σ̂²/h) − 1 and MSE = (σ̂² − h)².
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

__all__ = [
    "DMResult",
    "LRTest",
    "MZResult",
    "christoffersen",
    "diebold_mariano",
    "hac_lag",
    "kupiec",
    "mincer_zarnowitz",
    "model_confidence_set",
    "mse",
    "mse_loss",
    "pit_ks",
    "qlike",
    "qlike_loss",
    "top_decile_ratio",
]

Alternative = Literal["two-sided", "less", "greater"]


def _arrays(proxy: npt.ArrayLike, forecast: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(proxy, dtype=float)
    h = np.asarray(forecast, dtype=float)
    if y.shape != h.shape:
        raise ValueError(f"proxy and forecast differ in length: {y.shape[0]} and {h.shape[0]}")
    if (h <= 0).any() or not np.isfinite(h).all():
        raise ValueError("forecasts must be positive and finite")
    return y, h


def qlike_loss(proxy: npt.ArrayLike, forecast: npt.ArrayLike) -> np.ndarray:
    """QLIKE per observation; a zero proxy contributes −ln(0) and is floored at 1e-12 of the forecast."""
    y, h = _arrays(proxy, forecast)
    ratio = np.maximum(y / h, 1e-12)
    out: np.ndarray = ratio - np.log(ratio) - 1.0
    return out


def mse_loss(proxy: npt.ArrayLike, forecast: npt.ArrayLike) -> np.ndarray:
    """Squared error per observation."""
    y, h = _arrays(proxy, forecast)
    out: np.ndarray = (y - h) ** 2
    return out


def qlike(proxy: npt.ArrayLike, forecast: npt.ArrayLike) -> float:
    """Mean QLIKE loss."""
    return float(np.mean(qlike_loss(proxy, forecast)))


def mse(proxy: npt.ArrayLike, forecast: npt.ArrayLike) -> float:
    """Mean squared error."""
    return float(np.mean(mse_loss(proxy, forecast)))


def hac_lag(n: int) -> int:
    """Newey–West rule of thumb ⌊4 (T/100)^(2/9)⌋."""
    return int(np.floor(4.0 * (n / 100.0) ** (2.0 / 9.0)))


def _bartlett_variance(x: np.ndarray, lag: int) -> float:
    d = x - x.mean()
    n = len(d)
    total = float(d @ d) / n
    for k in range(1, lag + 1):
        total += 2.0 * (1.0 - k / (lag + 1.0)) * float(d[k:] @ d[:-k]) / n
    return total


@dataclass(frozen=True)
class DMResult:
    """Diebold–Mariano statistic (HLN-corrected), p-value and mean loss difference (model − benchmark)."""

    statistic: float
    pvalue: float
    mean_difference: float


def diebold_mariano(
    loss_model: np.ndarray,
    loss_benchmark: np.ndarray,
    horizon: int = 1,
    alternative: Alternative = "two-sided",
) -> DMResult:
    """Diebold–Mariano test of equal predictive accuracy with the Harvey–Leybourne–Newbold correction.

    d = loss_model − loss_benchmark; HAC (Bartlett) variance with lag ⌊4(T/100)^(2/9)⌋ (at least h − 1);
    the statistic is scaled by sqrt((T + 1 − 2h + h(h − 1)/T) / T) and compared with Student-t(T − 1).
    `alternative="less"` tests whether the model's loss is lower.
    """
    d = np.asarray(loss_model, dtype=float) - np.asarray(loss_benchmark, dtype=float)
    n = len(d)
    if n < 10:
        raise ValueError(f"Diebold–Mariano needs at least 10 loss pairs, got {n}")
    variance = _bartlett_variance(d, max(hac_lag(n), horizon - 1))
    if variance <= 0:
        return DMResult(0.0, 1.0, float(d.mean()))
    dm = float(d.mean()) / np.sqrt(variance / n)
    dm *= np.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    dist = stats.t(n - 1)
    if alternative == "less":
        pvalue = float(dist.cdf(dm))
    elif alternative == "greater":
        pvalue = float(dist.sf(dm))
    else:
        pvalue = float(2.0 * dist.sf(abs(dm)))
    return DMResult(float(dm), pvalue, float(d.mean()))


def model_confidence_set(
    losses: pd.DataFrame, size: float = 0.1, reps: int = 1000, block_size: int = 10, seed: int = 0
) -> dict[str, float]:
    """MCS p-value per model (column) from arch.bootstrap.MCS; a model is in the set when p > size."""
    from arch.bootstrap import MCS

    mcs = MCS(losses, size=size, reps=reps, block_size=block_size, method="R", seed=seed)
    mcs.compute()
    pvalues = mcs.pvalues["Pvalue"]
    return {str(name): float(pvalues.loc[name]) for name in losses.columns}


@dataclass(frozen=True)
class MZResult:
    """Mincer–Zarnowitz σ̂² = a + b·h + e with HAC errors; p-value of the joint test a = 0, b = 1."""

    intercept: float
    slope: float
    r_squared: float
    pvalue: float


def mincer_zarnowitz(proxy: npt.ArrayLike, forecast: npt.ArrayLike) -> MZResult:
    """Mincer–Zarnowitz regression of the proxy on the forecast, HAC (Bartlett) covariance."""
    import statsmodels.api as sm

    y, h = _arrays(proxy, forecast)
    res = sm.OLS(y, sm.add_constant(h)).fit(cov_type="HAC", cov_kwds={"maxlags": hac_lag(len(y))})
    wald = res.wald_test((np.eye(2), np.array([0.0, 1.0])), scalar=True)
    params = np.asarray(res.params)
    return MZResult(float(params[0]), float(params[1]), float(res.rsquared), float(wald.pvalue))


@dataclass(frozen=True)
class LRTest:
    """A likelihood-ratio statistic with its χ² p-value."""

    statistic: float
    pvalue: float
    dof: int


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * np.log(y)


def kupiec(breaches: np.ndarray, p: float) -> LRTest:
    """Kupiec proportion-of-failures test: breaches (0/1) against the nominal rate p; LR ~ χ²(1)."""
    hits = np.asarray(breaches, dtype=int)
    n, x = len(hits), int(hits.sum())
    observed = x / n
    log_null = _xlogy(n - x, 1 - p) + _xlogy(x, p)
    log_alt = _xlogy(n - x, 1 - observed) + _xlogy(x, observed)
    lr = max(-2.0 * (log_null - log_alt), 0.0)
    return LRTest(lr, float(stats.chi2.sf(lr, 1)), 1)


def christoffersen(breaches: np.ndarray) -> LRTest:
    """Christoffersen independence test (first-order Markov against independence); LR ~ χ²(1)."""
    hits = np.asarray(breaches, dtype=int)
    prev, curr = hits[:-1], hits[1:]
    n00 = int(((prev == 0) & (curr == 0)).sum())
    n01 = int(((prev == 0) & (curr == 1)).sum())
    n10 = int(((prev == 1) & (curr == 0)).sum())
    n11 = int(((prev == 1) & (curr == 1)).sum())
    pi0 = n01 / max(n00 + n01, 1)
    pi1 = n11 / max(n10 + n11, 1)
    pi = (n01 + n11) / max(n00 + n01 + n10 + n11, 1)
    log_null = _xlogy(n00 + n10, 1 - pi) + _xlogy(n01 + n11, pi)
    log_alt = _xlogy(n00, 1 - pi0) + _xlogy(n01, pi0) + _xlogy(n10, 1 - pi1) + _xlogy(n11, pi1)
    lr = max(-2.0 * (log_null - log_alt), 0.0)
    return LRTest(lr, float(stats.chi2.sf(lr, 1)), 1)


def conditional_coverage(breaches: np.ndarray, p: float) -> LRTest:
    """Christoffersen conditional coverage: Kupiec + independence, χ²(2)."""
    lr = kupiec(breaches, p).statistic + christoffersen(breaches).statistic
    return LRTest(lr, float(stats.chi2.sf(lr, 2)), 2)


def pit_ks(pit: npt.ArrayLike) -> LRTest:
    """Kolmogorov–Smirnov test of PIT values against U(0, 1) (statistic D, dof unused = 0)."""
    result = stats.kstest(np.asarray(pit, dtype=float), "uniform")
    return LRTest(float(result.statistic), float(result.pvalue), 0)


def top_decile_ratio(proxy: pd.Series, forecast: pd.Series) -> float:
    """Median forecast/realised ratio over the days whose realised measure is in the top decile."""
    threshold = proxy.quantile(0.9)
    top = proxy >= threshold
    return float((forecast[top] / proxy[top]).median())
