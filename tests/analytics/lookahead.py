"""The no-look-ahead check: altering data after day t leaves every forecast (and filtered probability) up
to day t unchanged, bit for bit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from analytics.backtest import one_day_ahead
from analytics.baselines import Forecast, VolatilityModel


def altered_after(
    data: pd.DataFrame, cut: pd.Timestamp, columns: Sequence[str], factor: float = 7.0
) -> pd.DataFrame:
    """`data` with `columns` multiplied by `factor` on every day after `cut`."""
    out = data.copy()
    out.loc[out.index > cut, list(columns)] *= factor
    return out


def assert_no_lookahead(
    forecast: Callable[[pd.DataFrame], pd.Series],
    data: pd.DataFrame,
    cut: pd.Timestamp,
    columns: Sequence[str] = ("ret", "target"),
) -> None:
    """Values for days up to `cut` are bit-for-bit unchanged when data after `cut` change, and later
    values do change (so the check is not vacuous)."""
    base = forecast(data)
    changed = forecast(altered_after(data, cut, columns))
    before = base.index <= cut
    np.testing.assert_array_equal(changed[before].to_numpy(), base[before].to_numpy())
    assert not np.allclose(changed[~before].to_numpy(), base[~before].to_numpy())


def backtest(
    model: VolatilityModel, start: pd.Timestamp, end: pd.Timestamp, refit_every: int
) -> Callable[[pd.DataFrame], pd.Series]:
    """The one-day-ahead variance forecasts of `model` over [start, end], as a function of the data."""

    def run(data: pd.DataFrame) -> pd.Series:
        fc: Forecast = one_day_ahead(model, data, start, end, refit_every=refit_every)
        return fc.variance

    return run
