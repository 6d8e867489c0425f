"""Monte Carlo scenarios from the analytics: the draws carry the forecast volatility and the correlation
estimated from the recorded prices, FHS resamples real joint days, stress days are the recorded moves, the
same seed draws the same factors, the database's forecasts and regimes are preferred, and bad flags are
refused before the database is opened."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner, Result

from chainrisk.cli import app
from chainrisk.contagion import scenarios as sc
from chainrisk.contagion.inputs import Inputs
from chainrisk.contagion.var import var_request
from chainrisk.db import to_libpq_url
from chainrisk.inputs import OptionError
from graph.cascade import OracleModel

USD = 10**8
WETH, WBTC, WSTETH, USDC, LINK = "0xaa", "0xbb", "0xcc", "0xdd", "0xee"
N = 200_000


def _inputs(*extra: tuple[str, str, int]) -> Inputs:
    """Oracles and symbols only: what the scenarios read of the inputs (no market is needed to draw)."""
    assets = [(WETH, "WETH", 3_000), (WBTC, "WBTC", 60_000), (WSTETH, "wstETH", 3_500), (USDC, "USDC", 1)]
    assets += list(extra)
    oracles = {a: OracleModel(p * USD) for a, _, p in assets}
    return Inputs(1, 1, (), {}, {}, {}, oracles, {a: s for a, s, _ in assets}, {})


@pytest.fixture(scope="module")
def t_model() -> sc.ScenarioModel:
    return sc.scenario_model(_inputs(), var_request(N, 7, [], df=8.0, regimes=False))


def _within(sample: np.ndarray, expected: float, what: str) -> None:
    """The sample mean of ``sample`` is ``expected`` within five of its own standard errors."""
    se = float(sample.std()) / math.sqrt(sample.size)
    assert abs(float(sample.mean()) - expected) < 5 * se, (what, float(sample.mean()), expected, se)


def test_student_t_draws_carry_the_forecast_vol_and_the_estimated_correlation(
    t_model: sc.ScenarioModel,
) -> None:
    model = t_model
    assert model.assets == (WETH, WBTC, WSTETH) and model.columns == ("BTC", "ETH")
    record: dict[str, Any] = model.record
    assert record["corr"]["source"] == "estimated" and record["df_source"] == "flag"
    assert {v["source"] for v in record["vol"].values()} == {"computed"}
    assert record["history"]["days"] == sc.DEFAULT_HISTORY_DAYS
    rho = model.corr[0, 1]
    assert 0.5 < rho < 0.99  # ETH and BTC daily returns over three years
    returns = np.log(sc.draw(model, N, 7))
    for j, asset in enumerate(model.assets):
        _within(returns[:, j] ** 2, model.vol[j] ** 2, asset)  # the forecast variance
    eth, btc = returns[:, 0] / model.vol[0], returns[:, 1] / model.vol[1]
    _within(eth * btc, rho, "covariance of the unit returns")  # the estimated correlation
    np.testing.assert_allclose(returns[:, 2], returns[:, 0])  # wstETH follows the ETH series


def test_the_correlation_is_that_of_the_recorded_daily_log_returns(t_model: sc.ScenarioModel) -> None:
    from analytics.loaders import load_ohlcv

    closes = {
        name: load_ohlcv(sc.PRICES / path).bars["close"] for name, path in sorted(sc.SERIES_FILES.items())
    }
    returns = pd.concat({n: np.log(c).diff() for n, c in closes.items()}, axis=1, join="inner").dropna()
    window = returns.iloc[-sc.DEFAULT_HISTORY_DAYS :]
    history = t_model.record["history"]
    assert isinstance(history, dict)
    assert str(window.index[0].date()) == history["first"] and str(window.index[-1].date()) == history["last"]
    assert t_model.corr[0, 1] == pytest.approx(float(window.corr().iloc[0, 1]), abs=1e-12)


def test_regime_mixture_keeps_the_forecast_variance() -> None:
    model = sc.scenario_model(_inputs(), var_request(N, 7, [], df=30.0, horizon="3d"))
    assert model.regime_p is not None and model.regime_scale is not None
    for p, scale in zip(model.regime_p, model.regime_scale, strict=True):
        assert len(p) == 2 and scale[0] < 1 < scale[1]  # calm below the forecast, turbulent above
        assert sum(q / sum(p) * s**2 for q, s in zip(p, scale, strict=True)) == pytest.approx(1.0)
    returns = np.log(sc.draw(model, N, 11))
    for j in range(2):
        _within(returns[:, j] ** 2, model.vol[j] ** 2, model.assets[j])
        assert model.vol[j] > model.daily[j] * 1.5  # three days' volatility


def test_fhs_resamples_real_joint_residual_days() -> None:
    model = sc.scenario_model(_inputs(), var_request(1_000, 3, [], method="fhs", regimes=False))
    assert model.residuals is not None and model.residuals.shape == (sc.DEFAULT_HISTORY_DAYS, 2)
    np.testing.assert_allclose(np.sqrt((model.residuals**2).mean(axis=0)), 1.0)
    unit = np.log(sc.draw(model, 1_000, 3)) / np.asarray(model.vol)
    by_column = unit[:, [model.assets.index(WBTC), model.assets.index(WETH)]]
    distance = np.abs(by_column[:, None, :] - model.residuals[None, :, :]).max(axis=2).min(axis=1)
    assert distance.max() < 1e-9  # every scenario is one recorded day of both series, whole
    assert len({tuple(np.round(row, 9)) for row in by_column}) > 500


def test_stress_days_are_the_recorded_moves_and_stay_out_of_the_sample() -> None:
    from analytics.loaders import load_ohlcv

    closes = {name: load_ohlcv(sc.PRICES / path).bars["close"] for name, path in sc.SERIES_FILES.items()}

    def close(name: str, day: str) -> float:
        return float(closes[name].loc[pd.Timestamp(day, tz="UTC")])

    one = sc.scenario_model(_inputs(), var_request(10, 1, [], df=4.0, stress_days=sc.STRESS_DAYS))
    assert list(one.stress) == list(sc.STRESS_DAYS)
    eth = close("ETH", "2020-03-12") / close("ETH", "2020-03-11")
    btc = close("BTC", "2020-03-12") / close("BTC", "2020-03-11")
    assert one.stress["2020-03-12"] == (eth, btc, eth) and 0.5 < eth < 0.7
    assert sc.draw(one, 10, 1).shape == (10, 3)  # the Monte Carlo sample only
    assert one.record["stress_days"] == {
        d: dict(zip(one.assets, f, strict=True)) for d, f in one.stress.items()
    }
    three = sc.scenario_model(
        _inputs(), var_request(10, 1, [], df=4.0, horizon="3d", stress_days=["2022-11-09"])
    )
    assert three.stress["2022-11-09"][0] == close("ETH", "2022-11-11") / close("ETH", "2022-11-08")


def test_the_same_seed_draws_the_same_factors(t_model: sc.ScenarioModel) -> None:
    first = sc.draw(t_model, 1_000, 42)
    np.testing.assert_array_equal(first, sc.draw(t_model, 1_000, 42))
    assert not np.array_equal(first, sc.draw(t_model, 1_000, 43))


def test_a_run_draws_again_from_its_recorded_inputs(t_model: sc.ScenarioModel) -> None:
    fhs = sc.scenario_model(
        _inputs(), var_request(10, 1, [], method="fhs", horizon="3d", stress_days=["2021-05-19"])
    )
    for model in (t_model, fhs):
        record = json.loads(json.dumps(model.record))  # as a --json document carries it
        again = sc.model_from_record(_inputs(), record)
        np.testing.assert_array_equal(sc.draw(again, 2_000, 5), sc.draw(model, 2_000, 5))
        assert again.stress == model.stress and again.record == record
    with pytest.raises(OptionError, match="--replay: the recorded run moved WETH, WBTC, wstETH; the assets"):
        sc.model_from_record(_inputs((LINK, "LINK", 15)), t_model.record)


def test_the_database_forecast_and_regimes_come_first(db_url: str) -> None:
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        run = conn.execute(
            "INSERT INTO forecast_runs (asset, target, source, input_start, input_end, code_version)"
            " VALUES ('ETH', 'parkinson', 'file', '2020-01-01', '2026-11-29', 'v') RETURNING id"
        ).fetchone()
        assert run is not None
        for horizon, vol in ((1, 0.031), (7, 0.09)):
            conn.execute(
                "INSERT INTO volatility_forecasts VALUES (%s, 'log-har-rls', %s, 'log-har-rls:v', 'ETH',"
                " '2026-11-29', %s, %s, 0.9, -0.1, 0.1)",
                (run[0], horizon, vol**2, vol),
            )
        for day, calm in (("2026-11-28", 0.9), ("2026-11-29", 0.6)):
            for regime, p, v in ((0, calm, 0.02), (1, 1 - calm, 0.06)):
                conn.execute(
                    "INSERT INTO regime_probabilities VALUES (%s, %s, %s, 2, 'markov-2:v', 'ETH', %s, %s)",
                    (run[0], day, regime, p, v),
                )
        conn.commit()
        three = sc.scenario_model(_inputs(), var_request(10, 1, [], horizon="3d"), conn)
        seven = sc.scenario_model(_inputs(), var_request(10, 1, ["WBTC=0.02"], horizon="7d"), conn)
    eth: dict[str, Any] = three.record["vol"][WETH]  # type: ignore[index]
    assert eth["source"] == "database" and eth["as_of"] == "2026-11-29" and eth["horizon_stored"] == 1
    assert eth["horizon"] == pytest.approx(0.031 * math.sqrt(3)) and eth["daily"] == pytest.approx(0.031)
    assert three.record["vol"][WBTC]["source"] == "computed"  # type: ignore[index]
    regimes: dict[str, Any] = three.record["regimes"]  # type: ignore[assignment]
    assert regimes["ETH"]["source"] == "database" and regimes["ETH"]["day"] == "2026-11-29"
    assert regimes["ETH"]["probabilities"] == [0.6, 0.4] and regimes["ETH"]["daily_vols"] == [0.02, 0.06]
    assert regimes["BTC"]["source"] == "computed"
    assert seven.record["vol"][WETH]["horizon"] == 0.09  # type: ignore[index]  # the stored 7-day one
    wbtc = seven.record["vol"][WBTC]  # type: ignore[index]
    assert wbtc["source"] == "flag" and wbtc["horizon"] == pytest.approx(0.02 * math.sqrt(7))


def _oracle_history(
    conn: psycopg.Connection[Any], token: str, symbol: str, days: int, first_block: int
) -> None:
    """``days`` days of a tracked token's feed, six answers a day from 2023-01-01 (a 3 %/day random walk)."""
    feed = f"0xfeed{token[2:]}"
    conn.execute(
        "INSERT INTO tracked_tokens (chain_id, token, symbol, decimals, whale_threshold_usd, price_feed,"
        " price_decimals) VALUES (1, %s, %s, 18, 0, %s, 8)",
        (token, symbol, feed),
    )
    steps = np.random.default_rng(days).normal(0, 0.03 / math.sqrt(6), days * 6)
    prices = 2_000 * np.exp(np.cumsum(steps))
    start = 1_672_531_200  # 2023-01-01T00:00:00Z
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO price_answer_updated (chain_id, block_number, log_index, block_hash, tx_hash,"
            " address, current, round_id, updated_at) VALUES (1, %s, 0, '0x', '0x', %s, %s, %s, %s)",
            [(first_block + i, feed, int(p * USD), i, start + i * 14_400) for i, p in enumerate(prices)],
        )


