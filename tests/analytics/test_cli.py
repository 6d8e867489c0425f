from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from typer.testing import CliRunner

from analytics import tables
from chainrisk.commands.forecast import app
from tests.conftest import shared_file

torch.set_num_threads(1)
runner = CliRunner()
FAST = ["--models", "garch-t,log-har,ewma", "--refit-every", "30"]


def _backtest(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["backtest", *args, "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


def test_backtest_json_has_every_field_per_model() -> None:
    prices = str(shared_file("prices/binance-ethusdt-daily.csv"))
    out = _backtest("--prices", prices, "--start", "2021-05-01", "--end", "2021-06-30", *FAST)
    models = out["models"]
    assert isinstance(models, dict) and set(models) == {"garch-t", "log-har", "ewma"}
    row = models["ewma"]
    for key in ("qlike", "mse", "dm_pvalue_vs_garch_t", "dm_pvalue_vs_log_har", "in_mcs", "top_decile_ratio"):
        assert key in row
    assert set(row["var_breach_rate"]) == {"1%", "5%"}
    assert models["garch-t"]["dm_pvalue_vs_garch_t"] is None
    regimes = out["regimes"]
    assert isinstance(regimes, dict) and set(regimes["stress_p_high"]) == {"2021-05-19"}
    assert out["days"] == 61


def test_backtest_on_hourly_file_with_rv_target() -> None:
    prices = str(shared_file("prices/binance-ethusdt-hourly.csv"))
    out = _backtest(
        "--prices", prices, "--target", "rv", "--start", "2021-09-01", "--end", "2021-09-30", *FAST
    )
    assert out["target"] == "rv" and out["days"] == 30


def test_rv_target_on_daily_file_is_named() -> None:
    prices = str(shared_file("prices/binance-btcusdt-daily.csv"))
    result = runner.invoke(app, ["backtest", "--prices", prices, "--target", "rv", *FAST])
    assert result.exit_code == 2
    assert "target 'rv' needs intraday bars" in result.output


def test_too_little_history_is_named() -> None:
    prices = str(shared_file("prices/binance-btcusdt-daily.csv"))
    args = ["backtest", "--prices", prices, "--start", "2017-10-01", "--end", "2017-12-31", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "garch-t needs 250 days of history before 2017-10-01, the price file has" in result.output


def test_bad_target_and_unknown_model_are_named(tmp_path: Path) -> None:
    prices = str(shared_file("prices/binance-btcusdt-daily.csv"))
    bad = runner.invoke(app, ["backtest", "--prices", prices, "--target", "close"])
    assert bad.exit_code == 2 and "--target: expected parkinson or rv, got 'close'" in bad.output
    unknown = runner.invoke(app, ["backtest", "--prices", prices, "--models", "prophet"])
    assert unknown.exit_code == 2 and "unknown model 'prophet'" in unknown.output
    missing = runner.invoke(app, ["backtest", "--prices", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "price file not found" in missing.output


def test_run_writes_forecasts_and_regimes(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    tables.metadata.create_all(engine, checkfirst=True)
    prices = str(shared_file("prices/binance-ethusdt-daily.csv"))
    args = ["run", "--prices", prices, "--models", "log-har,ewma", "--database-url", db_url, "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        run = conn.execute(sa.select(tables.forecast_runs)).one()
        assert str(run.input_end) == "2025-05-01"
        rows = conn.execute(sa.select(tables.volatility_forecasts)).all()
        assert {(r.model, r.horizon_days) for r in rows} == {
            ("log-har", 1),
            ("log-har", 7),
            ("ewma", 1),
            ("ewma", 7),
        }
        for r in rows:
            assert r.return_lower < 0 < r.return_upper and r.variance > 0
        probs = conn.execute(sa.select(tables.regime_probabilities)).all()
        assert len(probs) == 60
        by_day: dict[object, float] = {}
        for p in probs:
            by_day[p.day] = by_day.get(p.day, 0.0) + p.probability
        assert all(total == pytest.approx(1.0) for total in by_day.values())
    engine.dispose()
