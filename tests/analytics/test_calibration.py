from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.backtest import BacktestError
from analytics.baselines import HAR, Forecast
from analytics.calibration import (
    Calibration,
    calibration_factor,
    combination_weights,
    combine,
    factor,
    split_name,
)
from analytics.evaluation import qlike, top_decile_ratio


def _series(days: int = 900, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    log_var = np.log(4e-4) + np.cumsum(rng.normal(0.0, 0.1, days)) * 0.3
    target = np.exp(log_var) * rng.chisquare(6, days) / 6
    index = pd.date_range("2018-01-01", periods=days, freq="D", tz="UTC")
    return pd.DataFrame({"ret": rng.normal(0.0, np.sqrt(np.exp(log_var))), "target": target}, index=index)


def test_names_carry_the_calibration_kind() -> None:
    assert split_name("log-har-tcal") == ("log-har", "tcal")
    assert split_name("rnn-blend-qcal") == ("rnn-blend", "qcal")
    assert split_name("log-har") == ("log-har", None)


def test_qlike_factor_minimises_qlike_and_top_factor_hits_the_ratio() -> None:
    rng = np.random.default_rng(0)
    proxy = pd.Series(rng.chisquare(3, 400) / 3)
    forecast = pd.Series(np.full(400, 0.7))
    c = factor("qcal", proxy, forecast, 0.6)
    best = qlike(proxy, forecast * c)
    assert best < qlike(proxy, forecast * c * 1.05) and best < qlike(proxy, forecast * c / 1.05)
    t = factor("tcal", proxy, forecast, 0.6)
    assert top_decile_ratio(proxy, forecast * t) == pytest.approx(0.6)
    # Already above the target: never scaled down.
    assert factor("tcal", proxy, forecast * 100, 0.6) == 1.0


def test_factor_uses_data_up_to_the_cut_off_only() -> None:
    data = _series()
    settings = Calibration(until="2019-12-31", validation_days=200, refit_every=20)
    value, window = calibration_factor(HAR(), data, "tcal", settings, "2020-01-01")
    assert window == {"from": "2019-06-15", "to": "2019-12-31"}
    altered = data.copy()
    altered.loc[altered.index > pd.Timestamp("2019-12-31", tz="UTC"), "target"] *= 50.0
    assert calibration_factor(HAR(), altered, "tcal", settings, "2020-01-01")[0] == value
    assert value > 1.0


def test_cut_off_inside_the_evaluation_window_is_refused() -> None:
    data = _series()
    with pytest.raises(BacktestError, match="must be before the evaluation start"):
        calibration_factor(HAR(), data, "qcal", Calibration(until="2020-02-01"), "2020-01-01")


def test_combination_weights_pick_the_informative_forecast() -> None:
    rng = np.random.default_rng(1)
    truth = np.exp(rng.normal(0.0, 1.0, 600))
    proxy = truth * rng.chisquare(8, 600) / 8
    good, flat = np.log(truth), np.zeros(600)
    w = combination_weights(np.column_stack([flat, good]), proxy)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[1] > 0.9
    both = combine([Forecast(pd.Series(np.exp(flat))), Forecast(pd.Series(truth))], w)
    assert qlike(pd.Series(proxy), both.variance) < qlike(pd.Series(proxy), pd.Series(np.exp(flat)))
