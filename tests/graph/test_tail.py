"""Tail measures: closed-form VaR/ES, bootstrap intervals, seeded scenario draws, input errors.

The reference table of published measures gives definitions only (no numeric vectors), so the checks
are closed forms: an integer grid, a zero-heavy bad-debt sample, and the normal distribution at large n.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from graph.errors import GraphError
from graph.tail import (
    TailInputError,
    bootstrap_interval,
    depth_histogram,
    expected_shortfall,
    fhs_scenarios,
    liquidations_at_risk,
    student_t_scenarios,
    tail_summary,
    value_at_risk,
)

GRID = np.arange(1.0, 101.0)  # losses 1, 2, …, 100 in shuffled order below
CORR = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]])
VOL = np.array([0.04, 0.05, 0.002])


def _shuffled_grid() -> np.ndarray:
    return np.random.default_rng(0).permutation(GRID)


@pytest.mark.parametrize(
    ("q", "var", "es"),
    [
        (0.95, 95.0, 98.0),  # worst five: 96..100
        (0.99, 99.0, 100.0),
        # worst 2.5 losses: 100, 99 and half of 98 → 248 / 2.5
        (0.975, 98.0, 99.2),
    ],
)
def test_grid_closed_form(q: float, var: float, es: float) -> None:
    losses = _shuffled_grid()
    assert value_at_risk(losses, q) == var
    assert expected_shortfall(losses, q) == pytest.approx(es, abs=1e-12)


def test_var_is_numpy_inverted_cdf_quantile() -> None:
    rng = np.random.default_rng(1)
    for n in (1, 7, 100, 1_001):
        losses = rng.exponential(size=n)
        for q in (0.5, 0.95, 0.975, 0.99):
            assert value_at_risk(losses, q) == np.quantile(losses, q, method="inverted_cdf")


def test_zero_heavy_bad_debt_splits_the_atom() -> None:
    # 99 % of scenarios lose nothing: VaR95 is 0 and ES95 is the mean of the worst 5 %, not of everything.
    losses = np.concatenate([np.zeros(990), np.ones(10)])
    assert value_at_risk(losses, 0.95) == 0.0
    assert expected_shortfall(losses, 0.95) == pytest.approx(0.2)
    assert expected_shortfall(losses, 0.99) == pytest.approx(1.0)


def test_normal_large_sample() -> None:
    losses = np.random.default_rng(2).standard_normal(400_000)
    for q in (0.95, 0.975, 0.99):
        z = stats.norm.ppf(q)
        assert value_at_risk(losses, q) == pytest.approx(z, abs=0.02)
        assert expected_shortfall(losses, q) == pytest.approx(stats.norm.pdf(z) / (1 - q), abs=0.03)


def test_es_at_least_var_and_monotone_in_level() -> None:
    rng = np.random.default_rng(3)
    levels = np.linspace(0.5, 0.999, 40)
    for losses in (rng.pareto(2.5, 500), rng.integers(0, 4, 300).astype(float), np.zeros(50)):
        var = [value_at_risk(losses, q) for q in levels]
        es = [expected_shortfall(losses, q) for q in levels]
        assert all(e >= v for e, v in zip(es, var, strict=True))
        assert np.all(np.diff(var) >= 0)
        assert np.all(np.diff(es) >= -1e-12)


def test_liquidations_at_risk_is_p95() -> None:
    assert liquidations_at_risk(_shuffled_grid()) == 95.0
    assert liquidations_at_risk(_shuffled_grid(), 0.99) == 99.0


def test_bootstrap_contains_point_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(4)
    small, large = rng.lognormal(size=500), rng.lognormal(size=8_000)
    for measure, q in (("var", 0.95), ("var", 0.99), ("es", 0.975), ("es", 0.99)):
        a = bootstrap_interval(small, measure, q, b=250, rng=np.random.default_rng(5))
        c = bootstrap_interval(large, measure, q, b=250, rng=np.random.default_rng(5))
        for interval in (a, c):
            assert interval.low <= interval.point <= interval.high
        assert c.high - c.low < a.high - a.low


def test_bootstrap_is_seeded_and_summary_has_published_levels() -> None:
    losses = np.random.default_rng(6).exponential(size=2_000)
    first = tail_summary(losses, b=200, rng=np.random.default_rng(9))
    second = tail_summary(losses, b=200, rng=np.random.default_rng(9))
    assert first == second
    assert list(first) == ["VaR95", "VaR99", "ES97.5", "ES99"]
    assert first["ES99"].point >= first["VaR99"].point
    assert first["VaR95"].point == value_at_risk(losses, 0.95)


def test_same_seed_same_scenarios() -> None:
    a = student_t_scenarios(CORR, VOL, df=4, n=500, rng=np.random.default_rng(11))
    b = student_t_scenarios(CORR, VOL, df=4, n=500, rng=np.random.default_rng(11))
    c = student_t_scenarios(CORR, VOL, df=4, n=500, rng=np.random.default_rng(12))
    assert np.array_equal(a.factors, b.factors)
    assert not np.array_equal(a.factors, c.factors)
    residuals = np.random.default_rng(13).standard_normal((250, 3))
    f1 = fhs_scenarios(residuals, VOL, n=500, rng=np.random.default_rng(11))
    f2 = fhs_scenarios(residuals, VOL, n=500, rng=np.random.default_rng(11))
    assert np.array_equal(f1.factors, f2.factors)


def test_student_t_reproduces_correlation_and_volatility() -> None:
    scenarios = student_t_scenarios(CORR, VOL, df=5, n=200_000, rng=np.random.default_rng(14), horizon_days=4)
    returns = np.log(scenarios.factors)
    assert scenarios.factors.shape == (200_000, 3)
    assert np.all(scenarios.factors > 0)
    assert np.corrcoef(returns, rowvar=False) == pytest.approx(CORR, abs=0.02)
    assert returns.std(axis=0) == pytest.approx(VOL * 2, rel=0.03)
    # Fat tails: positive excess kurtosis (6 / (df - 4) = 6 in theory at df 5; the sample is noisy).
    assert stats.kurtosis(returns[:, 0]) > 1.0


def test_fhs_rescales_to_target_volatility() -> None:
    rng = np.random.default_rng(15)
    residuals = rng.standard_t(6, size=(1_000, 3))
    residuals = (residuals - residuals.mean(axis=0)) / residuals.std(axis=0)  # standardised, as given
    scenarios = fhs_scenarios(residuals, VOL, n=100_000, rng=np.random.default_rng(16))
    returns = np.log(scenarios.factors)
    assert returns.std(axis=0) == pytest.approx(VOL, rel=0.02)
    # Whole rows are drawn, so the historical cross-correlation carries over.
    assert np.corrcoef(returns, rowvar=False) == pytest.approx(np.corrcoef(residuals, rowvar=False), abs=0.02)
    ten_day = fhs_scenarios(residuals, VOL, n=50_000, rng=np.random.default_rng(17), horizon_days=10)
    assert np.log(ten_day.factors).std(axis=0) == pytest.approx(VOL * np.sqrt(10), rel=0.03)


def test_stress_days_appended_as_given() -> None:
    stress = {"2025-02-03": [0.70, 0.90, 1.0], "2024-04-13": [0.83, 0.88, 1.0]}
    scenarios = student_t_scenarios(CORR, VOL, df=4, n=100, rng=np.random.default_rng(18), stress=stress)
    assert scenarios.factors.shape == (102, 3)
    assert scenarios.stress == ("2025-02-03", "2024-04-13")
    assert np.array_equal(scenarios.factors[-2:], np.array(list(stress.values())))
    residuals = np.zeros((5, 3))
    fhs = fhs_scenarios(residuals, VOL, n=3, rng=np.random.default_rng(18), stress=stress)
    assert np.array_equal(fhs.factors[:3], np.ones((3, 3)))
    assert fhs.stress == ("2025-02-03", "2024-04-13")


def test_depth_histogram() -> None:
    assert depth_histogram(np.array([0, 0, 1, 3, 1, 0])).tolist() == [3, 2, 0, 1]
    assert depth_histogram(np.array([], dtype=np.int64)).tolist() == []


@pytest.mark.parametrize(
    "call",
    [
        lambda: value_at_risk([], 0.95),
        lambda: value_at_risk([[1.0, 2.0]], 0.95),
        lambda: value_at_risk([1.0, np.nan], 0.95),
        lambda: value_at_risk([1.0], 1.0),
        lambda: expected_shortfall([1.0], 0.0),
        lambda: bootstrap_interval([1.0, 2.0], "cvar", 0.95, b=10, rng=np.random.default_rng(0)),
        lambda: bootstrap_interval([1.0, 2.0], "var", 0.95, b=0, rng=np.random.default_rng(0)),
        lambda: student_t_scenarios(CORR, VOL[:2], df=4, n=10, rng=np.random.default_rng(0)),
        lambda: student_t_scenarios(CORR, VOL, df=2, n=10, rng=np.random.default_rng(0)),
        lambda: student_t_scenarios(CORR * 2, VOL, df=4, n=10, rng=np.random.default_rng(0)),
        lambda: student_t_scenarios(
            np.array([[1.0, 2.0], [2.0, 1.0]]), VOL[:2], df=4, n=10, rng=np.random.default_rng(0)
        ),
        lambda: student_t_scenarios(CORR, -VOL, df=4, n=10, rng=np.random.default_rng(0)),
        lambda: student_t_scenarios(CORR, VOL, df=4, n=0, rng=np.random.default_rng(0)),
        lambda: fhs_scenarios(np.zeros((5, 2)), VOL, n=10, rng=np.random.default_rng(0)),
        lambda: fhs_scenarios(np.zeros((5, 3)), VOL, n=10, rng=np.random.default_rng(0), horizon_days=0),
        lambda: fhs_scenarios(
            np.zeros((5, 3)), VOL, n=10, rng=np.random.default_rng(0), stress={"x": [0.9, -1.0, 1.0]}
        ),
        lambda: fhs_scenarios(np.zeros((5, 3)), VOL, n=10, rng=np.random.default_rng(0), stress={"x": [0.9]}),
        lambda: depth_histogram(np.array([1, -1])),
        lambda: depth_histogram(np.array([1.5])),
    ],
)
def test_input_errors(call) -> None:
    with pytest.raises(TailInputError) as info:
        call()
    assert isinstance(info.value, GraphError)
    assert isinstance(info.value, ValueError)
