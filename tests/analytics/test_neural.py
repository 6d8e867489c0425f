from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analytics.backtest import one_day_ahead
from analytics.baselines import HAR, Blend, InsufficientHistoryError
from analytics.neural import NeuralConfig, NeuralForecaster, asymmetric_qlike

torch.set_num_threads(1)
SMALL = NeuralConfig(hidden=4, lookback=5, epochs=15, patience=5, lr=0.02)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    days = 400
    log_h = np.empty(days)
    log_h[0] = -7.0
    for t in range(1, days):
        log_h[t] = -7.0 + 0.95 * (log_h[t - 1] + 7.0) + rng.normal(0, 0.25)
    h = np.exp(log_h)
    index = pd.date_range("2019-01-01", periods=days, freq="D", tz="UTC")
    frame = pd.DataFrame(
        {"ret": np.sqrt(h) * rng.normal(size=days), "target": h * rng.chisquare(4, days) / 4}, index=index
    )
    frame["liq_count"] = rng.poisson(3, days).astype(float)
    return frame


def test_asymmetric_loss_penalises_under_forecasts_more() -> None:
    y = torch.tensor([1.0])
    under = asymmetric_qlike(torch.log(torch.tensor([0.5])), y, 0.5)
    over = asymmetric_qlike(torch.log(torch.tensor([2.0])), y, 0.5)
    plain_under = asymmetric_qlike(torch.log(torch.tensor([0.5])), y, 0.0)
    assert float(under) > float(over)
    assert float(under) == pytest.approx(1.5 * float(plain_under))
    assert float(asymmetric_qlike(torch.tensor([0.0]), y, 0.5)) == pytest.approx(0.0)


def test_fixed_seed_reproduces_forecasts(data: pd.DataFrame) -> None:
    days = pd.DatetimeIndex(data.index[350:355])
    one = NeuralForecaster(SMALL).fit(data.iloc[:350]).forecast(data, days).variance
    two = NeuralForecaster(SMALL).fit(data.iloc[:350]).forecast(data, days).variance
    np.testing.assert_array_equal(one.to_numpy(), two.to_numpy())
    assert (one > 0).all()


@pytest.mark.parametrize("features", [(), ("liq_count",)])
def test_neural_forecast_ignores_data_after_t(data: pd.DataFrame, features: tuple[str, ...]) -> None:
    model = NeuralForecaster(SMALL, features=features)
    start, end = data.index[360], data.index[379]
    base = one_day_ahead(model, data, start, end, refit_every=10)
    altered = data.copy()
    cut = data.index[370]
    altered.loc[altered.index >= cut, ["ret", "target", "liq_count"]] *= 5.0
    changed = one_day_ahead(model, altered, start, end, refit_every=10)
    before = base.variance.index <= cut
    np.testing.assert_allclose(changed.variance[before], base.variance[before], rtol=1e-6)
    assert not np.allclose(changed.variance[~before], base.variance[~before])


def test_blend_is_geometric_mean(data: pd.DataFrame) -> None:
    days = pd.DatetimeIndex(data.index[380:385])
    history = data.iloc[:380]
    neural = NeuralForecaster(SMALL).fit(history).forecast(data, days).variance
    har = HAR().fit(history).forecast(data, days).variance
    blend = Blend((NeuralForecaster(SMALL), HAR())).fit(history).forecast(data, days).variance
    np.testing.assert_allclose(blend, np.sqrt(neural * har), rtol=1e-6)


def test_neural_path_and_history_check(data: pd.DataFrame) -> None:
    fitted = NeuralForecaster(SMALL).fit(data)
    assert fitted.path(data, 7).shape == (7,)
    with pytest.raises(InsufficientHistoryError, match="gru needs at least 250 days of history, got 100"):
        NeuralForecaster(SMALL).fit(data.iloc[:100])
