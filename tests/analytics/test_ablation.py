from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analytics.ablation import AblationConfig, ablate, feature_groups, variants
from analytics.neural import NeuralConfig

torch.set_num_threads(1)


def test_groups_follow_column_prefixes_and_share_the_coverage_flag() -> None:
    columns = ["liq_count", "liq_usd", "hf_mass_below_1_05", "car_usd_10pct", "flow_net", "onchain_observed"]
    groups = feature_groups(columns)
    assert groups == {
        "liq": ("liq_count", "liq_usd", "onchain_observed"),
        "hf": ("hf_mass_below_1_05", "onchain_observed"),
        "car": ("car_usd_10pct", "onchain_observed"),
        "flow": ("flow_net", "onchain_observed"),
    }


def test_variants_remove_and_add_each_group() -> None:
    table = variants({"lev": ("neg_ret",), "liq": ("liq_count", "x_flag"), "gov": ("gov_changes", "x_flag")})
    assert table["full"] == ("neg_ret", "liq_count", "x_flag", "gov_changes")
    assert table["base"] == ()
    assert table["-liq"] == ("neg_ret", "gov_changes", "x_flag")
    assert table["+gov"] == ("gov_changes", "x_flag")
    assert set(table) == {"full", "base", "-lev", "+lev", "-liq", "+liq", "-gov", "+gov"}


def _informative(days: int = 700, seed: int = 2) -> pd.DataFrame:
    """log variance driven by a known `sig_a` shock the day before; `noise_b` is unrelated."""
    rng = np.random.default_rng(seed)
    shock = (rng.uniform(size=days) < 0.1).astype(float)
    noise = rng.normal(size=days)
    log_var = np.log(4e-4) + 1.5 * np.r_[0.0, shock[:-1]]
    target = np.exp(log_var) * rng.chisquare(8, days) / 8
    index = pd.date_range("2018-01-01", periods=days, freq="D", tz="UTC")
    ret = rng.normal(0.0, np.sqrt(np.exp(log_var)))
    frame = pd.DataFrame({"ret": ret, "target": target, "sig_a": shock, "noise_b": noise}, index=index)
    return frame.assign(neg_ret=np.minimum(ret, 0.0))


def test_ablation_credits_the_informative_group() -> None:
    data = _informative()
    groups = feature_groups(["sig_a", "noise_b"])
    config = AblationConfig(
        str(data.index[500].date()), str(data.index[-1].date()), families=("har-x",), refit_every=25
    )
    scores = ablate(data, groups, config)["har-x"]["scores"]
    assert scores["+sig"]["vs_base"]["qlike_change"] < -0.1
    assert scores["+sig"]["vs_base"]["dm_pvalue"] < 0.01
    assert scores["-sig"]["vs_full"]["qlike_change"] > 0.1
    assert abs(scores["+noise"]["vs_base"]["qlike_change"]) < 0.02
    # With two groups, "-sig" and "+noise" are the same model, fitted once.
    assert scores["-sig"]["qlike"] == scores["+noise"]["qlike"]


def test_neural_family_runs_on_the_groups() -> None:
    data = _informative(days=400)
    config = AblationConfig(
        str(data.index[360].date()),
        str(data.index[-1].date()),
        families=("rnn-x",),
        neural_refit_every=60,
        neural=NeuralConfig(hidden=4, lookback=10, epochs=15, patience=5),
    )
    scores = ablate(data, {"sig": ("sig_a",)}, config)["rnn-x"]["scores"]
    assert set(scores) == {"full", "base", "-sig", "+sig"}
    assert all(np.isfinite(row["qlike"]) for row in scores.values())
    assert scores["full"]["qlike"] != scores["base"]["qlike"]


def test_unknown_family_is_named() -> None:
    data = _informative(days=300)
    config = AblationConfig("2018-10-01", "2018-10-20", families=("garch-x",))
    with pytest.raises(ValueError, match="unknown ablation family 'garch-x'"):
        ablate(data, {"sig": ("sig_a",)}, config)
