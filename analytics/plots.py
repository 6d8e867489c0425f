"""PNG figures from a saved backtest (`forecast backtest --save-forecasts`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.regimes import STRESS_DATES

__all__ = ["plot_regimes", "plot_stress_windows", "read_forecasts"]

_WINDOW = pd.Timedelta(days=30)


def read_forecasts(path: str | Path) -> pd.DataFrame:
    """A saved forecast table, indexed by UTC day."""
    frame = pd.read_csv(path, index_col="day", parse_dates=["day"])
    frame.index = pd.DatetimeIndex(frame.index)
    return frame


def _dates(ax: Any, maxticks: int | None = None) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=maxticks)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def plot_stress_windows(frame: pd.DataFrame, models: tuple[str, ...], out: Path, title: str) -> Path:
    """Forecast volatility against realised (proxy) volatility, ±30 days around each stress date."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dates = [pd.Timestamp(d, tz=pd.DatetimeIndex(frame.index).tz) for d in STRESS_DATES]
    dates = [d for d in dates if frame.index.min() <= d <= frame.index.max()]
    fig, axes = plt.subplots(len(dates), 1, figsize=(9, 2.6 * len(dates)), squeeze=False)
    for ax, day in zip(axes[:, 0], dates, strict=True):
        part = frame.loc[(frame.index >= day - _WINDOW) & (frame.index <= day + _WINDOW)]
        ax.plot(part.index, np.sqrt(part["proxy"]), ".", color="black", label="realised (proxy)")
        for name in models:
            if name in part:
                ax.plot(part.index, np.sqrt(part[name]), label=name)
        ax.axvline(day, color="red", lw=0.8)
        ax.set_ylabel("daily vol")
        ax.set_title(day.strftime("%Y-%m-%d"), fontsize=9)
        _dates(ax, maxticks=7)
    axes[0, 0].legend(fontsize=7, ncol=4)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_regimes(frame: pd.DataFrame, out: Path, title: str) -> Path:
    """Filtered P(turbulent) with the realised volatility and the stress dates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    top.plot(frame.index, np.sqrt(frame["proxy"]), lw=0.6, color="black")
    top.set_ylabel("realised daily vol")
    bottom.plot(frame.index, frame["p_high"], lw=0.5)
    _dates(bottom)
    bottom.set_ylabel("P(turbulent)")
    bottom.set_ylim(0, 1)
    for date in STRESS_DATES:
        day = pd.Timestamp(date, tz=pd.DatetimeIndex(frame.index).tz)
        if frame.index.min() <= day <= frame.index.max():
            for ax in (top, bottom):
                ax.axvline(day, color="red", lw=0.8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
