from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from analytics.evaluation import (
    christoffersen,
    conditional_coverage,
    diebold_mariano,
    hac_lag,
    kupiec,
    mincer_zarnowitz,
    model_confidence_set,
    mse,
    pit_ks,
    qlike,
    top_decile_ratio,
)


def test_qlike_and_mse_values() -> None:
    assert qlike([2.0, 1.0], [1.0, 1.0]) == pytest.approx((2 - math.log(2) - 1) / 2)
    assert qlike([1.0], [1.0]) == 0.0
    assert mse([3.0, 1.0], [1.0, 1.0]) == 2.0


def test_qlike_penalises_under_forecasts_more() -> None:
    assert qlike([1.0], [0.5]) > qlike([1.0], [2.0])


def test_loss_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="forecasts must be positive and finite"):
        qlike([1.0], [0.0])
    with pytest.raises(ValueError, match="proxy and forecast differ in length: 2 and 1"):
        mse([1.0, 2.0], [1.0])


def test_hac_lag_rule() -> None:
    assert hac_lag(100) == 4
    assert hac_lag(1096) == 6


def test_diebold_mariano_equals_hac_t_statistic_with_hln_factor() -> None:
    rng = np.random.default_rng(5)
    n = 500
    e = rng.normal(size=n + 1)
    d = 0.1 + e[1:] + 0.5 * e[:-1]
    res = sm.OLS(d, np.ones(n)).fit(cov_type="HAC", cov_kwds={"maxlags": hac_lag(n), "use_correction": False})
    dm = diebold_mariano(d, np.zeros(n))
    assert dm.statistic == pytest.approx(float(res.tvalues[0]) * math.sqrt((n - 1) / n), rel=1e-10)
    assert dm.pvalue == pytest.approx(2 * stats.t(n - 1).sf(abs(dm.statistic)))
    assert dm.mean_difference == pytest.approx(d.mean())


def test_diebold_mariano_one_sided() -> None:
    rng = np.random.default_rng(6)
    better = rng.exponential(1.0, 400)
    worse = better + 0.2 + rng.normal(0, 0.3, 400)
    assert diebold_mariano(better, worse, alternative="less").pvalue < 0.01
    assert diebold_mariano(better, worse, alternative="greater").pvalue > 0.99


def test_hln_correction_shrinks_multi_step_statistic() -> None:
    rng = np.random.default_rng(7)
    d = rng.normal(0.2, 1.0, 60)
    one, five = diebold_mariano(d, np.zeros(60), 1), diebold_mariano(d, np.zeros(60), 5)
    assert abs(five.statistic) < abs(one.statistic)


def test_kupiec_textbook_values() -> None:
    # No breach in 250 days at 1%: LR = −2·250·ln(0.99).
    zero = kupiec(np.zeros(250), 0.01)
    assert zero.statistic == pytest.approx(-500 * math.log(0.99))
    assert zero.pvalue == pytest.approx(0.02500, abs=1e-4)
    # Jorion's non-rejection region for T = 250, p = 1%, 95% confidence: 1 ≤ N ≤ 6.
    accepted = [n for n in range(12) if kupiec(np.r_[np.ones(n), np.zeros(250 - n)], 0.01).pvalue > 0.05]
    assert accepted == [1, 2, 3, 4, 5, 6]
    assert kupiec(np.r_[np.ones(5), np.zeros(495)], 0.01).statistic == pytest.approx(0.0)


def test_christoffersen_hand_computed() -> None:
    hits = np.array([0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0])
    # Transitions: n00 = 10, n01 = 3, n10 = 3, n11 = 3 (19 pairs).
    n00, n01, n10, n11 = 10, 3, 3, 3
    pi0, pi1, pi = n01 / 13, n11 / 6, 6 / 19
    null = 13 * math.log(1 - pi) + 6 * math.log(pi)
    alt = n00 * math.log(1 - pi0) + n01 * math.log(pi0) + n10 * math.log(1 - pi1) + n11 * math.log(pi1)
    assert christoffersen(hits).statistic == pytest.approx(-2 * (null - alt))
    total = conditional_coverage(hits, 0.05)
    assert total.dof == 2
    assert total.statistic == pytest.approx(kupiec(hits, 0.05).statistic + christoffersen(hits).statistic)


def test_christoffersen_detects_clustering() -> None:
    spread = np.zeros(500)
    spread[::50] = 1
    clustered = np.zeros(500)
    clustered[100:110] = 1
    assert christoffersen(spread).pvalue > 0.3
    assert christoffersen(clustered).pvalue < 0.001


def test_mincer_zarnowitz() -> None:
    rng = np.random.default_rng(8)
    h = rng.lognormal(0, 0.5, 3000)
    proxy = h * rng.chisquare(20, 3000) / 20
    fair = mincer_zarnowitz(proxy, h)
    assert fair.slope == pytest.approx(1.0, abs=0.15)
    assert fair.pvalue > 0.01
    assert mincer_zarnowitz(proxy, 2.0 * h).pvalue < 0.001


def test_pit_ks() -> None:
    rng = np.random.default_rng(9)
    assert pit_ks(rng.uniform(size=1000)).pvalue > 0.05
    assert pit_ks(rng.beta(2, 2, size=1000)).pvalue < 0.001


def test_mcs_drops_a_clearly_worse_model() -> None:
    rng = np.random.default_rng(10)
    base = rng.exponential(1.0, 600)
    losses = pd.DataFrame({"good": base, "same": base + rng.normal(0, 0.05, 600), "bad": base + 0.5})
    pvalues = model_confidence_set(losses, reps=300)
    assert pvalues["good"] > 0.1 and pvalues["bad"] < 0.1


def test_top_decile_ratio() -> None:
    proxy = pd.Series(np.arange(1.0, 101.0))
    assert top_decile_ratio(proxy, proxy * 0.5) == pytest.approx(0.5)
