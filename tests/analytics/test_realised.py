from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from analytics.loaders import OHLCV, to_daily
from analytics.realised import (
    close_to_close,
    garman_klass,
    measure,
    parkinson,
    rogers_satchell,
    yang_zhang,
)

SIGMA = 0.03  # daily volatility
STEPS = 1000  # intraday steps per day


def _gbm_paths(days: int, seed: int, drift: float = 0.0, overnight: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    step = rng.normal(drift / STEPS, SIGMA / np.sqrt(STEPS), size=(days, STEPS))
    jumps = rng.normal(0.0, overnight, size=days) if overnight else np.zeros(days)
    paths = np.cumsum(step, axis=1)
    opens = np.cumsum(jumps + np.r_[0.0, paths[:-1, -1]])
    out: np.ndarray = opens[:, None] + np.concatenate([np.zeros((days, 1)), paths], axis=1)
    return out


def _bars(paths: np.ndarray) -> pd.DataFrame:
    index = pd.date_range("2020-01-01", periods=len(paths), freq="D", tz="UTC")
    prices = np.exp(4.0 + paths)
    return pd.DataFrame(
        {"open": prices[:, 0], "high": prices.max(1), "low": prices.min(1), "close": prices[:, -1]},
        index=index,
    )


@pytest.fixture(scope="module")
def gbm() -> pd.DataFrame:
    return _bars(_gbm_paths(3000, seed=7))


# Discrete monitoring shortens the observed range by about 0.58·σ·sqrt(1/STEPS) per side.
RANGE_BIAS = 0.06


@pytest.mark.parametrize("estimator", [parkinson, garman_klass, rogers_satchell])
def test_range_estimators_recover_known_variance(
    gbm: pd.DataFrame, estimator: Callable[[pd.DataFrame], pd.Series]
) -> None:
    mean = estimator(gbm).mean()
    assert mean == pytest.approx(SIGMA**2, rel=RANGE_BIAS + 0.03)
    assert mean < SIGMA**2 * 1.02


def test_close_to_close_is_unbiased(gbm: pd.DataFrame) -> None:
    assert close_to_close(gbm).mean() == pytest.approx(SIGMA**2, rel=0.06)


def test_range_estimators_are_more_efficient(gbm: pd.DataFrame) -> None:
    assert parkinson(gbm).std() < 0.6 * close_to_close(gbm).std()
    assert garman_klass(gbm).std() < parkinson(gbm).std()


def test_rogers_satchell_ignores_drift() -> None:
    drifting = _bars(_gbm_paths(3000, seed=8, drift=0.05))
    assert rogers_satchell(drifting).mean() == pytest.approx(SIGMA**2, rel=0.12)
    assert parkinson(drifting).mean() > 1.1 * SIGMA**2


def test_yang_zhang_adds_overnight_variance() -> None:
    bars = _bars(_gbm_paths(3000, seed=9, overnight=0.01))
    assert yang_zhang(bars, 30).mean() == pytest.approx(SIGMA**2 + 0.01**2, rel=0.08)


def test_yang_zhang_window_is_validated(gbm: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="window must be at least 2, got 1"):
        yang_zhang(gbm, 1)


def test_intraday_rv_sums_to_daily_variance() -> None:
    days, per_day = 400, 96
    rng = np.random.default_rng(3)
    steps = rng.normal(0.0, SIGMA / np.sqrt(per_day), size=days * per_day)
    index = pd.date_range("2021-01-01", periods=days * per_day, freq="15min", tz="UTC")
    close = np.exp(5.0 + np.cumsum(steps))
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index)
    daily = to_daily(OHLCV(bars=bars, freq=pd.Timedelta("15min")))
    assert daily["rv"].iloc[1:].mean() == pytest.approx(SIGMA**2, rel=0.04)
    assert measure(daily, "rv").equals(daily["rv"])


def test_rv_target_needs_intraday_data(gbm: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="target 'rv' needs intraday bars"):
        measure(gbm, "rv")
