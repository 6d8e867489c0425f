"""Loaders for exchange OHLCV exports and the Aave v2 liquidations file.

Exchange exports come in many shapes: rows newest first, a banner line before the header, timestamps in
several formats within one file (and dates that a spreadsheet rewrote), unix columns in lossy scientific
notation. `load_ohlcv` accepts all of them and returns bars in time order together with a gap report:
gaps are reported, never filled.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from analytics.errors import AnalyticsError

__all__ = [
    "OHLCV",
    "Anomaly",
    "Gap",
    "PriceDataError",
    "daily_liquidations",
    "load_liquidations",
    "load_ohlcv",
    "load_oracle_prices",
    "ticks_to_daily",
    "to_daily",
]

log = logging.getLogger(__name__)

_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %I-%p",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d-%m-%y",
    "%m-%d-%y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%m/%d/%y",
    "%d/%m/%y",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y",
)
_MISSING = {"", "null", "nan", "none", "-"}
# Overlapping exports repeat a bar with its prices rounded differently (the ETH hourly file: up to 0.6%).
# Two rows further apart than this disagree about the market, and choosing one would be a guess.
_REPEAT_TOLERANCE = 0.01
_PRICES = ["open", "high", "low", "close"]
# A bar whose open sits this far (in log terms) from the previous close is an exchange artefact.
_MAX_OPEN_JUMP = 0.5


class PriceDataError(AnalyticsError, ValueError):
    """An input file that cannot be read as OHLCV bars; the message names what is wrong."""


@dataclass(frozen=True)
class Gap:
    """Bars missing between two present bars: `first_missing` … `last_missing`, `missing` bars."""

    first_missing: pd.Timestamp
    last_missing: pd.Timestamp
    missing: int


@dataclass(frozen=True)
class Anomaly:
    """A bar removed from the series, with the reason."""

    time: pd.Timestamp
    reason: str


@dataclass(frozen=True)
class OHLCV:
    """Bars indexed by UTC open time (ascending), columns open/high/low/close/volume."""

    bars: pd.DataFrame
    freq: pd.Timedelta
    gaps: list[Gap] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    duplicates: int = 0
    source: str = ""

    @property
    def missing_bars(self) -> int:
        """Total number of bars absent inside the covered range."""
        return sum(g.missing for g in self.gaps)


def _find_header(lines: list[str]) -> int:
    for i, line in enumerate(lines[:20]):
        cells = {c.strip().lower() for c in next(csv.reader([line]), [])}
        if {"open", "high", "low", "close"} <= cells:
            return i
    raise PriceDataError("no header row with open, high, low and close columns in the first 20 lines")


def _read_table(path: Path) -> tuple[pd.DataFrame, list[int] | None]:
    """The table under the header, and each row's line number in the file (None if they cannot be told)."""
    if not path.exists():
        raise PriceDataError(f"price file not found: {path}")
    if path.is_dir():
        raise PriceDataError(f"price file {path} is a directory; expected a CSV file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise PriceDataError(f"price file {path} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise PriceDataError(f"price file {path} cannot be read ({exc.strerror})") from None
    start = _find_header(lines)
    frame = pd.read_csv(io.StringIO("\n".join(lines[start:])), dtype=str, keep_default_na=False)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    # read_csv skips blank lines; quoted line breaks would shift the count, so then no numbers at all.
    numbers = [i + 1 for i in range(start + 1, len(lines)) if lines[i].strip()]
    return frame, numbers if len(numbers) == len(frame) else None


def _shape(value: str) -> str:
    return re.sub(r"[A-Za-z]+", "A", re.sub(r"\d+", lambda m: f"9{len(m.group())}", value))


def _parses(values: list[str], fmt: str) -> bool:
    try:
        for v in values:
            datetime.strptime(v, fmt)
    except ValueError:
        return False
    return True


def _format_for(values: list[str]) -> str:
    for fmt in _FORMATS:
        if _parses(values, fmt):
            return fmt
    raise PriceDataError(f"unrecognised timestamp format, e.g. {values[0]!r}")


def parse_timestamps(values: pd.Series) -> pd.DatetimeIndex:
    """Parse a column of mixed-format timestamps as UTC.

    Values are grouped by shape (digit runs and separators); each group gets the first format that parses
    every value in it, so day-first and month-first dates are told apart by the values that only one admits.
    """
    text = values.astype(str).str.strip()
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    for _, group in text.groupby(text.map(_shape)):
        fmt = _format_for(group.tolist())
        out[group.index] = pd.to_datetime(group, format=fmt)
    return pd.DatetimeIndex(out).tz_localize("UTC")


def _unix_times(values: pd.Series) -> pd.DatetimeIndex:
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any() or values.str.contains("[eE]").any():
        raise PriceDataError(
            "the unix column is not exact (scientific notation or blanks) and no date column"
        )
    unit = np.where(numbers > 1e11, 1e3, 1.0)
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(numbers / unit), unit="s", utc=True))


