from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import torch
from typer.testing import CliRunner

from analytics import tables
from chainrisk.commands.forecast import app
from tests.conftest import data_file

torch.set_num_threads(1)
runner = CliRunner()
FAST = ["--models", "garch-t,log-har,ewma", "--refit-every", "30"]


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """An engine on the test database with the forecast tables, disposed even when the test fails."""
    engine = sa.create_engine(db_url)
    try:
        tables.metadata.create_all(engine, checkfirst=True)
        yield engine
    finally:
        engine.dispose()


def _backtest(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["backtest", *args, "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


def test_backtest_json_has_every_field_per_model() -> None:
    prices = str(data_file("prices/binance-ethusdt-daily.csv"))
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
    prices = str(data_file("prices/binance-ethusdt-hourly.csv"))
    out = _backtest(
        "--prices", prices, "--target", "rv", "--start", "2021-09-01", "--end", "2021-09-30", *FAST
    )
    assert out["target"] == "rv" and out["days"] == 30


def _tiny_network(tmp_path: Path) -> str:
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"params": {"hidden": 4, "lookback": 10, "epochs": 10, "patience": 3}}))
    return str(path)


def test_rv_target_runs_the_neural_and_har_x_models(tmp_path: Path) -> None:
    prices = str(data_file("prices/binance-ethusdt-hourly.csv"))
    onchain = str(data_file("defi/aave-v2-liquidations-2020-12-to-2022-04.csv"))
    models = "log-har,log-har-x,rnn-x"
    args = ["--prices", prices, "--onchain", onchain, "--target", "rv", "--start", "2021-09-01"]
    args += ["--end", "2021-09-30", "--models", models, "--refit-every", "30", "--neural-refit-every", "30"]
    out = _backtest(*args, "--neural-params", _tiny_network(tmp_path))
    rows = out["models"]
    assert isinstance(rows, dict) and set(rows) == set(models.split(","))
    for row in rows.values():
        assert 0.0 < row["qlike"] < 5.0
    # Exogenous columns change the forecasts: HAR-X is not log-HAR under another name.
    assert rows["log-har-x"]["qlike"] != rows["log-har"]["qlike"]


def test_backtest_reports_the_hmm_regime_filter() -> None:
    prices = str(data_file("prices/binance-ethusdt-daily.csv"))
    out = _backtest(
        "--prices", prices, "--start", "2021-05-01", "--end", "2021-06-30", *FAST, "--regime-model", "hmm"
    )
    regimes = out["regimes"]
    assert isinstance(regimes, dict) and regimes["regime_model"] == "hmm"
    assert regimes["stress_p_high"]["2021-05-19"] > 0.8
    bad = runner.invoke(app, ["backtest", "--prices", prices, "--regime-model", "kmeans"])
    assert (
        bad.exit_code == 2
        and "--regime-model: expected one of markov, hmm, hmm3, hmm-online, got 'kmeans'" in bad.output
    )


