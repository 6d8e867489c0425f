from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM

from analytics.baselines import InsufficientHistoryError
from analytics.hmm import HMMFit, HMMRegimes
from analytics.regimes import rolling_probabilities, signal_values, stress_probabilities

CALM, TURBULENT = 0.02, 0.08


def _switches(seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """Calm days 0–299, turbulent 300–359, calm 360–459: known switch points."""
    state = np.r_[np.zeros(300), np.ones(60), np.zeros(100)].astype(int)
    rng = np.random.default_rng(seed)
    sigma = np.where(state == 1, TURBULENT, CALM)
    ret = rng.normal(0.0, sigma)
    target = sigma**2 * rng.chisquare(4, len(state)) / 4
    index = pd.date_range("2019-01-01", periods=len(state), freq="D", tz="UTC")
    return pd.DataFrame({"ret": ret, "target": target}, index=index), state


@pytest.fixture(scope="module")
def switching() -> tuple[pd.DataFrame, np.ndarray]:
    return _switches()


@pytest.fixture(scope="module")
def fitted(switching: tuple[pd.DataFrame, np.ndarray]) -> HMMFit:
    data, _ = switching
    return HMMRegimes(k=2, restarts=3).fit(data)


def _hmmlearn_model(fit: HMMFit) -> GaussianHMM:
    model = GaussianHMM(n_components=fit.k, covariance_type="diag")
    model.startprob_ = fit.startprob
    model.transmat_ = fit.transmat
    model.means_ = fit.means[:, None]
    model.covars_ = fit.variances[:, None]
    return model


def _standardised(data: pd.DataFrame, fit: HMMFit) -> np.ndarray:
    return np.asarray(((signal_values(data, fit.signal) - fit.center) / fit.scale).to_numpy()[:, None])


def test_high_state_probability_rises_after_the_switch(
    fitted: HMMFit, switching: tuple[pd.DataFrame, np.ndarray]
) -> None:
    data, _ = switching
    p_high = fitted.filtered(data)[1].to_numpy()
    assert p_high[250:300].mean() < 0.2
    assert p_high[305:360].mean() > 0.8
    assert p_high[370:].mean() < 0.2
    vols = fitted.daily_vols()
    assert vols[0] == pytest.approx(CALM, rel=0.2) and vols[1] == pytest.approx(TURBULENT, rel=0.2)


def test_filtered_probability_ignores_later_data(
    fitted: HMMFit, switching: tuple[pd.DataFrame, np.ndarray]
) -> None:
    data, _ = switching
    cut = 301  # two days into the turbulent block, where the state is still uncertain
    altered = data.copy()
    altered.loc[altered.index > altered.index[cut], "ret"] = 0.0  # calm after the cut instead of turbulent
    base, changed = fitted.filtered(data), fitted.filtered(altered)
    np.testing.assert_array_equal(changed.iloc[: cut + 1].to_numpy(), base.iloc[: cut + 1].to_numpy())
    assert not np.allclose(changed.iloc[cut + 1 :].to_numpy(), base.iloc[cut + 1 :].to_numpy())
    # hmmlearn's own predict_proba is smoothed: the same change moves day `cut` there.
    model = _hmmlearn_model(fitted)
    smoothed = model.predict_proba(_standardised(data, fitted))
    smoothed_altered = model.predict_proba(_standardised(altered, fitted))
    assert abs(smoothed[cut] - smoothed_altered[cut]).max() > 0.05


def test_filter_matches_hmmlearn_on_each_prefix(
    fitted: HMMFit, switching: tuple[pd.DataFrame, np.ndarray]
) -> None:
    # The smoothed probability of the last day of a prefix is the filtered probability of that day.
    data, _ = switching
    model = _hmmlearn_model(fitted)
    values = _standardised(data, fitted)
    ours = fitted.filtered(data).to_numpy()
    for t in (0, 150, 299, 301, 330, 459):
        reference = model.predict_proba(values[: t + 1])[-1][fitted.order]
        np.testing.assert_allclose(ours[t], reference, atol=1e-9)


def test_fit_is_reproducible_with_fixed_seed(switching: tuple[pd.DataFrame, np.ndarray]) -> None:
    data, _ = switching
    one, two = HMMRegimes(restarts=2, seed=3).fit(data), HMMRegimes(restarts=2, seed=3).fit(data)
    np.testing.assert_array_equal(one.transmat, two.transmat)
    np.testing.assert_array_equal(one.means, two.means)


def test_rolling_hmm_probabilities_ignore_the_future(switching: tuple[pd.DataFrame, np.ndarray]) -> None:
    data, _ = switching
    model = HMMRegimes(k=2, restarts=2)
    start, end = data.index[290], data.index[339]
    base = rolling_probabilities(model, data, start, end, refit_every=25)
    cut = data.index[325]
    altered = data.copy()
    altered.loc[altered.index > cut, "ret"] *= 0.1
    changed = rolling_probabilities(model, altered, start, end, refit_every=25)
    np.testing.assert_array_equal(
        changed[changed.index <= cut].to_numpy(), base[base.index <= cut].to_numpy()
    )
    assert not np.allclose(changed[changed.index > cut], base[base.index > cut])
    # Re-estimated on data before each block, the filter still flags the turbulent block.
    assert base.loc[data.index[310] : data.index[339]].mean() > 0.8


def test_stress_probabilities_accept_the_hmm(switching: tuple[pd.DataFrame, np.ndarray]) -> None:
    data, _ = switching
    day = data.index[330].strftime("%Y-%m-%d")
    out = stress_probabilities(HMMRegimes(k=2, restarts=2), data, (day, "2030-01-01"))
    assert out["2030-01-01"] is None
    value = out[day]
    assert value is not None and value > 0.8


def test_three_states_and_log_range_signal(switching: tuple[pd.DataFrame, np.ndarray]) -> None:
    data, _ = switching
    fit = HMMRegimes(k=3, signal="log_range", restarts=2).fit(data)
    probs = fit.filtered(data)
    assert probs.shape == (len(data), 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert fit.daily_vols() == [None, None, None]
    # States are ordered by level, so the top state is the turbulent block.
    assert probs[2].iloc[305:360].mean() > probs[2].iloc[:300].mean()


def test_too_little_history_is_named(switching: tuple[pd.DataFrame, np.ndarray]) -> None:
    data, _ = switching
    with pytest.raises(InsufficientHistoryError, match="2-state HMM needs at least 250 days"):
        HMMRegimes().fit(data.iloc[:100])