def _times(frame: pd.DataFrame) -> pd.DatetimeIndex:
    for name in ("date", "datetime", "time", "timestamp", "open time", "open_time"):
        if name in frame.columns and not frame[name].str.fullmatch(r"[\d.eE+]+").all():
            return parse_timestamps(frame[name])
    for name in ("unix", "timestamp", "open time", "open_time", "time"):
        if name in frame.columns:
            return _unix_times(frame[name])
    raise PriceDataError("no timestamp column (expected one of date, datetime, time, timestamp, unix)")


def _number(column: pd.Series, name: str) -> pd.Series:
    cleaned = column.str.strip().str.replace(",", "", regex=False)
    cleaned = cleaned.where(~cleaned.str.lower().isin(_MISSING))
    numbers = pd.to_numeric(cleaned, errors="coerce")
    bad = numbers.isna() & cleaned.notna()
    if bad.any():
        raise PriceDataError(f"column {name!r} has non-numeric values, e.g. {column[bad].iloc[0]!r}")
    return numbers.astype(float)


def _volume_column(frame: pd.DataFrame) -> str | None:
    names = [c for c in frame.columns if c.startswith("volume") and "usd" not in c]
    return names[0] if names else None


def _bars(frame: pd.DataFrame) -> pd.DataFrame:
    bars = pd.DataFrame({c: _number(frame[c], c) for c in ("open", "high", "low", "close")})
    volume = _volume_column(frame)
    bars["volume"] = _number(frame[volume], volume) if volume else np.nan
    bars.index = _times(frame)
    bars.index.name = "time"
    return bars


def _infer_freq(index: pd.DatetimeIndex) -> pd.Timedelta:
    if len(index) < 3:
        raise PriceDataError(
            f"{len(index)} bar(s) in the price data: the bar interval is read from at least 3; give more rows"
        )
    return pd.Timedelta(pd.Series(index).diff().dropna().mode().iloc[0])


def _gaps(index: pd.DatetimeIndex, freq: pd.Timedelta) -> list[Gap]:
    steps = pd.Series(index[1:] - index[:-1], index=index[:-1])
    out = []
    for start, step in zip(steps.index[steps > freq], steps[steps > freq], strict=True):
        out.append(Gap(start + freq, start + step - freq, int(step / freq) - 1))
    return out


def _bad_bars(bars: pd.DataFrame) -> list[Anomaly]:
    reference = bars["close"].shift(1).fillna(bars["close"])
    jump = np.abs(np.log(bars["open"] / reference)) > _MAX_OPEN_JUMP
    out = [Anomaly(pd.Timestamp(t), "open far from the previous close") for t in bars.index[jump]]
    missing = bars[["open", "high", "low", "close"]].isna().any(axis=1) & ~jump
    out += [Anomaly(pd.Timestamp(t), "missing price") for t in bars.index[missing]]
    positive = (bars[["open", "high", "low", "close"]] > 0).all(axis=1)
    nonpositive = ~positive & ~missing & ~jump
    out += [Anomaly(pd.Timestamp(t), "non-positive price") for t in bars.index[nonpositive]]
    return out


def _repair_range(bars: pd.DataFrame) -> pd.DataFrame:
    # Some exports carry highs below the close or lows above the open by rounding; widen to contain them.
    bars = bars.copy()
    bars["high"] = bars[["open", "high", "close"]].max(axis=1)
    bars["low"] = bars[["open", "low", "close"]].min(axis=1)
    return bars


