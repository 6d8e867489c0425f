from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from analytics.backtest import one_day_ahead
from analytics.baselines import HAR, InsufficientHistoryError, VolatilityModel
from analytics.evaluation import qlike
from analytics.rvmodels import (
    CANDIDATES,
    HARQ,
    LHAR,
    PanelHAR,
    QuarterlyHAR,
    RangeHAR,
    quarticity_ratio,
    select,
    validation,
)


def _frame(days: int, seed: int, start: str = "2018-01-01") -> pd.DataFrame:
    """A persistent log-variance path with noisy range-like measures of it."""
    rng = np.random.default_rng(seed)
    level = np.zeros(days)
    for t in range(1, days):
        level[t] = 0.95 * level[t - 1] + 0.3 * rng.standard_normal()
    true = 1e-3 * np.exp(level)
    index = pd.date_range(start, periods=days, freq="D", tz="UTC")
    return pd.DataFrame(
        {
            "ret": np.sqrt(true) * rng.standard_normal(days),
            "target": true * rng.chisquare(4, days) / 4,
            "gk_var": true * rng.chisquare(6, days) / 6,
            "rs_var": true * rng.chisquare(3, days) / 3,
            "true": true,
        },
        index=index,
    )


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return _frame(500, seed=3)


@pytest.fixture(scope="module")
def partner() -> pd.DataFrame:
    return _frame(500, seed=4)


def _models(partner: pd.DataFrame) -> list[VolatilityModel]:
    return [RangeHAR(), HARQ(), LHAR(), QuarterlyHAR(), PanelHAR(partner)]


@pytest.mark.parametrize("which", range(5), ids=["range", "harq", "lhar", "quarterly", "panel"])
def test_forecast_for_day_t_ignores_data_after_t(
    data: pd.DataFrame, partner: pd.DataFrame, which: int
) -> None:
    start, end = data.index[400], data.index[429]
    cut = data.index[415]
    base = one_day_ahead(_models(partner)[which], data, start, end, refit_every=10)
    altered, altered_partner = data.copy(), partner.copy()
    columns = ["ret", "target", "gk_var", "rs_var"]
    altered.loc[altered.index >= cut, columns] *= 7.0
    altered_partner.loc[altered_partner.index >= cut, columns] *= 7.0
    changed = one_day_ahead(_models(altered_partner)[which], altered, start, end, refit_every=10)
    before = base.variance.index <= cut
    np.testing.assert_allclose(changed.variance[before], base.variance[before], rtol=1e-12)
    assert not np.allclose(changed.variance[~before], base.variance[~before])


@pytest.mark.parametrize("which", range(5), ids=["range", "harq", "lhar", "quarterly", "panel"])
def test_each_model_tracks_the_true_variance(data: pd.DataFrame, partner: pd.DataFrame, which: int) -> None:
    model = _models(partner)[which]
    fc = one_day_ahead(model, data, data.index[300], data.index[-1], refit_every=25)
    truth = data["true"].loc[fc.variance.index]
    assert np.corrcoef(np.log(fc.variance), np.log(truth))[0, 1] > 0.75
    # Comparable with log-HAR on data that has no extra structure: within 10% in QLIKE.
    har = one_day_ahead(HAR(), data, data.index[300], data.index[-1], refit_every=25)
    proxy = data["target"].loc[fc.variance.index]
    assert qlike(proxy, fc.variance) < 1.1 * qlike(proxy, har.variance)
    assert model.fit(data).path(data, 3).shape == (3,)


def test_range_model_finds_a_more_precise_estimator() -> None:
    # Garman–Klass here is far less noisy than the target: its coefficient should dominate.
    data = _frame(600, seed=5)
    rng = np.random.default_rng(6)
    data["gk_var"] = data["true"] * np.exp(0.05 * rng.standard_normal(len(data)))
    fitted = RangeHAR().fit(data)
    names = ["const", "d", "w", "m", "gk", "rs", "cc"]
    beta = dict(zip(names, fitted.beta, strict=True))
    assert beta["gk"] > max(abs(beta["d"]), abs(beta["rs"]), abs(beta["cc"]))


def test_lhar_picks_up_a_leverage_effect() -> None:
    data = _frame(800, seed=7)
    # Tomorrow's variance rises after a negative return today.
    neg = data["ret"].clip(upper=0.0).shift(1).fillna(0.0)
    data["target"] = data["target"] * np.exp(-40.0 * neg)
    fitted = LHAR().fit(data)
    # const, d, w, m, neg_d, neg_w, neg_m, abs_d
    assert fitted.beta[4] < -10.0