def test_ablation_prints_each_group_removed_and_added() -> None:
    prices = str(data_file("prices/binance-btcusdt-daily.csv"))
    onchain = str(data_file("defi/aave-v2-liquidations-2020-12-to-2022-04.csv"))
    args = ["ablation", "--prices", prices, "--onchain", onchain, "--start", "2021-05-01"]
    args += ["--end", "2021-06-30", "--families", "har-x", "--refit-every", "30", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["groups"] == {"lev": ["neg_ret"], "liq": ["liq_count", "liq_usd", "liq_observed"]}
    scores = out["families"]["har-x"]["scores"]
    assert set(scores) == {"full", "base", "-lev", "+lev", "-liq", "+liq"}
    assert scores["-liq"]["qlike"] == scores["+lev"]["qlike"]
    assert 0.0 <= scores["base"]["vs_full"]["dm_pvalue"] <= 1.0
    unknown = runner.invoke(app, [*args[:-3], "--families", "garch-x"])
    assert unknown.exit_code == 2 and "unknown ablation family 'garch-x'" in unknown.output


def test_ablation_groups_a_generic_onchain_file_by_prefix(tmp_path: Path) -> None:
    prices = str(data_file("prices/binance-btcusdt-daily.csv"))
    days = pd.date_range("2020-06-01", "2021-06-30", freq="D")
    rng = np.random.default_rng(0)
    onchain = tmp_path / "onchain.csv"
    pd.DataFrame(
        {
            "date": days.strftime("%Y-%m-%d"),
            "hf_mass_near_1": rng.uniform(size=len(days)),
            "flow_net": rng.normal(size=len(days)),
        }
    ).to_csv(onchain, index=False)
    args = ["ablation", "--prices", prices, "--onchain", str(onchain), "--start", "2021-05-01"]
    result = runner.invoke(
        app, [*args, "--end", "2021-05-31", "--families", "har-x", "--refit-every", "31", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["groups"] == {
        "lev": ["neg_ret"],
        "hf": ["hf_mass_near_1", "onchain_observed"],
        "flow": ["flow_net", "onchain_observed"],
    }
    assert set(out["families"]["har-x"]["scores"]) == {
        "full",
        "base",
        "-lev",
        "+lev",
        "-hf",
        "+hf",
        "-flow",
        "+flow",
    }


def test_combo_reports_weights_fitted_before_the_window() -> None:
    prices = str(data_file("prices/binance-ethusdt-daily.csv"))
    args = ["--prices", prices, "--start", "2021-01-01", "--end", "2021-02-28"]
    out = _backtest(*args, "--models", "garch-n,log-har,log-har-tcal,combo", "--refit-every", "30")
    rows = out["models"]
    assert isinstance(rows, dict)
    combo = rows["combo"]["calibration"]
    assert combo["from"] == "2019-01-01" and combo["to"] == "2019-12-31"
    assert set(combo["weights"]) == {"garch-n", "log-har"}
    assert sum(combo["weights"].values()) == pytest.approx(1.0)
    tcal = rows["log-har-tcal"]["calibration"]
    assert tcal["kind"] == "tcal" and tcal["factor"] > 1.0
    assert rows["log-har-tcal"]["top_decile_ratio"] == pytest.approx(
        rows["log-har"]["top_decile_ratio"] * tcal["factor"]
    )
    alone = runner.invoke(app, ["backtest", *args, "--models", "log-har,combo"])
    assert alone.exit_code == 2 and "combo needs at least two other uncalibrated models" in alone.output


def test_rv_target_on_daily_file_is_named() -> None:
    prices = str(data_file("prices/binance-btcusdt-daily.csv"))
    result = runner.invoke(app, ["backtest", "--prices", prices, "--target", "rv", *FAST])
    assert result.exit_code == 2
    assert "target 'rv' needs intraday bars" in result.output


def test_too_little_history_is_named() -> None:
    prices = str(data_file("prices/binance-btcusdt-daily.csv"))
    args = ["backtest", "--prices", prices, "--start", "2017-10-01", "--end", "2017-12-31", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "garch-t needs 250 days of history before 2017-10-01, the price file has" in result.output


def test_bad_target_and_unknown_model_are_named(tmp_path: Path) -> None:
    prices = str(data_file("prices/binance-btcusdt-daily.csv"))
    bad = runner.invoke(app, ["backtest", "--prices", prices, "--target", "close"])
    assert bad.exit_code == 2 and "--target: expected parkinson or rv, got 'close'" in bad.output
    unknown = runner.invoke(app, ["backtest", "--prices", prices, "--models", "prophet"])
    assert unknown.exit_code == 2 and "unknown model 'prophet'" in unknown.output
    missing = runner.invoke(app, ["backtest", "--prices", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "price file not found" in missing.output


def test_run_writes_forecasts_and_regimes(db_url: str, engine: sa.Engine) -> None:
    prices = str(data_file("prices/binance-ethusdt-daily.csv"))
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


def test_run_with_the_hmm_filter_records_which_model_gave_the_regimes(db_url: str, engine: sa.Engine) -> None:
    prices = str(data_file("prices/binance-btcusdt-daily.csv"))
    base = ["run", "--prices", prices, "--asset", "BTC", "--models", "ewma", "--database-url", db_url]
    result = runner.invoke(app, [*base, "--regime-model", "hmm"])
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        probs = conn.execute(sa.select(tables.regime_probabilities)).all()
    assert len(probs) == 60 and {p.model_version.split(":")[0] for p in probs} == {"hmm-2"}
    calm, turbulent = (next(p.daily_vol for p in probs if p.regime == r) for r in (0, 1))
    assert 0 < calm < turbulent
    bad = runner.invoke(app, [*base, "--regime-model", "hmm9"])
    assert bad.exit_code != 0 and "unknown regime model 'hmm9'" in bad.output


def test_regime_drivers_reach_the_filter_from_the_command_line() -> None:
    prices = str(data_file("prices/binance-ethusdt-daily.csv"))
    # 2022-05-09: a stress day the filter does not already call turbulent with certainty (on 2021-05-19
    # both filters say 1 to within rounding, so no difference could show there).
    args = ["--prices", prices, "--start", "2022-05-09", "--end", "2022-05-20", "--models", "log-har"]
    plain = _backtest(*args)["regimes"]
    driven = _backtest(*args, "--regime-drivers", "neg_ret")["regimes"]
    assert isinstance(plain, dict) and isinstance(driven, dict)
    assert plain["drivers"] == [] and driven["drivers"] == ["neg_ret"]
    # Ignoring the drivers would leave the filtered probability where it was.
    before, after = plain["stress_p_high"]["2022-05-09"], driven["stress_p_high"]["2022-05-09"]
    assert 0.5 < before < 0.999 and abs(after - before) > 1e-4
    missing = runner.invoke(app, ["backtest", *args, "--regime-drivers", "liq_count"])
    assert (
        missing.exit_code == 2 and "regime driver 'liq_count' is not a column of the data" in missing.output
    )
    wrong = runner.invoke(app, ["backtest", *args, "--regime-drivers", "neg_ret", "--regime-model", "hmm"])
    assert wrong.exit_code == 2 and "regime drivers need the markov regime model" in wrong.output


def test_run_takes_an_on_chain_file_and_defaults_to_the_service_models(
    db_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    from analytics import SERVICE_MODELS
    from analytics.onchain import COLUMNS

    # The last 600 days of the ETH file (newest first): enough for the choice on the last year, and a
    # Markov-switching fit with drivers in seconds rather than half a minute.
    lines = data_file("prices/binance-ethusdt-daily.csv").read_text().splitlines(keepends=True)
    recent = tmp_path / "eth-recent.csv"
    recent.write_text("".join(lines[:601]))
    prices = str(recent)
    days = pd.date_range("2024-01-01", "2025-05-01", freq="D")
    rng = np.random.default_rng(1)
    onchain = tmp_path / "onchain.csv"
    frame = pd.DataFrame(np.log1p(rng.poisson(2.0, (len(days), len(COLUMNS)))), columns=list(COLUMNS))
    frame.insert(0, "date", days.strftime("%Y-%m-%d"))
    frame.to_csv(onchain, index=False)
    # The on-chain file reaches the run: one of its columns drives the regime filter.
    args = ["run", "--prices", prices, "--database-url", db_url, "--onchain", str(onchain)]
    result = runner.invoke(app, [*args, "--regime-drivers", "liq_count"])
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tables.volatility_forecasts)).all()
        regimes = conn.execute(sa.select(tables.regime_probabilities)).all()
    assert {r.model for r in rows} == set(SERVICE_MODELS)
    versions = {r.model: r.model_version for r in rows}
    assert versions["log-har-rls"].startswith("log-har-rls[forgetting=")
    assert {r.model_version.split(":")[0] for r in regimes} == {"markov-2[liq_count]"}
    missing = runner.invoke(app, ["run", "--prices", prices, "--onchain", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "--onchain" in missing.output
