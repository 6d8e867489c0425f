"""On-chain features aligned point-in-time to daily bars.

A feature on day t summarises events with timestamps inside UTC day t, so it is known at that day's close
and may drive the forecast for day t + 1 (the models lag every regressor by one day). Outside the span a
source covers, features are 0 and `<group>_observed` is 0, so a model can tell "none" from "unknown".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analytics.loaders import PriceDataError, daily_liquidations, load_liquidations, parse_timestamps

__all__ = ["FEATURE_GROUPS", "align", "liquidation_features", "load_onchain", "price_features"]

# Groups for ablation: each name maps to the columns it adds.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "liquidations": ("liq_count", "liq_usd", "liq_observed"),
    "leverage": ("neg_ret",),
}


def liquidation_features(liquidations: pd.DataFrame) -> pd.DataFrame:
    """log1p of the daily liquidation count and USD volume, per UTC day over the file's span."""
    daily = daily_liquidations(liquidations)
    days = pd.date_range(daily.index.min(), daily.index.max(), freq="D")
    daily = daily.reindex(days, fill_value=0.0)
    return pd.DataFrame(
        {
            "liq_count": np.log1p(daily["count"].astype(float)),
            "liq_usd": np.log1p(daily["usd"].fillna(0.0)),
            "liq_observed": 1.0,
        },
        index=days,
    )


def price_features(data: pd.DataFrame) -> pd.DataFrame:
    """Leverage-effect regressors from the day's own return: its negative part and its absolute size."""
    return pd.DataFrame(
        {"neg_ret": np.minimum(data["ret"], 0.0), "abs_ret": data["ret"].abs()}, index=data.index
    )


def align(features: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Features on the bar days; days outside the source's span get 0 (and `*_observed` 0)."""
    return features.reindex(index).fillna(0.0)


def _generic(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str)
    column = next(
        (c for c in frame.columns if c.strip().lower() in {"date", "day", "time", "timestamp"}), None
    )
    if column is None:
        raise PriceDataError(f"on-chain file {path} has no date, day, time or timestamp column")
    index = parse_timestamps(frame[column]).floor("D")
    numbers = frame.drop(columns=column).apply(pd.to_numeric, errors="coerce")
    numbers.index = index
    out: pd.DataFrame = numbers.groupby(level=0).sum()
    out["onchain_observed"] = 1.0
    return out


def load_onchain(path: str | Path) -> pd.DataFrame:
    """Daily on-chain features from the Aave liquidations file or a generic daily CSV (date + numbers)."""
    path = Path(path)
    if not path.exists():
        raise PriceDataError(f"on-chain file not found: {path}")
    with path.open(encoding="utf-8") as handle:
        header = handle.readline()
    if "principalReserve" in header and "timestamp" in header:
        return liquidation_features(load_liquidations(path))
    return _generic(path)
