"""Bayesian hyper-parameter search (optuna TPE) for the neural forecaster on data before a cut-off."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd

from analytics.backtest import daily_frame, one_day_ahead
from analytics.baselines import HAR, Blend, InsufficientHistoryError, VolatilityModel
from analytics.evaluation import qlike
from analytics.neural import NeuralConfig, NeuralForecaster
from analytics.realised import Measure

__all__ = ["tune_neural"]

Objective = Literal["rnn", "blend"]


def _suggest(trial: Any, seed: int) -> NeuralConfig:
    return NeuralConfig(
        cell=trial.suggest_categorical("cell", ["gru", "lstm"]),
        hidden=trial.suggest_categorical("hidden", [8, 16, 32]),
        lookback=trial.suggest_categorical("lookback", [10, 22, 44]),
        lr=trial.suggest_float("lr", 1e-3, 3e-2, log=True),
        weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        asymmetry=trial.suggest_float("asymmetry", 0.0, 1.0),
        har_skip=trial.suggest_categorical("har_skip", [True, False]),
        seed=seed,
    )


def tune_neural(
    prices: Path,
    target: Measure,
    until: str,
    validation_days: int,
    trials: int,
    seed: int = 0,
    refit_every: int = 90,
    objective: Objective = "rnn",
) -> dict[str, Any]:
    """Search on days up to `until`: score QLIKE on its last `validation_days` days, out of sample.

    Data after `until` is dropped before anything else happens, so the search cannot see it.
    `objective="blend"` scores the geometric blend with log-HAR (the `rnn-blend` model) instead of the
    network alone.
    """
    import optuna

    from analytics.report import load_daily

    bars, _ = load_daily(prices)
    frame = daily_frame(bars, target)
    frame = frame.loc[frame.index <= pd.Timestamp(until, tz="UTC")]
    if len(frame) < validation_days + 300:
        raise InsufficientHistoryError(
            f"tuning needs {validation_days + 300} days up to {until}, the price file has {len(frame)}"
        )
    start = frame.index[-validation_days]

    def score(trial: Any) -> float:
        network = NeuralForecaster(_suggest(trial, seed))
        model: VolatilityModel = network if objective == "rnn" else Blend((network, HAR()))
        fc = one_day_ahead(model, frame, start, frame.index[-1], refit_every=refit_every)
        return qlike(frame["target"].loc[fc.variance.index], fc.variance)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(score, n_trials=trials)
    return {
        "prices": str(prices),
        "target": target,
        "until": until,
        "validation_start": str(start.date()),
        "trials": trials,
        "objective": objective,
        "best_qlike": study.best_value,
        "params": {**study.best_params, "seed": seed},
    }
