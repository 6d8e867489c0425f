"""Every on-chain frame the project produces works with every model that takes on-chain input, and the
regime filter's drivers reach the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from analytics.backtest import BacktestError
from analytics.features import load_onchain
from analytics.live import latest_forecasts
from analytics.neural import NeuralConfig
from analytics.onchain import COLUMNS
from analytics.regimes import MarkovSwitching
from analytics.report import (
    MODEL_NAMES,
    ONCHAIN_MODELS,
    BacktestConfig,
    build_model,
    markdown_table,
    model_frame,
    regime_model,
    run_backtest,
)
from tests.conftest import data_file

torch.set_num_threads(1)
ETH = "prices/binance-ethusdt-daily.csv"
AAVE = "defi/aave-v2-liquidations-2020-12-to-2022-04.csv"
TINY = NeuralConfig(hidden=4, lookback=10, epochs=4, patience=2)


def _indexed_features(path: Path) -> Path:
    """A file shaped like `chainrisk forecast onchain` output: a date column, then `onchain.COLUMNS`."""
    days = pd.date_range("2020-06-01", "2021-08-31", freq="D")
    rng = np.random.default_rng(8)
    frame = pd.DataFrame(np.log1p(rng.poisson(3.0, (len(days), len(COLUMNS)))), columns=list(COLUMNS))
    frame["flow_net_usd"] = rng.normal(size=len(days))
    frame["onchain_observed"] = 1.0
    frame.insert(0, "date", days.strftime("%Y-%m-%d"))
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(params=["aave-liquidations", "forecast-onchain"])
def onchain_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "aave-liquidations":
        return data_file(AAVE)
    return _indexed_features(tmp_path / "onchain.csv")


def test_the_list_of_on_chain_models_is_complete() -> None:
    # A model takes on-chain input when a probe column reaches it.
    config = BacktestConfig(Path("."))
    takes = set()
    for name in MODEL_NAMES:
        try:
            model = build_model(name, config, ("liq_probe",))
        except BacktestError:  # panel-log-har without a partner file
            continue
        if "liq_probe" in repr(model):
            takes.add(name)
    assert takes == set(ONCHAIN_MODELS)


def test_every_on_chain_model_runs_on_every_on_chain_frame(onchain_file: Path) -> None:
    config = BacktestConfig(
        prices=data_file(ETH),
        onchain=onchain_file,
        start="2021-07-01",
        end="2021-07-31",
        models=ONCHAIN_MODELS,
        refit_every=31,
        neural_refit_every=31,
        neural=TINY,
        mcs_reps=50,
    )
    out = run_backtest(config)
    assert set(out["models"]) == set(ONCHAIN_MODELS) and out["days"] == 31
    rows = out["models"]
    assert all(np.isfinite(row["qlike"]) and row["qlike_median"] > 0 for row in rows.values())
    # Each recalibrating model is compared with the periodic refit it would replace.
    assert rows["log-har-x-rls"]["vs_periodic"]["model"] == "log-har-x"
    assert rows["log-har-x-ridge"]["vs_periodic"]["model"] == "log-har-x"
    assert 0.0 <= rows["log-har-x-ridge"]["vs_periodic"]["dm_pvalue"] <= 1.0
    assert "vs_periodic" not in rows["log-har-x"]
    assert rows["log-har-x-ridge"]["recalibration"]["parameter"] == "alpha"
    table = markdown_table(out)
    assert "| log-har-x-ridge | alpha = " in table and "vs log-har-x (" in table
    columns = tuple(load_onchain(onchain_file).columns)
    # HAR-X takes the leverage term and every column the file holds, whichever file it is.
    assert build_model("log-har-x-rls", config, columns).features == ("neg_ret", *columns)  # type: ignore[attr-defined]


def test_liquidation_models_name_a_file_without_liquidation_columns(tmp_path: Path) -> None:
    days = pd.date_range("2020-06-01", "2021-08-31", freq="D").strftime("%Y-%m-%d")
    path = tmp_path / "flows.csv"
    pd.DataFrame({"date": days, "flow_net_usd": 1.0}).to_csv(path, index=False)
    config = BacktestConfig(data_file(ETH), onchain=path, start="2021-07-01", end="2021-07-31")
    with pytest.raises(
        BacktestError, match=r"model 'log-har-liq' needs liquidation columns \(liq_\*\) in the on-chain"
    ):
        run_backtest(BacktestConfig(**{**config.__dict__, "models": ("log-har-liq",)}))
    clash = tmp_path / "clash.csv"
    pd.DataFrame({"date": days, "neg_ret": 1.0}).to_csv(clash, index=False)
    with pytest.raises(BacktestError, match="column 'neg_ret' is a price column; rename it"):
        model_frame(data_file(ETH), "parkinson", clash)


def test_latest_forecasts_take_on_chain_columns_and_record_the_chosen_value(tmp_path: Path) -> None:
    frame, columns = model_frame(data_file(ETH), "parkinson", _indexed_features(tmp_path / "f.csv"))
    rows = latest_forecasts(frame.loc[:"2021-08-31"], ("log-har-x-rls", "log-har-x"), columns)
    versions = {r["model"]: r["model_version"] for r in rows}
    assert versions["log-har-x-rls"].startswith("log-har-x-rls[forgetting=")
    assert versions["log-har-x"] == "log-har-x:analytics-1"
    assert all(r["variance"] > 0 for r in rows) and len(rows) == 4


def test_regime_drivers_reach_the_markov_filter() -> None:
    # End to end (the probabilities move with the drivers): tests/analytics/test_cli.py.
    description, model = regime_model("markov", ("neg_ret",))
    assert isinstance(model, MarkovSwitching) and model.tvtp == ("neg_ret",)
    assert "driven by lagged neg_ret" in description


def test_regime_drivers_are_checked() -> None:
    with pytest.raises(BacktestError, match=r"regime drivers need the markov regime model .* got 'hmm'"):
        regime_model("hmm", ("neg_ret",))
    config = BacktestConfig(
        data_file(ETH),
        start="2021-05-19",
        end="2021-05-31",
        models=("log-har",),
        regime_drivers=("liq_count",),
    )
    with pytest.raises(
        BacktestError, match="regime driver 'liq_count' is not a column of the data; the columns"
    ):
        run_backtest(config)
