from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.loaders import (
    PriceDataError,
    daily_liquidations,
    load_liquidations,
    load_ohlcv,
    parse_timestamps,
    to_daily,
)
from tests.conftest import data_file


def _at(bars: pd.DataFrame, column: str, time: str) -> float:
    return float(bars[column].loc[pd.Timestamp(time, tz="UTC")])


def test_eth_daily_newest_first_spreadsheet_dates() -> None:
    data = load_ohlcv(data_file("prices/binance-ethusdt-daily.csv"))
    bars = data.bars
    assert bars.index.is_monotonic_increasing
    assert bars.index[0] == pd.Timestamp("2017-08-17", tz="UTC")
    assert bars.index[-1] == pd.Timestamp("2025-05-01", tz="UTC")
    assert data.freq == pd.Timedelta("1D")
    assert [(g.first_missing.date().isoformat(), g.missing) for g in data.gaps] == [
        ("2025-04-17", 6),
        ("2025-04-25", 4),
    ]
    assert _at(bars, "close", "2025-04-30") == pytest.approx(1793.61)


def test_btc_daily_banner_and_month_first_dates() -> None:
    data = load_ohlcv(data_file("prices/binance-btcusdt-daily.csv"))
    assert data.bars.index[-1] == pd.Timestamp("2026-05-31", tz="UTC")
    assert len(data.gaps) == 7
    assert all(g.first_missing.year == 2026 for g in data.gaps)
    assert _at(data.bars, "open", "2017-08-18") == pytest.approx(4285.08)


def test_eth_hourly_mixed_formats_duplicates_and_bad_first_bar() -> None:
    data = load_ohlcv(data_file("prices/binance-ethusdt-hourly.csv"))
    assert data.freq == pd.Timedelta("1h")
    assert data.bars.index.is_unique and data.bars.index.is_monotonic_increasing
    assert data.duplicates > 0
    assert [a.time for a in data.anomalies] == [pd.Timestamp("2017-08-17 04:00", tz="UTC")]
    assert len(data.gaps) >= 10
    assert _at(data.bars, "open", "2017-08-17 06:00") == pytest.approx(303.1)
    assert _at(data.bars, "close", "2020-11-20 07:00") > 0
    daily = to_daily(data)
    assert (daily["bars"] <= 24).all()
    assert (daily["rv"] > 0).all()


def test_timestamp_formats_are_told_apart_by_values() -> None:
    parsed = parse_timestamps(pd.Series(["01-05-25", "30-04-25", "2021-11-18 00:00:00", "2017-08-17 06-AM"]))
    assert [t.isoformat() for t in parsed] == [
        "2025-05-01T00:00:00+00:00",
        "2025-04-30T00:00:00+00:00",
        "2021-11-18T00:00:00+00:00",
        "2017-08-17T06:00:00+00:00",
    ]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text(text)
    return path


def test_any_row_order_and_exact_unix_only(tmp_path: Path) -> None:
    rows = ["timestamp,open,high,low,close,volume"]
    start = 1_600_000_000
    for i in (3, 0, 2, 1, 5):
        rows.append(f"{(start + 86400 * i) * 1000},{10 + i},{11 + i},{9 + i},{10.5 + i},1")
    data = load_ohlcv(_write(tmp_path, "\n".join(rows)))
    assert list(data.bars["open"]) == [10, 11, 12, 13, 15]
    assert [(g.first_missing, g.missing) for g in data.gaps] == [
        (pd.Timestamp((start + 4 * 86400) * 10**9, tz="UTC"), 1)
    ]


def test_missing_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(PriceDataError, match="no header row with open, high, low and close"):
        load_ohlcv(_write(tmp_path, "date,open,high,close\n2020-01-01,1,2,1\n"))


def test_non_numeric_price_is_named(tmp_path: Path) -> None:
    text = "date,open,high,low,close\n2020-01-01,1,2,0.5,1\n2020-01-02,1,x,0.5,1\n2020-01-03,1,2,0.5,1\n"
    with pytest.raises(PriceDataError, match=r"column 'high' has non-numeric values, e\.g\. 'x'"):
        load_ohlcv(_write(tmp_path, text))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PriceDataError, match="price file not found"):
        load_ohlcv(tmp_path / "nope.csv")


def test_liquidations_usd_recomputed_from_raw_units() -> None:
    liquidations = load_liquidations(data_file("defi/aave-v2-liquidations-2020-12-to-2022-04.csv"))
    assert len(liquidations) == 11_497
    assert liquidations["time"].is_monotonic_increasing
    early = liquidations[liquidations["raw_units"]]
    late = liquidations[~liquidations["raw_units"]]
    # Same order of magnitude per liquidation before and after the format change.
    ratio = early["usd"].median() / late["usd"].median()
    assert 0.2 < ratio < 5
    assert liquidations["usd"].max() < 1e8
    gusd = early[early["principal_reserve"] == "GUSD"].iloc[0]
    assert gusd["usd"] == pytest.approx(gusd["principal_amount"] * gusd["price_usd_principal"])
    daily = daily_liquidations(liquidations)
    top = {pd.Timestamp(t).strftime("%Y-%m-%d") for t in daily["count"].nlargest(5).index}
    assert {"2021-05-19", "2021-05-23", "2022-01-22"} <= top
    assert np.isfinite(daily["usd"]).all()


def test_oracle_prices_from_postgresql(db_url: str) -> None:
    import sqlalchemy as sa

    from analytics.loaders import load_oracle_prices

    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE oracle_ticks (updated_at timestamptz, answer numeric)"))
            conn.execute(
                sa.text("INSERT INTO oracle_ticks VALUES (:t, :p)"),
                [
                    {"t": "2022-05-09 10:00+00", "p": 2300},
                    {"t": "2022-05-09 01:00+00", "p": 2400},
                    {"t": "2022-05-09 20:00+00", "p": 2200},
                    {"t": "2022-05-10 05:00+00", "p": 2250},
                    {"t": "2022-05-12 05:00+00", "p": 1900},
                ],
            )
    finally:
        engine.dispose()
    query = "SELECT updated_at AS time, answer AS price FROM oracle_ticks WHERE updated_at >= :since"
    data = load_oracle_prices(db_url, query, {"since": "2022-01-01"})
    first = data.bars.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (2400, 2400, 2200, 2200)
    assert [(g.first_missing.date().isoformat(), g.missing) for g in data.gaps] == [("2022-05-11", 1)]
    with pytest.raises(PriceDataError, match="no price ticks in the query result"):
        load_oracle_prices(db_url, "SELECT updated_at AS time, answer AS price FROM oracle_ticks WHERE false")