def load_ohlcv(path: str | Path) -> OHLCV:
    """Read an exchange OHLCV CSV export into ascending UTC bars with a gap and anomaly report.

    A bar time that appears twice keeps the row further down the file when both rows agree within 1%
    (a warning says how many and where); rows that disagree more make the file refused.
    """
    path = Path(path)
    frame, lines = _read_table(path)
    bars = _bars(frame)
    bars["line"] = lines if lines is not None else np.nan
    bars = bars.sort_index(kind="stable")
    duplicated = _repeated_bars(bars, path)
    bars = bars[~duplicated].drop(columns="line")
    anomalies = _bad_bars(bars)
    bars = _repair_range(bars.drop(index=[a.time for a in anomalies]))
    freq = _infer_freq(pd.DatetimeIndex(bars.index))
    return OHLCV(
        bars=bars,
        freq=freq,
        gaps=_gaps(pd.DatetimeIndex(bars.index), freq),
        anomalies=anomalies,
        duplicates=int(duplicated.sum()),
        source=str(path),
    )


def _repeated_bars(bars: pd.DataFrame, path: Path) -> NDArray[np.bool_]:
    """Which rows repeat a bar time and lose to a later row; refuses repeats whose prices disagree."""
    repeats = bars[bars.index.duplicated(keep=False)]
    duplicated: NDArray[np.bool_] = bars.index.duplicated(keep="last")
    if repeats.empty:
        return duplicated
    grouped = repeats[_PRICES].groupby(level=0)
    spread = (grouped.max() / grouped.min() - 1).max(axis=1)
    disagreeing = spread[spread > _REPEAT_TOLERANCE]
    if not disagreeing.empty:
        raise PriceDataError(_disagreement(path, repeats.loc[[disagreeing.index[0]]]))
    times = pd.DatetimeIndex(repeats.index.unique())
    log.warning(
        "%s: %d bar times appear more than once (%s … %s) with prices within %.0f%%; each keeps the row"
        " further down the file",
        path,
        len(times),
        _when(times[0]),
        _when(times[-1]),
        _REPEAT_TOLERANCE * 100,
    )
    return duplicated


def _disagreement(path: Path, rows: pd.DataFrame) -> str:
    first, second = rows.iloc[0], rows.iloc[1]
    where = (
        f"lines {int(first['line'])} and {int(second['line'])}"
        if pd.notna(first["line"]) and pd.notna(second["line"])
        else "two rows"
    )
    return (
        f"price file {path}: {_when(pd.Timestamp(rows.index[0]))} appears on {where} with different prices"
        f" (close {first['close']:g} and {second['close']:g}, more than {_REPEAT_TOLERANCE:.0%} apart);"
        " remove the wrong row"
    )


def _when(time: pd.Timestamp) -> str:
    return str(time.date()) if time == time.normalize() else time.strftime("%Y-%m-%d %H:%M")


def to_daily(intraday: OHLCV, min_bars: int = 20) -> pd.DataFrame:
    """Aggregate intraday bars to UTC days: OHLC, volume, realised variance and bar count.

    `rv` sums squared log returns between consecutive bars (close to close) within the day, so an
    overnight-free 24h market needs no opening-jump term. Days with fewer than `min_bars` bars are dropped.
    """
    bars = intraday.bars
    day = pd.DatetimeIndex(bars.index).floor("D")
    returns = np.log(bars["close"]).diff()
    contiguous = pd.Series(bars.index, index=bars.index).diff() == intraday.freq
    squared = (returns**2).where(contiguous, 0.0)
    grouped = bars.groupby(day)
    daily = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(min_count=1),
            "rv": squared.groupby(day).sum(),
            "bars": grouped["close"].size(),
        }
    )
    daily.index.name = "time"
    return daily[daily["bars"] >= min_bars]


# Token decimals of the Aave v2 reserves in the liquidations file (from each token contract).
TOKEN_DECIMALS: dict[str, int] = {
    "USDC": 6,
    "USDT": 6,
    "GUSD": 2,
    "WBTC": 8,
    "AMPL": 9,
    "AmmUSDC": 6,
    "AmmUSDT": 6,
    "AmmWBTC": 8,
}
_DEFAULT_DECIMALS = 18
_WEI = 1e18


