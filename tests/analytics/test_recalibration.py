"""Recalibration as data arrive: the update maths, no look-ahead, and the choice before the window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.backtest import BacktestError, one_day_ahead
from analytics.baselines import HAR, InsufficientHistoryError
from analytics.recalibration import ONLINE_BLOCK, choose, settings_before, tune
from analytics.recursive import NIGPrior, NIGState, RecalibrationError, RecursiveHAR, nig_batch, nig_update
from analytics.regularised import RidgeHAR, ridge
from tests.analytics.lookahead import assert_no_lookahead, backtest

RNG_SEED = 20


def _regression(n: int = 300, p: int = 5, seed: int = RNG_SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    y = x @ np.arange(1.0, p + 1.0) + rng.normal(size=n)
    return x, y


def _empty(p: int) -> NIGState:
    return NIGState(np.zeros((p, p)), np.zeros(p), 0.0, 0.0)


def _one_by_one(prior: NIGState, x: np.ndarray, y: np.ndarray, forgetting: float) -> NIGState:
    state = prior
    for row, value in zip(x, y, strict=True):
        state = nig_update(state, prior, row, float(value), forgetting)
    return state


def _har_frame(days: int = 500, seed: int = 3, features: bool = False) -> pd.DataFrame:
    """A persistent log-variance path, a noisy range-like target and (optionally) two exogenous columns."""
    rng = np.random.default_rng(seed)
    level = np.zeros(days)
    for t in range(1, days):
        level[t] = 0.95 * level[t - 1] + 0.3 * rng.standard_normal()
    true = 1e-3 * np.exp(level)
    index = pd.date_range("2018-01-01", periods=days, freq="D", tz="UTC")
    frame = pd.DataFrame(
        {"ret": np.sqrt(true) * rng.standard_normal(days), "target": true * rng.chisquare(4, days) / 4},
        index=index,
    )
    if features:
        frame["liq_count"] = np.log1p(rng.poisson(3.0 * np.exp(level)))
        frame["flow_net"] = rng.normal(size=days)
    return frame


# --- the update maths ------------------------------------------------------------------------------


def test_rls_with_forgetting_one_equals_batch_ols() -> None:
    x, y = _regression()
    state = _one_by_one(_empty(x.shape[1]), x, y, forgetting=1.0)
    ols, *_ = np.linalg.lstsq(x, y, rcond=None)
    np.testing.assert_allclose(state.mean(), ols, atol=1e-8, rtol=0)
    resid = y - x @ ols
    # b = ½ RSS and a = n/2 under a flat prior.
    assert state.rate() == pytest.approx(0.5 * resid @ resid, rel=1e-8)
    assert state.shape == pytest.approx(len(y) / 2)


def test_nig_posterior_mean_equals_the_ridge_solution_of_the_matching_prior() -> None:
    x, y = _regression()
    m0 = np.array([0.0, 0.5, -1.0, 2.0, 0.0])
    lam0 = np.diag([0.0, 3.0, 5.0, 10.0, 50.0])
    prior = NIGPrior(m0, lam0, shape=2.0, rate=1.5).state()
    state = _one_by_one(prior, x, y, forgetting=1.0)
    # Ridge toward m0 with penalty Λ0, solved as an augmented least-squares problem.
    root = np.sqrt(lam0)
    expected, *_ = np.linalg.lstsq(np.vstack([x, root]), np.r_[y, root @ m0], rcond=None)
    np.testing.assert_allclose(state.mean(), expected, atol=1e-8, rtol=0)
    mean = state.mean()
    rate = 1.5 + 0.5 * (y @ y + m0 @ lam0 @ m0 - mean @ (lam0 + x.T @ x) @ mean)
    assert state.rate() == pytest.approx(rate, rel=1e-9)
    assert state.shape == pytest.approx(2.0 + len(y) / 2)


def test_forgetting_is_exponentially_weighted_ridge_and_the_batch_form_agrees() -> None:
    x, y = _regression(n=200)
    lam0 = np.diag([0.0, 1.0, 1.0, 1.0, 1.0])
    prior = NIGPrior(np.zeros(5), lam0).state()
    recursive = _one_by_one(prior, x, y, forgetting=0.97)
    batch = nig_batch(prior, x, y, forgetting=0.97)
    np.testing.assert_allclose(recursive.precision, batch.precision, rtol=1e-10)
    np.testing.assert_allclose(recursive.mean(), batch.mean(), rtol=1e-10)
    assert recursive.energy == pytest.approx(batch.energy, rel=1e-10)
    w = np.sqrt(0.97 ** np.arange(len(y) - 1, -1, -1))
    expected, *_ = np.linalg.lstsq(np.vstack([x * w[:, None], np.sqrt(lam0)]), np.r_[y * w, np.zeros(5)])
    np.testing.assert_allclose(recursive.mean(), expected, atol=1e-8, rtol=0)


def test_forgetting_follows_a_break_that_full_memory_averages_away() -> None:
    rng = np.random.default_rng(RNG_SEED)
    n = 800
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    slope = np.where(np.arange(n) < 500, 1.0, 3.0)
    y = x[:, 1] * slope + 0.3 * rng.normal(size=n)
    prior = NIGPrior(np.zeros(2), np.diag([0.0, 1.0])).state()
    forgetting = _one_by_one(prior, x, y, 0.98).mean()[1]
    full = _one_by_one(prior, x, y, 1.0).mean()[1]
    assert forgetting == pytest.approx(3.0, abs=0.1)
    assert 1.5 < full < 2.5


def test_ridge_at_zero_penalty_is_ols_and_shrinks_as_the_penalty_grows() -> None:
    x, y = _regression()
    slopes, intercept, df = ridge(x[:, 1:], y, 0.0)
    ols, *_ = np.linalg.lstsq(x, y, rcond=None)
    np.testing.assert_allclose(np.r_[intercept, slopes], ols, atol=1e-10)
    assert df == pytest.approx(4.0)
    norms = [np.linalg.norm(ridge(x[:, 1:], y, a)[0] * x[:, 1:].std(axis=0)) for a in (0.0, 0.1, 1.0, 10.0)]
    assert norms == sorted(norms, reverse=True)
    assert ridge(x[:, 1:], y, 1.0)[2] < 4.0
    # Penalising only the last column: as α grows the fit becomes OLS on the others, with 3 + ε dof.
    mask = np.array([False, False, False, True])
    slopes, intercept, df = ridge(x[:, 1:], y, 1e9, mask)
    partial, *_ = np.linalg.lstsq(x[:, :4], y, rcond=None)
    np.testing.assert_allclose(np.r_[intercept, slopes[:3]], partial, atol=1e-6)
    assert df == pytest.approx(3.0, abs=1e-6)


# --- the models ------------------------------------------------------------------------------------


def test_recursive_har_without_forgetting_or_prior_has_the_ols_coefficients() -> None:
    data = _har_frame()
    fitted = RecursiveHAR(forgetting=1.0, prior_days=0.0).fit(data)
    np.testing.assert_allclose(fitted.state.mean(), HAR().fit(data).beta, atol=1e-8, rtol=0)


@pytest.mark.parametrize("features", [(), ("liq_count", "flow_net")], ids=["log-har-rls", "log-har-x-rls"])
def test_recursive_har_ignores_data_after_t(features: tuple[str, ...]) -> None:
    data = _har_frame(features=bool(features))
    model = RecursiveHAR(features=features, forgetting=0.98)
    start, end, cut = data.index[400], data.index[449], data.index[425]
    assert_no_lookahead(backtest(model, start, end, refit_every=10), data, cut, ["ret", "target", *features])


def test_recursive_har_forecasts_do_not_depend_on_when_it_was_fitted() -> None:
    data = _har_frame(features=True)
    model = RecursiveHAR(features=("liq_count", "flow_net"), forgetting=0.99)
    start, end = data.index[300], data.index[-1]
    once = one_day_ahead(model, data, start, end, refit_every=ONLINE_BLOCK).variance
    often = one_day_ahead(model, data, start, end, refit_every=7).variance
    np.testing.assert_allclose(often, once, rtol=1e-9)
    assert model.fit(data).path(data, 7).shape == (7,)


def test_ridge_har_at_zero_penalty_is_har_x_and_ignores_data_after_t() -> None:
    data = _har_frame(features=True)
    features = ("liq_count", "flow_net")
    start, end = data.index[400], data.index[449]
    ridge_fc = one_day_ahead(RidgeHAR(features, alpha=0.0), data, start, end, refit_every=10).variance
    har_fc = one_day_ahead(HAR(features=features), data, start, end, refit_every=10).variance
    np.testing.assert_allclose(ridge_fc, har_fc, rtol=1e-8)
    run = backtest(RidgeHAR(features, alpha=0.1), start, end, refit_every=10)
    assert_no_lookahead(run, data, data.index[425], ["ret", "target", *features])


def test_ridge_on_the_features_only_tends_to_log_har_and_on_all_slopes_to_a_constant() -> None:
    data = _har_frame(features=True)
    features = ("liq_count", "flow_net")
    start, end = data.index[400], data.index[449]
    strong = one_day_ahead(RidgeHAR(features, alpha=1e8), data, start, end, refit_every=10).variance
    har = one_day_ahead(HAR(), data, start, end, refit_every=10).variance
    np.testing.assert_allclose(strong, har, rtol=1e-5)
    flat = RidgeHAR(features, alpha=1e8, penalise="all").fit(data)
    assert np.abs(flat.beta[1:]).max() < 1e-6
    assert RidgeHAR(features, penalise="all").name == "log-har-x-ridge-all"


def test_options_and_missing_columns_are_named() -> None:
    data = _har_frame()
    with pytest.raises(RecalibrationError, match=r"log-har-rls: forgetting must be in \(0, 1\], got 1.5"):
        RecursiveHAR(forgetting=1.5).fit(data)
    with pytest.raises(RecalibrationError, match="log-har-rls: prior_days must be at least 0, got -1"):
        RecursiveHAR(prior_days=-1.0).fit(data)
    with pytest.raises(
        RecalibrationError, match="log-har-x-rls: feature columns missing from the data: liq_x"
    ):
        RecursiveHAR(features=("liq_x",)).fit(data)
    with pytest.raises(RecalibrationError, match=r"log-har-x-ridge: alpha must be at least 0, got -0\.1"):
        RidgeHAR(("ret",), alpha=-0.1).fit(data)
    with pytest.raises(RecalibrationError, match="penalise must be 'features' or 'all', got 'none'"):
        RidgeHAR(("ret",), penalise="none").fit(data)  # type: ignore[arg-type]
    with pytest.raises(
        InsufficientHistoryError, match="log-har-rls needs at least 100 days of history, got 50"
    ):
        RecursiveHAR().fit(data.iloc[:50])
    fitted = RecursiveHAR().fit(data.iloc[:200])
    with pytest.raises(RecalibrationError, match="data must start where the fitted history did"):
        fitted.forecast(data.iloc[1:], pd.DatetimeIndex([data.index[250]]))


# --- the choice before the window -----------------------------------------------------------------


def test_choice_is_the_lowest_pre_window_qlike_and_ignores_the_window() -> None:
    data = _har_frame(days=700)
    start = str(data.index[600].date())
    grid = (0.97, 0.99, 1.0)
    settings = settings_before(start, ONLINE_BLOCK, validation_days=200)
    choice = choose(lambda v: RecursiveHAR(forgetting=v), grid, data, start, settings)
    assert choice.value == grid[int(np.argmin(list(choice.scores.values())))]
    assert choice.window == {"from": str(data.index[400].date()), "to": str(data.index[599].date())}
    later = data.assign(target=np.where(data.index >= data.index[600], 1.0, data["target"]))
    assert choose(lambda v: RecursiveHAR(forgetting=v), grid, later, start, settings) == choice
    model, tuned = tune("log-har-rls", RecursiveHAR(), data.iloc[:700], start, refit_every=5)
    assert isinstance(model, RecursiveHAR) and model.forgetting == tuned.value
    assert tuned.parameter == "forgetting" and tuned.label().startswith("forgetting=")


def test_choice_needs_history_before_the_window() -> None:
    data = _har_frame(days=400)
    settings = settings_before(str(data.index[300].date()), 5, validation_days=365)
    with pytest.raises(BacktestError, match="needs 465 days up to"):
        choose(lambda a: RidgeHAR(("ret",), alpha=a), (0.0, 1.0), data, str(data.index[300].date()), settings)
    with pytest.raises(RecalibrationError, match="the grid of values to choose from is empty"):
        choose(lambda a: RidgeHAR(alpha=a), (), data, str(data.index[300].date()), settings)


def test_the_service_model_is_a_known_price_only_model() -> None:
    import analytics
    from analytics.report import MODEL_NAMES, ONCHAIN_MODELS, REGIME_MODELS

    assert analytics.SERVICE_MODEL == "log-har-rls" and analytics.SERVICE_MODEL in MODEL_NAMES
    assert analytics.SERVICE_MODEL not in ONCHAIN_MODELS
    assert set(analytics.SERVICE_MODELS) <= set(MODEL_NAMES)
    assert analytics.SERVICE_REGIME_MODEL in REGIME_MODELS