def test_a_long_database_price_history_replaces_the_file(db_url: str) -> None:
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        _oracle_history(conn, WETH, "WETH", 800, 0)
        _oracle_history(conn, WBTC, "WBTC", 100, 10_000)
        conn.commit()
        request = var_request(10, 1, [], method="fhs", history_days=365)
        model = sc.scenario_model(_inputs(), request, conn)
        record: dict[str, Any] = model.record
        again = sc.model_from_record(_inputs(), json.loads(json.dumps(record)), conn)
    vol = record["vol"]
    assert (vol[WETH]["series"], vol[WETH]["database_price_days"]) == ("WETH@1", 800)
    assert (vol[WBTC]["series"], vol[WBTC]["database_price_days"]) == ("BTC", 100)  # too short: the file
    assert (vol[WSTETH]["series"], vol[WSTETH]["database_price_days"]) == ("ETH", 0)
    assert record["corr"]["columns"] == ["BTC", "ETH", "WETH@1"]
    database = record["history"]["series"]["WETH@1"]
    assert database["token"] == WETH and database["first"] == "2023-01-02"
    assert record["history"]["days"] == 365 and record["history"]["last"] == "2025-03-10"
    np.testing.assert_array_equal(sc.draw(again, 500, 2), sc.draw(model, 500, 2))


