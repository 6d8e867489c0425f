from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.features import align, liquidation_features, load_onchain, price_features
from analytics.loaders import PriceDataError
from tests.conftest import data_file


def test_liquidation_features_are_per_utc_day() -> None:
    times = pd.to_datetime(["2021-05-19 00:00:01", "2021-05-19 23:59:59", "2021-05-21 10:00:00"], utc=True)
    liquidations = pd.DataFrame({"time": times, "usd": [100.0, 50.0, 10.0]})
    features = liquidation_features(liquidations)
    days = [pd.Timestamp(t).strftime("%Y-%m-%d") for t in features.index]
    assert days == ["2021-05-19", "2021-05-20", "2021-05-21"]
    np.testing.assert_allclose(features["liq_count"], np.log1p([2, 0, 1]))
    np.testing.assert_allclose(features["liq_usd"], np.log1p([150, 0, 10]))


def test_align_marks_days_outside_the_source_span() -> None:
    features = pd.DataFrame(
        {"liq_count": [1.0], "liq_observed": [1.0]}, index=pd.DatetimeIndex(["2021-01-02"], tz="UTC")
    )
    days = pd.date_range("2021-01-01", periods=3, freq="D", tz="UTC")
    aligned = align(features, days)
    assert aligned["liq_observed"].tolist() == [0.0, 1.0, 0.0]


def test_price_features() -> None:
    data = pd.DataFrame({"ret": [-0.02, 0.03]})
    features = price_features(data)
    assert features["neg_ret"].tolist() == [-0.02, 0.0]
    assert features["abs_ret"].tolist() == [0.02, 0.03]


def test_load_onchain_detects_the_aave_file() -> None:
    features = load_onchain(data_file("defi/aave-v2-liquidations-2020-12-to-2022-04.csv"))
    assert features.index[0] == pd.Timestamp("2020-12-17", tz="UTC")
    assert features.loc[pd.Timestamp("2021-05-19", tz="UTC"), "liq_count"] > np.log1p(400)


def test_load_onchain_generic_daily_csv(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text("date,whale_net_flow\n2022-01-01,5\n2022-01-01,-2\n2022-01-03,1\n")
    features = load_onchain(path)
    assert features["whale_net_flow"].tolist() == [3.0, 1.0]
    with pytest.raises(PriceDataError, match="has no date, day, time or timestamp column"):
        (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
        load_onchain(tmp_path / "bad.csv")


def test_plots_are_written(tmp_path: Path) -> None:
    from analytics.plots import plot_regimes, plot_stress_windows

    days = pd.date_range("2022-05-01", "2022-07-01", freq="D", tz="UTC")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"proxy": rng.exponential(1e-3, len(days)), "p_high": rng.uniform(size=len(days))}, days
    )
    frame["log-har"] = 1e-3
    assert plot_stress_windows(frame, ("log-har",), tmp_path / "s.png", "t").stat().st_size > 1000
    assert plot_regimes(frame, tmp_path / "r.png", "t").stat().st_size > 1000