def test_quarticity_ratio_is_zero_for_equal_ranges() -> None:
    flat = pd.Series(np.full(10, 2e-3))
    assert np.allclose(quarticity_ratio(flat).dropna(), 0.0)
    uneven = pd.Series([1e-3, 1e-3, 1e-3, 1e-3, 1e-2])
    assert quarticity_ratio(uneven).iloc[-1] > 0.5


def test_panel_uses_only_partner_rows_up_to_the_last_history_day(
    data: pd.DataFrame, partner: pd.DataFrame
) -> None:
    history = data.iloc[:300]
    a = PanelHAR(partner).fit(history)
    b = PanelHAR(partner.iloc[:300]).fit(history)
    np.testing.assert_array_equal(a.beta, b.beta)
    # The partner changes the fit: it is not the single-asset regression.
    single = HAR().fit(history)
    assert not np.allclose(a.beta[:4], single.beta)


def test_too_little_history_and_missing_columns_are_named(data: pd.DataFrame, partner: pd.DataFrame) -> None:
    with pytest.raises(InsufficientHistoryError, match="lhar needs at least 100"):
        LHAR().fit(data.iloc[:50])
    with pytest.raises(InsufficientHistoryError, match="panel-log-har"):
        PanelHAR(partner).fit(data.iloc[:50])
    with pytest.raises(ValueError, match="gk_var"):
        RangeHAR().fit(data.drop(columns="gk_var"))


def test_validation_ignores_rows_after_the_cutoff_and_selects_the_lowest_ratio(
    data: pd.DataFrame, partner: pd.DataFrame
) -> None:
    until = str(data.index[449].date())
    builders: dict[str, Callable[[str], VolatilityModel]] = {
        "log-har": lambda asset: HAR(),
        "lhar": lambda asset: LHAR(),
        "log-harq": lambda asset: HARQ(),
    }
    frames = {"a": data, "b": partner}
    out = validation(frames, builders, str(data.index[400].date()), until, refit_every=25)
    altered = {
        k: v.assign(target=np.where(v.index > data.index[449], 1.0, v["target"])) for k, v in frames.items()
    }
    again = validation(altered, builders, str(data.index[400].date()), until, refit_every=25)
    assert out == again
    assert out["days"] == {"a": 50, "b": 50}
    assert out["models"]["log-har"]["mean_ratio"] == 1.0
    chosen = select(out)
    assert chosen in ("lhar", "log-harq")
    others = [n for n in ("lhar", "log-harq") if n != chosen]
    assert out["models"][chosen]["mean_ratio"] <= out["models"][others[0]]["mean_ratio"]
    assert set(CANDIDATES) == {"log-har-range", "log-harq", "lhar", "panel-log-har", "log-har-q"}


def test_cli_runs_the_new_models_by_name_and_validates() -> None:
    import json

    from typer.testing import CliRunner

    from chainrisk.commands.forecast import app
    from tests.conftest import data_file

    runner = CliRunner()
    eth = str(data_file("prices/binance-ethusdt-daily.csv"))
    btc = str(data_file("prices/binance-btcusdt-daily.csv"))
    window = ["--start", "2019-05-01", "--end", "2019-05-31", "--refit-every", "30", "--json"]
    models = "log-har," + ",".join(CANDIDATES)
    result = runner.invoke(
        app, ["backtest", "--prices", eth, "--panel-prices", btc, "--models", models, *window]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["models"]) == {"log-har", *CANDIDATES}
    assert all(np.isfinite(row["qlike"]) for row in out["models"].values())

    missing = runner.invoke(app, ["backtest", "--prices", eth, "--models", "panel-log-har", *window])
    assert missing.exit_code == 2 and "--panel-prices" in missing.output

    args = ["validate", "--prices", eth, "--prices", btc, "--start", "2019-12-01", "--until", "2019-12-31"]
    checked = runner.invoke(app, [*args, "--refit-every", "31", "--json"])
    assert checked.exit_code == 0, checked.output
    table = json.loads(checked.stdout)
    assert table["selected"] in CANDIDATES
    assert table["days"] == {"binance-ethusdt-daily.csv": 31, "binance-btcusdt-daily.csv": 31}
