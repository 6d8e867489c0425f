"""Realised variance measures from OHLC bars and intraday returns (per-bar variance, not annualised).

Definitions (log prices; o, h, l, c relative to the bar's open unless stated):

- close-to-close: r_t² with r_t = ln(C_t / C_{t-1})
- Parkinson (1980): (ln H/L)² / (4 ln 2)
- Garman–Klass (1980): ½ (ln H/L)² − (2 ln 2 − 1) (ln C/O)²
- Rogers–Satchell (1991): ln(H/C) ln(H/O) + ln(L/C) ln(L/O)
- Yang–Zhang (2000), over a window of n bars: σ²_overnight + k σ²_open-close + (1 − k) σ²_RS,
  k = 0.34 / (1.34 + (n + 1)/(n − 1))
- realised variance: the sum of squared intraday log returns (see `analytics.loaders.to_daily`)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from analytics.loaders import PriceDataError

__all__ = [
    "Measure",
    "close_to_close",
    "garman_klass",
    "measure",
    "parkinson",
    "rogers_satchell",
    "yang_zhang",
]

Measure = Literal["close", "parkinson", "garman_klass", "rogers_satchell", "yang_zhang", "rv"]
_LOG2 = float(np.log(2.0))


def _logs(bars: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    return (np.log(bars["open"]), np.log(bars["high"]), np.log(bars["low"]), np.log(bars["close"]))


def close_to_close(bars: pd.DataFrame) -> pd.Series:
    """Squared close-to-close log return; NaN on the first bar."""
    returns: pd.Series = np.log(bars["close"]).diff()
    return returns**2


def parkinson(bars: pd.DataFrame) -> pd.Series:
    """Parkinson range variance of each bar."""
    _, h, low, _ = _logs(bars)
    return (h - low) ** 2 / (4.0 * _LOG2)


def garman_klass(bars: pd.DataFrame) -> pd.Series:
    """Garman–Klass variance of each bar."""
    o, h, low, c = _logs(bars)
    return 0.5 * (h - low) ** 2 - (2.0 * _LOG2 - 1.0) * (c - o) ** 2


def rogers_satchell(bars: pd.DataFrame) -> pd.Series:
    """Rogers–Satchell (drift-free) variance of each bar."""
    o, h, low, c = _logs(bars)
    return (h - c) * (h - o) + (low - c) * (low - o)


def yang_zhang(bars: pd.DataFrame, window: int = 20) -> pd.Series:
    """Yang–Zhang variance over a trailing window of `window` bars (drift- and opening-jump-robust)."""
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window}")
    o, _, _, c = _logs(bars)
    overnight = o - c.shift(1)
    open_close = c - o
    k = 0.34 / (1.34 + (window + 1) / (window - 1))
    var_overnight = overnight.rolling(window).var()
    var_open_close = open_close.rolling(window).var()
    var_rs = rogers_satchell(bars).rolling(window).mean()
    return var_overnight + k * var_open_close + (1.0 - k) * var_rs


def measure(bars: pd.DataFrame, name: Measure) -> pd.Series:
    """The named realised measure per bar; `rv` needs an `rv` column (from intraday bars)."""
    if name == "rv":
        if "rv" not in bars.columns:
            raise PriceDataError("target 'rv' needs intraday bars: the price file has no intraday data")
        return bars["rv"].astype(float)
    functions = {
        "close": close_to_close,
        "parkinson": parkinson,
        "garman_klass": garman_klass,
        "rogers_satchell": rogers_satchell,
        "yang_zhang": yang_zhang,
    }
    return functions[name](bars).rename(name)
