"""Tail measures over many scenarios: VaR, Expected Shortfall, their bootstrap intervals, scenario draws.

    factors = student_t_scenarios(corr, vol, df=4, n=10_000, rng=np.random.default_rng(7))
    losses = ...  # bad debt per scenario, from running the cascade on each row of factors.factors
    summary = tail_summary(losses, b=1_000, rng=np.random.default_rng(7))

Conventions (pure numpy, no database; every input is an array):

* Losses are positive: a loss sample is the bad debt (or any loss) per scenario, one number a scenario.
* ``VaR_q`` is the q-quantile of the loss sample, the 95th/99th percentile that risk teams publish, taken as
  the empirical distribution's lower quantile ``L_(k)`` with ``k = ceil(n q)`` (sorted ascending, 1-based):
  numpy's ``inverted_cdf`` method, no interpolation, so VaR is always an observed loss.
* ``ES_q`` is ``E[L | L >= VaR_q]`` in the Acerbi–Tasche form for a discrete sample: the mean of the worst
  ``n (1 - q)`` losses, the atom at ``VaR_q`` counted with the weight ``k/n - q`` that makes the tail mass
  exactly ``1 - q``::

      ES_q = ( sum_{i > k} L_(i) / n + (k/n - q) L_(k) ) / (1 - q)

  It equals the plain conditional mean when no atom straddles the quantile, and unlike it stays coherent
  (and does not collapse to the overall mean) on bad-debt samples where most scenarios lose exactly zero.
  ``ES_q >= VaR_q`` always.
* Intervals are percentile bootstraps: ``b`` resamples of the scenarios with replacement, the measure on
  each, and the ``(1 - c)/2`` and ``(1 + c)/2`` quantiles of those estimates.

Scenario generators return multiplicative price factors (new price / today's price) per scenario and
asset, from log returns: a multivariate Student-t with a given correlation and per-asset volatility, or
filtered historical simulation (standardised residual vectors rescaled by today's volatility). Named stress
days are appended as given rows of factors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from graph.errors import GraphError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Measure = Callable[[FloatArray, float], FloatArray]

# The levels risk teams publish (Chaos, Gauntlet) and the Basel ES level.
PUBLISHED_LEVELS: tuple[tuple[str, str, float], ...] = (
    ("VaR95", "var", 0.95),
    ("VaR99", "var", 0.99),
    ("ES97.5", "es", 0.975),
    ("ES99", "es", 0.99),
)


class TailInputError(GraphError, ValueError):
    """A loss sample, level, correlation, volatility or scenario input the tail measures cannot take."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate and its percentile-bootstrap interval at ``confidence``."""

    point: float
    low: float
    high: float
    confidence: float


@dataclass(frozen=True, slots=True)
class Scenarios:
    """Price factors, one row per scenario and one column per asset; the last ``len(stress)`` rows are the
    named stress days, in the order given."""

    factors: FloatArray
    stress: tuple[str, ...]


# --- checks -----------------------------------------------------------------------------------------------


