from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.baselines import InsufficientHistoryError
from analytics.regimes import MarkovSwitching, rolling_probabilities, stress_probabilities


def _switching(days: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    state = np.zeros(days, dtype=int)
    for t in range(1, days):
        stay = 0.97 if state[t - 1] == 0 else 0.9
        state[t] = state[t - 1] if rng.uniform() < stay else 1 - state[t - 1]
    sigma = np.where(state == 1, 0.07, 0.025)
    ret = rng.normal(0.0, sigma)
    target = sigma**2 * rng.chisquare(4, days) / 4
    index = pd.date_range("2019-01-01", periods=days, freq="D", tz="UTC")
    return pd.DataFrame({"ret": ret, "target": target}, index=index), state


@pytest.fixture(scope="module")
def regime_data() -> tuple[pd.DataFrame, np.ndarray]:
    return _switching(600, seed=4)


@pytest.mark.parametrize("signal", ["returns", "log_range"])
def test_two_state_recovers_turbulent_days(regime_data: tuple[pd.DataFrame, np.ndarray], signal: str) -> None:
    data, state = regime_data
    fit = MarkovSwitching(k=2, signal=signal).fit(data)  # type: ignore[arg-type]
    p_high = fit.filtered(data)[1].to_numpy()
    assert ((p_high > 0.5) == (state == 1)).mean() > 0.85


def test_rolling_probabilities_ignore_the_future(regime_data: tuple[pd.DataFrame, np.ndarray]) -> None:
    data, _ = regime_data
    model = MarkovSwitching(k=2, search_reps=0)
    start, end = data.index[500], data.index[539]
    base = rolling_probabilities(model, data, start, end, refit_every=20)
    altered = data.copy()
    cut = data.index[525]
    altered.loc[altered.index > cut, "ret"] *= 5.0
    changed = rolling_probabilities(model, altered, start, end, refit_every=20)
    np.testing.assert_allclose(changed[changed.index <= cut], base[base.index <= cut], rtol=1e-9)
    assert not np.allclose(changed[changed.index > cut], base[base.index > cut])


def test_stress_probabilities_name_each_date(regime_data: tuple[pd.DataFrame, np.ndarray]) -> None:
    data, state = regime_data
    turbulent = data.index[560:][state[560:] == 1][0].strftime("%Y-%m-%d")
    out = stress_probabilities(MarkovSwitching(k=2, search_reps=0), data, (turbulent, "2030-01-01"))
    assert out["2030-01-01"] is None
    value = out[turbulent]
    assert value is not None and 0.0 <= value <= 1.0


def test_too_little_history_is_named(regime_data: tuple[pd.DataFrame, np.ndarray]) -> None:
    data, _ = regime_data
    with pytest.raises(InsufficientHistoryError, match="2-state regime model needs at least 250 days"):
        MarkovSwitching().fit(data.iloc[:100])


def test_time_varying_transitions_take_lagged_signals(regime_data: tuple[pd.DataFrame, np.ndarray]) -> None:
    data, state = regime_data
    # A signal that leads the turbulent regime by one day, as liquidations might.
    signal = pd.Series(np.r_[state[1:], 0].astype(float), index=data.index)
    frame = data.assign(liq_count=signal)
    model = MarkovSwitching(k=2, tvtp=("liq_count",), search_reps=0)
    fit = model.fit(frame.iloc[:400])
    probs = fit.filtered(frame.iloc[:450])
    assert probs.shape == (450, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # Filtering the first 400 days again gives the same values: no dependence on later rows.
    np.testing.assert_allclose(fit.filtered(frame.iloc[:400]).to_numpy(), probs.iloc[:400].to_numpy())


def test_a_fit_with_random_starts_repeats_in_another_process() -> None:
    """The search's random starts come from the model's seed, not from fresh entropy: two processes
    fitting the same history give the same probabilities to the last bit."""
    import subprocess
    import sys

    code = (
        "from tests.analytics.test_regimes import _switching;"
        "from analytics.regimes import MarkovSwitching;"
        "data, _ = _switching(400, seed=9);"
        "print(MarkovSwitching(k=2, search_reps=3).fit(data).filtered(data)[1].to_numpy().tobytes().hex())"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True) for _ in "ab"
    ]
    assert runs[0].stdout == runs[1].stdout and len(runs[0].stdout) > 100
