"""Feature-group ablation: what each group of exogenous features adds to HAR-X and the neural model.

Feature columns are grouped by the prefix before their first underscore (`liq_count`, `liq_usd` →
`liq`; `hf_mass_below_1_05` → `hf`; `gov_changes` → `gov`), so the ablation runs on whatever groups the
on-chain frame holds. A shared coverage flag (`onchain_observed`, written by the generic loader) belongs to
every group. The leverage regressor from prices (`neg_ret`) is the group `lev`.

For each model family the variants are: every group (`full`), none (`base`), every group but g (`-g`) and
g alone (`+g`). Each is forecast out of sample and scored with QLIKE and a Diebold–Mariano test against
`full` and against `base`. Variants with the same columns (with two groups, `-a` is `+b`) are fitted once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analytics.backtest import one_day_ahead
from analytics.baselines import HAR, Forecast, VolatilityModel
from analytics.evaluation import diebold_mariano, qlike, qlike_loss, top_decile_ratio
from analytics.neural import NeuralConfig, NeuralForecaster

__all__ = ["FAMILIES", "AblationConfig", "ablate", "feature_groups", "variants"]

SHARED_FLAGS = ("onchain_observed",)
PRICE_GROUPS: dict[str, tuple[str, ...]] = {"lev": ("neg_ret",)}
FAMILIES = ("har-x", "rnn-x")


def feature_groups(columns: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """On-chain columns grouped by prefix; shared coverage flags are added to every group."""
    columns = list(columns)
    shared = tuple(c for c in columns if c in SHARED_FLAGS)
    groups: dict[str, list[str]] = {}
    for column in columns:
        if column not in shared:
            groups.setdefault(column.split("_", 1)[0], []).append(column)
    return {name: tuple(cols) + shared for name, cols in groups.items()}


def variants(groups: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Variant name → feature columns: full, base, and each group removed from full / added to base."""

    def columns(names: Iterable[str]) -> tuple[str, ...]:
        # dict.fromkeys keeps order and drops a shared flag listed under several groups.
        return tuple(dict.fromkeys(c for n in names for c in groups[n]))

    out = {"full": columns(groups), "base": ()}
    for name in groups:
        out[f"-{name}"] = columns(g for g in groups if g != name)
        out[f"+{name}"] = columns([name])
    return out


@dataclass(frozen=True)
class AblationConfig:
    start: str
    end: str
    families: tuple[str, ...] = FAMILIES
    refit_every: int = 5
    neural_refit_every: int = 90
    neural: NeuralConfig = field(default_factory=NeuralConfig)


def _builder(family: str, config: AblationConfig) -> tuple[Callable[[tuple[str, ...]], VolatilityModel], int]:
    if family == "har-x":
        return (lambda cols: HAR(features=cols)), config.refit_every
    if family == "rnn-x":
        return (lambda cols: NeuralForecaster(config.neural, features=cols)), config.neural_refit_every
    raise ValueError(f"unknown ablation family {family!r}; expected one of {', '.join(FAMILIES)}")


def _compare(loss: np.ndarray, other: np.ndarray) -> dict[str, float]:
    dm = diebold_mariano(loss, other)
    return {"qlike_change": dm.mean_difference / float(other.mean()), "dm_pvalue": dm.pvalue}


def _score(forecasts: dict[str, Forecast], proxy: pd.Series) -> dict[str, dict[str, Any]]:
    losses = {name: np.asarray(qlike_loss(proxy, fc.variance)) for name, fc in forecasts.items()}
    out: dict[str, dict[str, Any]] = {}
    for name, fc in forecasts.items():
        row: dict[str, Any] = {
            "qlike": qlike(proxy, fc.variance),
            "top_decile_ratio": top_decile_ratio(proxy, fc.variance),
        }
        for bench in ("full", "base"):
            if name != bench:
                row[f"vs_{bench}"] = _compare(losses[name], losses[bench])
        out[name] = row
    return out


def ablate(data: pd.DataFrame, groups: dict[str, tuple[str, ...]], config: AblationConfig) -> dict[str, Any]:
    """Out-of-sample scores of every ablation variant of every family over [start, end]."""
    table = variants(groups)
    result: dict[str, Any] = {}
    for family in config.families:
        build, every = _builder(family, config)
        fitted: dict[frozenset[str], Forecast] = {}
        forecasts: dict[str, Forecast] = {}
        for name, cols in table.items():
            key = frozenset(cols)
            if key not in fitted:
                fitted[key] = one_day_ahead(build(cols), data, config.start, config.end, refit_every=every)
            forecasts[name] = fitted[key]
        proxy = data["target"].loc[forecasts["full"].variance.index]
        result[family] = {
            "variants": {n: list(c) for n, c in table.items()},
            "scores": _score(forecasts, proxy),
        }
    return result
