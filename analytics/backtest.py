"""Out-of-sample one-day-ahead forecasting with an expanding or rolling origin, refit on a schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from analytics.baselines import Fitted, Forecast, VolatilityModel
from analytics.errors import AnalyticsError
from analytics.realised import Measure, measure

__all__ = ["BacktestError", "daily_frame", "one_day_ahead"]

Window = Literal["expanding", "rolling"]


class BacktestError(AnalyticsError, ValueError):
    """Inputs a backtest cannot run on; the message names what is wrong."""


def daily_frame(bars: pd.DataFrame, target: Measure, features: pd.DataFrame | None = None) -> pd.DataFrame:
    """Model input: `ret` (log close-to-close), `target` (realised measure) and feature columns."""
    for column in ("open", "high", "low", "close"):
        if column not in bars.columns:
            raise BacktestError(f"price data has no {column!r} column")
    frame = pd.DataFrame({"ret": np.log(bars["close"]).diff(), "target": measure(bars, target)})
    if features is not None:
        frame = frame.join(features, how="left")
    frame = frame.iloc[1:]
    bad = frame[["ret", "target"]].isna().any(axis=1)
    if bad.any():
        day = pd.Timestamp(frame.index[bad][0]).date()
        raise BacktestError(f"NaN in returns or target {target!r} on {day} ({int(bad.sum())} days)")
    return frame


@dataclass(frozen=True)
class _Schedule:
    refit_every: int
    window: Window
    window_days: int


def _history(data: pd.DataFrame, day: pd.Timestamp, schedule: _Schedule) -> pd.DataFrame:
    history = data.loc[data.index < day]
    if schedule.window == "rolling":
        history = history.iloc[-schedule.window_days :]
    return history


def one_day_ahead(
    model: VolatilityModel,
    data: pd.DataFrame,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    refit_every: int = 1,
    window: Window = "expanding",
    window_days: int = 1000,
) -> Forecast:
    """Forecasts for every day in [start, end], each from a model fitted on days strictly before it."""
    if refit_every < 1:
        raise BacktestError(f"refit_every must be at least 1, got {refit_every}")
    days = pd.DatetimeIndex(data.index[(data.index >= _ts(start)) & (data.index <= _ts(end))])
    if len(days) == 0:
        raise BacktestError(f"no data between {start} and {end}")
    schedule = _Schedule(refit_every, window, window_days)
    parts: list[Forecast] = []
    for block in range(0, len(days), refit_every):
        block_days = days[block : block + refit_every]
        fitted: Fitted = model.fit(_history(data, block_days[0], schedule))
        visible = data.loc[data.index < block_days[-1] + pd.Timedelta(days=1)]
        parts.append(fitted.forecast(visible, block_days))
    return _concat(parts)


def _ts(value: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def _concat(parts: list[Forecast]) -> Forecast:
    variance = pd.concat([p.variance for p in parts])
    nus = [p.nu for p in parts if p.nu is not None]
    nu = pd.concat(nus) if len(nus) == len(parts) else None
    return Forecast(variance, nu)
