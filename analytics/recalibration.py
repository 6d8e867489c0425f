"""Hyper-parameters of the recalibrating models, chosen on data before the evaluation window only.

`choose` scores each value of a grid by the QLIKE of the model's own one-day-ahead forecasts over the
`validation_days` days before the window, made from data up to the day before the window (later rows are
dropped first, through `analytics.calibration.pre_cutoff_forecasts`), and keeps the best. For the ridge
penalty that is rolling-origin (time-series) cross-validation on the training part: every forecast in the
slice comes from a fit on the days before it. The value is then frozen for the whole window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import pandas as pd

from analytics.baselines import Fitted, VolatilityModel
from analytics.calibration import Calibration, pre_cutoff_forecasts
from analytics.evaluation import qlike
from analytics.recursive import FORGETTING_GRID, RecalibrationError
from analytics.regularised import PENALTY_GRID

__all__ = ["ONLINE_BLOCK", "TUNABLE", "Choice", "Tunable", "choose", "settings_before", "tune"]

# A model that learns from every bar needs no refit schedule: one fit, then its own updates.
ONLINE_BLOCK = 1_000_000


@dataclass(frozen=True)
class Tunable:
    """The hyper-parameter a model's name stands for, its grid, and whether the model learns online."""

    parameter: str
    grid: tuple[float, ...]
    online: bool


TUNABLE: dict[str, Tunable] = {
    "log-har-rls": Tunable("forgetting", FORGETTING_GRID, online=True),
    "log-har-x-rls": Tunable("forgetting", FORGETTING_GRID, online=True),
    "hmm-online-var": Tunable("forgetting", FORGETTING_GRID, online=True),
    "log-har-x-ridge": Tunable("alpha", PENALTY_GRID, online=False),
    "log-har-x-ridge-all": Tunable("alpha", PENALTY_GRID, online=False),
}


class TunableModel(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def min_history(self) -> int: ...

    def fit(self, history: pd.DataFrame) -> Fitted: ...

    def tuned(self, value: float) -> TunableModel: ...


@dataclass(frozen=True)
class Choice:
    """The chosen value, the slice's QLIKE for every grid value, and the slice's first and last day."""

    value: float
    scores: dict[str, float]
    window: dict[str, str]
    parameter: str = "value"

    def as_dict(self) -> dict[str, object]:
        return {"parameter": self.parameter, "value": self.value, "qlike": self.scores, **self.window}

    def label(self) -> str:
        """`forgetting=0.995`: the choice in a model version string."""
        return f"{self.parameter}={self.value:g}"


def settings_before(evaluation_start: str, refit_every: int, validation_days: int = 365) -> Calibration:
    """A validation slice that ends the day before `evaluation_start`."""
    until = pd.Timestamp(evaluation_start) - pd.Timedelta(days=1)
    return Calibration(until=str(until.date()), validation_days=validation_days, refit_every=refit_every)


def choose(
    build: Callable[[float], VolatilityModel],
    grid: Sequence[float],
    frame: pd.DataFrame,
    evaluation_start: str,
    settings: Calibration,
) -> Choice:
    """The grid value with the lowest QLIKE on the slice before `evaluation_start` (earlier in the grid
    wins a tie)."""
    if not grid:
        raise RecalibrationError("the grid of values to choose from is empty")
    scores: list[float] = []
    window: dict[str, str] = {}
    for value in grid:
        forecast, proxy, window = pre_cutoff_forecasts(build(value), frame, settings, evaluation_start)
        scores.append(qlike(proxy, forecast))
    best = min(range(len(grid)), key=lambda i: (scores[i], i))
    return Choice(float(grid[best]), {repr(float(v)): s for v, s in zip(grid, scores, strict=True)}, window)


def tune(
    name: str, model: TunableModel, frame: pd.DataFrame, evaluation_start: str, refit_every: int
) -> tuple[TunableModel, Choice]:
    """`model` with the value of its `TUNABLE[name]` parameter chosen before `evaluation_start`."""
    spec = TUNABLE[name]
    every = ONLINE_BLOCK if spec.online else refit_every
    settings = settings_before(evaluation_start, every)
    choice = replace(
        choose(model.tuned, spec.grid, frame, evaluation_start, settings), parameter=spec.parameter
    )
    return model.tuned(choice.value), choice
