"""The online HMM: its parameters follow the data, its filter and variance forecasts never look ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.baselines import InsufficientHistoryError
from analytics.hmm import HMMRegimes
from analytics.onlinehmm import OnlineHMM, RegimeVolatility, Statistics, mixture_variance, online_step
from analytics.recalibration import ONLINE_BLOCK
from analytics.recursive import RecalibrationError
from analytics.regimes import rolling_probabilities
from tests.analytics.lookahead import assert_no_lookahead, backtest

CALM, TURBULENT = 0.02, 0.06


def _returns(sigmas: np.ndarray, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ret = rng.normal(0.0, sigmas)
    index = pd.date_range("2019-01-01", periods=len(sigmas), freq="D", tz="UTC")
    return pd.DataFrame({"ret": ret, "target": sigmas**2 * rng.chisquare(4, len(sigmas)) / 4}, index=index)


def _alternating(days: int, turbulent: float, seed: int) -> np.ndarray:
    """Calm and turbulent stretches of 40 and 15 days."""
    pattern = np.r_[np.full(40, CALM), np.full(15, turbulent)]
    return np.resize(pattern, days) if seed >= 0 else pattern


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return _returns(_alternating(500, TURBULENT, 0))


def test_statistics_round_trip_the_parameters() -> None:
    means, variances = np.array([0.1, -0.3]), np.array([0.5, 4.0])
    transmat = np.array([[0.95, 0.05], [0.2, 0.8]])
    got = Statistics.at(means, variances, transmat, days=80.0).params()
    for value, expected in zip(got, (means, variances, transmat), strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-12)


def test_the_parameter_update_moves_toward_the_data() -> None:
    # Turbulent stretches twice as volatile after day 300: the online turbulent variance must rise toward
    # the new level, further with shorter memory, while full memory moves less.
    sigmas = np.r_[_alternating(300, TURBULENT, 0), _alternating(330, 2 * TURBULENT, 0)]
    frame = _returns(sigmas, seed=6)
    vols = {
        lam: OnlineHMM(forgetting=lam, init_days=300, restarts=2).fit(frame).daily_vols()
        for lam in (0.98, 1.0)
    }
    start = HMMRegimes(restarts=2, min_history=300).fit(frame.iloc[:300]).daily_vols()
    high = {lam: v[1] for lam, v in vols.items()}
    assert start[1] is not None and all(v is not None for v in high.values())
    assert start[1] < high[1.0] < high[0.98]  # type: ignore[operator]
    assert high[0.98] == pytest.approx(2 * TURBULENT, rel=0.25)
    assert vols[0.98][0] == pytest.approx(CALM, rel=0.25)


def test_one_step_moves_each_statistic_by_the_filtered_weight() -> None:
    stats = Statistics.at(
        np.array([0.0, 0.0]), np.array([1.0, 9.0]), np.array([[0.9, 0.1], [0.1, 0.9]]), 50.0
    )
    prior = Statistics.at(np.array([0.0, 0.0]), np.array([1.0, 9.0]), np.array([[0.9, 0.1], [0.1, 0.9]]), 1.0)
    step = online_step(stats, prior, np.array([0.5, 0.5]), 6.0, forgetting=0.9)
    # A 6-sigma day for the calm state is almost surely turbulent.
    assert step.alpha[1] > 0.99 and step.alpha.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(step.stats.weight, 0.9 * stats.weight + step.alpha)
    np.testing.assert_allclose(step.stats.second, 0.9 * stats.second + step.alpha * 36.0)
    assert step.stats.pairs.sum() == pytest.approx(0.9 * stats.pairs.sum() + 1.0)
    frozen = online_step(stats, prior, np.array([0.5, 0.5]), 6.0, forgetting=0.9, learn=False)
    assert frozen.stats is stats


def test_filtered_probabilities_ignore_later_data(data: pd.DataFrame) -> None:
    model = OnlineHMM(forgetting=0.99, restarts=2)
    start, end, cut = data.index[400], data.index[459], data.index[430]

    def path(frame: pd.DataFrame) -> pd.Series:
        return rolling_probabilities(model, frame, start, end, refit_every=20)

    assert_no_lookahead(path, data, cut, ["ret"])
    once = rolling_probabilities(model, data, start, end, refit_every=ONLINE_BLOCK)
    np.testing.assert_allclose(path(data), once, rtol=1e-9)
    assert once.loc[once.index[-1]] == pytest.approx(
        float(model.fit(data.loc[:end]).filtered(data.loc[:end])[1].iloc[-1])
    )


@pytest.mark.parametrize("online", [False, True], ids=["hmm-var", "hmm-online-var"])
def test_variance_forecasts_ignore_later_data(data: pd.DataFrame, online: bool) -> None:
    regimes = OnlineHMM(forgetting=0.99, restarts=2) if online else HMMRegimes(restarts=2)
    model = RegimeVolatility(regimes, "hmm-online-var" if online else "hmm-var")
    run = backtest(model, data.index[400], data.index[459], refit_every=ONLINE_BLOCK if online else 30)
    assert_no_lookahead(run, data, data.index[430])
    variance = run(data)
    # Forecasts sit between the two regimes' variances.
    assert (variance > 0.5 * CALM**2).all() and (variance < 1.5 * TURBULENT**2).all()


def test_mixture_variance_adds_the_spread_of_the_means() -> None:
    probs = np.array([[0.5, 0.5]])
    out = mixture_variance(probs, np.array([[-1.0, 1.0]]), np.array([[1.0, 1.0]]))
    assert out[0] == pytest.approx(2.0)


def test_options_are_named(data: pd.DataFrame) -> None:
    with pytest.raises(RecalibrationError, match=r"hmm-online: forgetting must be in \(0, 1\], got 0"):
        OnlineHMM(forgetting=0.0).fit(data)
    with pytest.raises(
        InsufficientHistoryError, match="2-state online HMM needs at least 250 days of history, got 100"
    ):
        OnlineHMM().fit(data.iloc[:100])
    with pytest.raises(RecalibrationError, match="hmm-var: only the online HMM has a forgetting factor"):
        RegimeVolatility(HMMRegimes(), "hmm-var").tuned(0.99)