def _decimals(symbols: pd.Series) -> pd.Series:
    return symbols.map(lambda s: TOKEN_DECIMALS.get(str(s), _DEFAULT_DECIMALS)).astype(float)


def _eth_usd_by_day(frame: pd.DataFrame, day: pd.Series) -> pd.Series:
    eth = frame["price_eth_principal"]
    ratio = frame["price_usd_principal"] / eth
    return ratio.groupby(day).transform("median")


def _usd_price(frame: pd.DataFrame, day: pd.Series) -> pd.Series:
    # Where the USD price is missing, go through the reserve's ETH price and that day's ETH/USD.
    return frame["price_usd_principal"].fillna(frame["price_eth_principal"] * _eth_usd_by_day(frame, day))


def load_liquidations(path: str | Path) -> pd.DataFrame:
    """Read the Aave v2 liquidations file with amounts in token units and USD recomputed.

    Early rows (no `liquidator`) carry raw integer token units and inconsistent USD columns; their amounts
    are scaled by 10^decimals and their ETH prices by 1e18. USD = amount / 10^decimals × USD price.
    """
    raw = pd.read_csv(path, dtype=str)
    raw_units = raw["liquidator"].isna()
    scale = np.where(raw_units, 10.0 ** _decimals(raw["principalReserve"]), 1.0)
    cscale = np.where(raw_units, 10.0 ** _decimals(raw["collateralReserve"]), 1.0)
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(raw["timestamp"].astype(np.int64), unit="s", utc=True),
            "user": raw["user"],
            "principal_reserve": raw["principalReserve"],
            "collateral_reserve": raw["collateralReserve"],
            "principal_amount": raw["principalAmount"].astype(float) / scale,
            "collateral_amount": raw["collateralAmount"].astype(float) / cscale,
            "price_usd_principal": raw["reservePriceUSDPrincipal"].astype(float),
            "price_eth_principal": raw["reservePriceETHPrincipal"].astype(float)
            / np.where(raw_units, _WEI, 1.0),
            "raw_units": raw_units,
        }
    )
    day = frame["time"].dt.floor("D")
    frame["usd"] = frame["principal_amount"] * _usd_price(frame, day)
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def daily_liquidations(liquidations: pd.DataFrame) -> pd.DataFrame:
    """Liquidation count and USD volume per UTC day (days without liquidations are absent)."""
    day = liquidations["time"].dt.floor("D")
    grouped = liquidations.groupby(day)
    out = pd.DataFrame({"count": grouped.size(), "usd": grouped["usd"].sum()})
    out.index.name = "time"
    return out


def ticks_to_daily(ticks: pd.DataFrame) -> pd.DataFrame:
    """Daily OHLC (and tick count) from a (time, price) frame of oracle updates, UTC days."""
    if ticks.empty:
        raise PriceDataError("no price ticks in the query result")
    times = pd.to_datetime(ticks["time"], utc=True)
    prices = pd.Series(ticks["price"].astype(float).to_numpy(), index=pd.DatetimeIndex(times)).sort_index()
    grouped = prices.groupby(pd.DatetimeIndex(prices.index).floor("D"))
    daily = pd.DataFrame(
        {
            "open": grouped.first(),
            "high": grouped.max(),
            "low": grouped.min(),
            "close": grouped.last(),
            "volume": np.nan,
            "ticks": grouped.size(),
        }
    )
    daily.index.name = "time"
    return daily


def load_oracle_prices(url: str, query: str, params: dict[str, object] | None = None) -> OHLCV:
    """Daily bars from oracle prices in PostgreSQL: `query` returns columns `time` and `price`.

    On-chain oracles update on deviation or heartbeat, not on a clock, so the day's high and low are those
    of the updates, a lower bound on the traded range; gaps are days without an update.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ticks = pd.DataFrame(conn.execute(sa.text(query), params or {}).mappings().all())
    finally:
        engine.dispose()
    missing = {"time", "price"} - set(ticks.columns)
    if not ticks.empty and missing:
        raise PriceDataError(
            f"oracle price query must return columns time and price; missing {sorted(missing)}"
        )
    bars = ticks_to_daily(ticks)
    freq = pd.Timedelta(days=1)
    return OHLCV(bars=bars, freq=freq, gaps=_gaps(pd.DatetimeIndex(bars.index), freq), source="postgresql")