def _losses(losses: ArrayLike, name: str = "losses") -> FloatArray:
    array = np.asarray(losses, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise TailInputError(f"{name}: expected a non-empty 1-D sample, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise TailInputError(f"{name}: contains NaN or infinite values")
    return array


def _level(q: float) -> float:
    if not (isinstance(q, float | int) and 0.0 < float(q) < 1.0):
        raise TailInputError(f"level: expected a number strictly between 0 and 1, got {q!r}")
    return float(q)


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise TailInputError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _vol(vol: ArrayLike) -> FloatArray:
    array = np.asarray(vol, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise TailInputError(f"vol: expected a non-empty 1-D vector, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise TailInputError("vol: expected finite non-negative volatilities")
    return array


def _correlation(corr: ArrayLike, k: int) -> FloatArray:
    matrix = np.asarray(corr, dtype=np.float64)
    if matrix.shape != (k, k):
        raise TailInputError(f"corr: expected a {k}x{k} matrix (one row per asset), got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)) or not np.allclose(matrix, matrix.T, atol=1e-12):
        raise TailInputError("corr: expected a finite symmetric matrix")
    if not np.allclose(np.diag(matrix), 1.0, atol=1e-12):
        raise TailInputError("corr: expected ones on the diagonal")
    try:
        # Cholesky both checks positive definiteness and gives the factor the draws need.
        return np.linalg.cholesky(matrix).astype(np.float64)
    except np.linalg.LinAlgError as exc:
        raise TailInputError("corr: not positive definite") from exc


# --- VaR and ES -------------------------------------------------------------------------------------------


def _rank(n: int, q: float) -> int:
    # ceil(n q) with a relative tolerance, so that an n q that is an integer in exact arithmetic
    # (0.95 * 10_000 = 9500.000000000002 in floating point) is not pushed one rank up.
    return max(1, min(n, math.ceil(n * q * (1.0 - 1e-12))))


def _var_sorted(ordered: FloatArray, q: float) -> FloatArray:
    """VaR along the last axis of an ascending-sorted array."""
    return ordered[..., _rank(ordered.shape[-1], q) - 1]


def _es_sorted(ordered: FloatArray, q: float) -> FloatArray:
    """Acerbi–Tasche ES along the last axis of an ascending-sorted array."""
    n = ordered.shape[-1]
    k = _rank(n, q)
    beyond = ordered[..., k:].sum(axis=-1) / n
    atom = (k / n - q) * ordered[..., k - 1]
    result: FloatArray = (beyond + atom) / (1.0 - q)
    # The weighted sum can land a rounding error below VaR; ES >= VaR holds exactly in real arithmetic.
    return np.maximum(result, ordered[..., k - 1])


_MEASURES: dict[str, Measure] = {"var": _var_sorted, "es": _es_sorted}


def value_at_risk(losses: ArrayLike, q: float) -> float:
    """VaR at level ``q``: the empirical lower q-quantile ``L_(ceil(n q))`` of the losses."""
    return float(_var_sorted(np.sort(_losses(losses)), _level(q)))


def expected_shortfall(losses: ArrayLike, q: float) -> float:
    """ES at level ``q``: the mean of the worst ``1 - q`` of the sample (Acerbi–Tasche, atom split)."""
    return float(_es_sorted(np.sort(_losses(losses)), _level(q)))


def liquidations_at_risk(liquidated: ArrayLike, q: float = 0.95) -> float:
    """LaR: the q-quantile (default the 95th percentile) of liquidated value per scenario, as VaR."""
    return float(_var_sorted(np.sort(_losses(liquidated, "liquidated")), _level(q)))


# --- bootstrap --------------------------------------------------------------------------------------------


def bootstrap_interval(
    losses: ArrayLike,
    measure: str,
    q: float,
    *,
    b: int,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> Interval:
    """Percentile-bootstrap interval of ``measure`` ("var" or "es") at level ``q``.

    All ``b`` resamples are drawn as one ``(b, n)`` index matrix and measured in one sorted pass, so the
    cost is one ``b x n`` sort; keep ``b * n`` within memory (1,000 x 10,000 floats is 80 MB).
    """
    sample = _losses(losses)
    level = _level(q)
    if measure not in _MEASURES:
        raise TailInputError(f"measure: expected one of {sorted(_MEASURES)}, got {measure!r}")
    resamples = _positive_int(b, "b")
    conf = _level(confidence)
    fn = _MEASURES[measure]
    point = float(fn(np.sort(sample), level))
    drawn = np.sort(sample[rng.integers(0, sample.size, size=(resamples, sample.size))], axis=1)
    estimates = fn(drawn, level)
    low, high = np.quantile(estimates, [(1.0 - conf) / 2.0, (1.0 + conf) / 2.0])
    return Interval(point, float(low), float(high), conf)


def tail_summary(
    losses: ArrayLike, *, b: int, rng: np.random.Generator, confidence: float = 0.95
) -> dict[str, Interval]:
    """VaR95, VaR99, ES97.5 and ES99 with their bootstrap intervals, keyed by those names."""
    return {
        name: bootstrap_interval(losses, measure, q, b=b, rng=rng, confidence=confidence)
        for name, measure, q in PUBLISHED_LEVELS
    }


# --- scenarios --------------------------------------------------------------------------------------------


def _with_stress(factors: FloatArray, stress: Mapping[str, Sequence[float]] | None) -> Scenarios:
    if not stress:
        return Scenarios(factors, ())
    k = factors.shape[1]
    rows = np.asarray([list(row) for row in stress.values()], dtype=np.float64)
    if rows.shape != (len(stress), k):
        raise TailInputError(f"stress: expected {k} price factors per named day")
    if not np.all(np.isfinite(rows)) or np.any(rows <= 0):
        raise TailInputError("stress: expected positive finite price factors (0.83 for a 17 % fall)")
    return Scenarios(np.vstack([factors, rows]), tuple(stress))


def student_t_scenarios(
    corr: ArrayLike,
    vol: ArrayLike,
    *,
    df: float,
    n: int,
    rng: np.random.Generator,
    horizon_days: int = 1,
    stress: Mapping[str, Sequence[float]] | None = None,
) -> Scenarios:
    """Joint ``horizon_days`` log returns from a multivariate Student-t, as price factors ``exp(r)``.

    ``vol`` is each asset's one-day volatility of log returns (today's forecast); the t draws are scaled to
    unit variance (hence ``df > 2``) so that each asset's return has standard deviation
    ``vol * sqrt(horizon_days)`` and the returns have correlation ``corr``. One t draw covers the horizon
    (square-root-of-time scaling), which keeps the joint fat tail instead of averaging it away.
    """
    sigma = _vol(vol)
    chol = _correlation(corr, sigma.size)
    if not (isinstance(df, float | int) and math.isfinite(df) and df > 2):
        raise TailInputError(f"df: expected degrees of freedom above 2 (finite variance), got {df!r}")
    count = _positive_int(n, "n")
    days = _positive_int(horizon_days, "horizon_days")
    normal = rng.standard_normal((count, sigma.size)) @ chol.T
    mixing = np.sqrt(rng.chisquare(df, size=(count, 1)) / df)
    unit = normal / mixing * math.sqrt((df - 2.0) / df)
    return _with_stress(np.exp(unit * sigma * math.sqrt(days)), stress)


def fhs_scenarios(
    residuals: ArrayLike,
    vol: ArrayLike,
    *,
    n: int,
    rng: np.random.Generator,
    horizon_days: int = 1,
    stress: Mapping[str, Sequence[float]] | None = None,
) -> Scenarios:
    """Filtered historical simulation: whole residual rows drawn with replacement, rescaled by ``vol``.

    ``residuals`` holds one row per historical day of standardised residuals (each day's log return over
    that day's volatility forecast), one column per asset; drawing whole rows keeps the assets' joint
    moves. Each scenario's log return is ``vol`` times the sum of ``horizon_days`` drawn rows (today's
    volatility held over the horizon).
    """
    matrix = np.asarray(residuals, dtype=np.float64)
    sigma = _vol(vol)
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] != sigma.size:
        raise TailInputError(
            f"residuals: expected a (days, {sigma.size}) matrix, one column per asset, got {matrix.shape}"
        )
    if not np.all(np.isfinite(matrix)):
        raise TailInputError("residuals: contains NaN or infinite values")
    count = _positive_int(n, "n")
    days = _positive_int(horizon_days, "horizon_days")
    drawn = matrix[rng.integers(0, matrix.shape[0], size=(count, days))].sum(axis=1)
    return _with_stress(np.exp(drawn * sigma), stress)


# --- cascade depth ----------------------------------------------------------------------------------------


def depth_histogram(depths: ArrayLike) -> IntArray:
    """Scenarios per cascade depth: entry ``d`` counts the scenarios with ``d`` liquidation rounds."""
    array = np.asarray(depths)
    if array.ndim != 1:
        raise TailInputError(f"depths: expected a 1-D vector, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer) or np.any(array < 0):
        raise TailInputError("depths: expected non-negative integers")
    return np.bincount(array.astype(np.int64)).astype(np.int64)