def test_an_asset_without_a_recorded_series_needs_its_vol_and_corr() -> None:
    inputs = _inputs((LINK, "LINK", 15))
    with pytest.raises(OptionError, match=r"no recorded price series for LINK: give .* --vol LINK=VOL"):
        sc.scenario_model(inputs, var_request(10, 1, [], df=4.0))
    with pytest.raises(OptionError, match=r"LINK has no recorded price series, so its correlation .* --corr"):
        sc.scenario_model(inputs, var_request(10, 1, ["LINK=0.08"], df=4.0))
    with pytest.raises(OptionError, match="--method fhs: LINK has no recorded price series to resample"):
        sc.scenario_model(inputs, var_request(10, 1, ["LINK=0.08"], 0.7, method="fhs"))
    model = sc.scenario_model(inputs, var_request(10, 1, ["LINK=0.08"], 0.7, df=4.0, regimes=False))
    assert model.columns == ("BTC", "ETH", "LINK") and model.record["corr"]["source"] == "flag"  # type: ignore[index]
    np.testing.assert_array_equal(model.corr, [[1, 0.7, 0.7], [0.7, 1, 0.7], [0.7, 0.7, 1]])
    assert model.daily[model.assets.index(LINK)] == 0.08


# ------------------------------------------------------------------------------------------- CLI

UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:9/none"


def _var(tmp_path: Path, *args: str) -> Result:
    path = tmp_path / "chainrisk.toml"
    path.write_text("")
    env: dict[str, str | None] = {
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(path),
        "CHAINRISK_DATABASE_URL": UNREACHABLE_DB,
        "CHAINRISK_LOG_LEVEL": "WARNING",
        "CHAINRISK_METRICS_PORT": None,
    }
    return CliRunner().invoke(app, ["contagion", "var", *args], env=env)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "mc"], "--method 'mc': expected t (Student-t) or fhs (filtered historical simulation)"),
        (["--horizon", "2d"], "--horizon '2d': expected one of 1d, 3d, 7d"),
        (["--method", "fhs", "--df", "4"], "--df 4.0: degrees of freedom apply to --method t only"),
        (["--df", "2"], "--df 2.0: expected degrees of freedom above 2"),
        (["--corr", "1"], "--corr 1.0: expected a correlation in [0, 1)"),
        (["--history-days", "10"], "--history-days 10: expected 60 to 7,300 days"),
        (["--stress-day", "2022-13-01"], "--stress-day '2022-13-01': not a date; expected YYYY-MM-DD"),
        (["--vol", "ETH=2"], "--vol 'ETH=2': expected SYMBOL=VOL"),
        (["--replay", "run.json", "--seed", "3"], "--replay takes the seed, scenario count and every"),
        (["--replay", "missing.json"], "missing.json': JSON document not found"),
        (["--replay", "run.json"], "run.json': not the --json document of a contagion var run"),
    ],
)
def test_bad_flags_are_refused_before_the_database(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "run.json").write_text('{"inputs": {}}')
    result = _var(tmp_path, *(str(tmp_path / a) if a.endswith(".json") else a for a in args))
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert result.stdout == "" and not (tmp_path / "home").exists()


# ------------------------------------------------------------------------------------------- devnet

from tests.test_contagion_cli import _run, indexed  # noqa: E402, F401  (the indexed devnet, shared)


@pytest.mark.slow
def test_a_devnet_run_replays_exactly_and_its_stress_days_cascade(
    indexed: tuple[str, int],  # noqa: F811
    tmp_path: Path,
) -> None:
    from chainrisk.contagion.inputs import load_inputs

    db, head = indexed
    args = (
        "--scenarios",
        "20",
        "--seed",
        "5",
        "--method",
        "fhs",
        "--horizon",
        "3d",
        "--stress-days",
        "--json",
    )
    first = _run(db, tmp_path, *args, command="var")
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    given = document["inputs"]
    assert document["block"] == head and given["method"] == "fhs" and given["horizon_days"] == 3
    assert list(given["stress_days"]) == list(sc.STRESS_DAYS)
    assert {v["symbol"]: v["series"] for v in given["vol"].values()} == {
        "WETH": "ETH",
        "WBTC": "BTC",
        "wstETH": "ETH",
    }
    (tmp_path / "run.json").write_text(first.stdout)
    again = _run(db, tmp_path, "--replay", str(tmp_path / "run.json"), "--json", command="var")
    assert again.returncode == 0, again.stderr
    replayed = json.loads(again.stdout)
    assert replayed.pop("run_id") > document.pop("run_id")  # stored as a run of its own
    assert replayed == document

    with psycopg.connect(to_libpq_url(db)) as conn:
        inputs = load_inputs(conn, None, head)
    request = var_request(10, 5, [], df=4.0, stress_days=["2020-03-12", "2022-11-09"], regimes=False)
    results = sc.stress_results(inputs, request)
    assert [r["day"] for r in results] == ["2020-03-12", "2022-11-09"]
    crash: dict[str, Any] = results[0]
    weth = next(f["factor"] for f in crash["factors"].values() if f["symbol"] == "WETH")
    assert 0.5 < weth < 0.7 and crash["depth"] >= 1  # ETH's 2020-03-12 fall liquidates on the devnet
