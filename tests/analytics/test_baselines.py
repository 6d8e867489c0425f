from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from analytics.backtest import BacktestError, daily_frame, one_day_ahead
from analytics.baselines import EWMA, GARCH, HAR, InsufficientHistoryError, VolatilityModel


def _garch_data(days: int, seed: int) -> pd.DataFrame:
    """A GARCH(1,1)-t path with Parkinson-like noisy targets around the true variance."""
    rng = np.random.default_rng(seed)
    omega, alpha, beta = 2e-5, 0.08, 0.9
    h = np.empty(days)
    r = np.empty(days)
    h[0] = omega / (1 - alpha - beta)
    for t in range(days):
        if t:
            h[t] = omega + alpha * r[t - 1] ** 2 + beta * h[t - 1]
        r[t] = np.sqrt(h[t]) * rng.standard_t(6) / np.sqrt(1.5)
    index = pd.date_range("2018-01-01", periods=days, freq="D", tz="UTC")
    target = h * rng.chisquare(4, days) / 4
    return pd.DataFrame({"ret": r, "target": target, "true": h}, index=index)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return _garch_data(700, seed=11)


MODELS: list[VolatilityModel] = [
    GARCH("garch", "normal"),
    GARCH("gjr", "t"),
    GARCH("egarch", "t"),
    EWMA(),
    HAR(log=False),
    HAR(log=True),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_forecast_for_day_t_ignores_data_after_t(data: pd.DataFrame, model: VolatilityModel) -> None:
    start, end = data.index[600], data.index[629]
    base = one_day_ahead(model, data, start, end, refit_every=10)
    altered = data.copy()
    cut = data.index[615]
    altered.loc[altered.index >= cut, ["ret", "target"]] *= 7.0
    changed = one_day_ahead(model, altered, start, end, refit_every=10)
    before = base.variance.index <= cut
    np.testing.assert_allclose(changed.variance[before], base.variance[before], rtol=1e-12)
    assert not np.allclose(changed.variance[~before], base.variance[~before])


def test_garch_tracks_true_variance(data: pd.DataFrame) -> None:
    fc = one_day_ahead(GARCH("garch", "t"), data, data.index[500], data.index[-1], refit_every=50)
    truth = data["true"].loc[fc.variance.index]
    assert np.corrcoef(np.log(fc.variance), np.log(truth))[0, 1] > 0.8
    assert fc.nu is not None and (fc.nu > 3).all()


def test_har_family_forecasts_the_target_level(data: pd.DataFrame) -> None:
    for model in (HAR(log=True), HAR(log=False)):
        fc = one_day_ahead(model, data, data.index[500], data.index[-1], refit_every=50)
        ratio = fc.variance.mean() / data["target"].iloc[500:].mean()
        assert 0.7 < ratio < 1.3


def test_ewma_matches_riskmetrics_recursion(data: pd.DataFrame) -> None:
    fc = one_day_ahead(EWMA(0.94), data, data.index[100], data.index[102])
    h99 = fc.variance.iloc[0]
    r = data["ret"]
    assert fc.variance.iloc[1] == pytest.approx(0.94 * h99 + 0.06 * r.iloc[100] ** 2)


def test_quantiles_and_pit_agree(data: pd.DataFrame) -> None:
    fc = one_day_ahead(GARCH("garch", "t"), data, data.index[600], data.index[620], refit_every=21)
    q = fc.quantile(0.05)
    assert (q < 0).all()
    np.testing.assert_allclose(fc.cdf(q), 0.05, rtol=1e-6)


def test_paths_have_horizon_length(data: pd.DataFrame) -> None:
    for model in (GARCH("garch", "t"), HAR(log=True), EWMA()):
        path = model.fit(data).path(data, 7)
        assert path.shape == (7,) and (path > 0).all()


def test_too_little_history_is_named(data: pd.DataFrame) -> None:
    with pytest.raises(InsufficientHistoryError, match="garch-t needs at least 250 days of history, got 100"):
        GARCH().fit(data.iloc[:100])


def test_missing_feature_is_named(data: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="log-har-x: feature columns missing from the data: liq_count"):
        HAR(features=("liq_count",)).fit(data)


def test_nan_in_prices_is_named() -> None:
    index = pd.date_range("2020-01-01", periods=5, freq="D", tz="UTC")
    bars = pd.DataFrame(
        {"open": 1.0, "high": 1.1, "low": 0.9, "close": [1, 1.1, np.nan, 1, 1.0]}, index=index
    )
    with pytest.raises(BacktestError, match="NaN in returns or target 'parkinson' on 2020-01-03"):
        daily_frame(bars, "parkinson")


def test_empty_window_is_named(data: pd.DataFrame) -> None:
    with pytest.raises(BacktestError, match="no data between 2030-01-01 and 2030-02-01"):
        one_day_ahead(EWMA(), data, "2030-01-01", "2030-02-01")


def test_no_warnings_on_clean_data(data: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GARCH("egarch", "t").fit(data)
