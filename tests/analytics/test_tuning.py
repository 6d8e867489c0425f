from __future__ import annotations

import math

import pytest
import torch

from analytics.tuning import tune_neural
from tests.conftest import data_file

torch.set_num_threads(1)


def test_search_only_sees_data_up_to_the_cutoff() -> None:
    prices = data_file("prices/binance-ethusdt-daily.csv")
    result = tune_neural(prices, "parkinson", "2018-12-31", validation_days=30, trials=1, objective="blend")
    assert result["validation_start"] == "2018-12-02"
    assert math.isfinite(result["best_qlike"])
    assert set(result["params"]) >= {"cell", "hidden", "lookback", "lr", "asymmetry", "seed"}


def test_too_little_history_before_the_cutoff_is_named() -> None:
    prices = data_file("prices/binance-ethusdt-daily.csv")
    with pytest.raises(ValueError, match="tuning needs 665 days up to 2018-06-01, the price file has"):
        tune_neural(prices, "parkinson", "2018-06-01", validation_days=365, trials=1)
