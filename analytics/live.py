"""Latest forecasts for `chainrisk forecast run`: fit on all data, write 1- and 7-day forecasts and regime
probabilities to PostgreSQL in one transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy import stats

from analytics.realised import Measure
from analytics.recalibration import Choice
from analytics.report import BacktestConfig, check_drivers, model_frame, prepare_model, regime_setup
from analytics.tables import forecast_runs, regime_probabilities, volatility_forecasts

__all__ = ["CODE_VERSION", "latest_forecasts", "latest_regimes", "write_latest"]

CODE_VERSION = "analytics-1"
HORIZONS = (1, 7)
INTERVAL = 0.9
REGIME_DAYS = 30


def _version(name: str, choice: Choice | None) -> str:
    """`log-har-rls[forgetting=0.995]:analytics-1`: the hyper-parameter chosen for this run, if any."""
    tuned = f"[{choice.label()}]" if choice else ""
    return f"{name}{tuned}:{CODE_VERSION}"


def _next_day(frame: pd.DataFrame) -> str:
    return str((pd.Timestamp(frame.index[-1]) + pd.Timedelta(days=1)).date())


def latest_forecasts(
    frame: pd.DataFrame, names: tuple[str, ...], onchain: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Per model and horizon: summed variance of the next h days and a central return interval.

    A model with a hyper-parameter (a forgetting factor, a penalty) gets it chosen on the last year of
    `frame`, as the backtest chooses it on the year before its window.
    """
    config = BacktestConfig(prices=Path("."))
    z = float(stats.norm.ppf(0.5 + INTERVAL / 2))
    rows = []
    for name in names:
        model, choice = prepare_model(name, config, frame, onchain, _next_day(frame))
        path = model.fit(frame).path(frame, max(HORIZONS))
        for horizon in HORIZONS:
            variance = float(np.sum(path[:horizon]))
            sigma = float(np.sqrt(variance))
            rows.append(
                {
                    "model": name,
                    "model_version": _version(name, choice),
                    "horizon_days": horizon,
                    "variance": variance,
                    "volatility": sigma,
                    "interval_level": INTERVAL,
                    "return_lower": -z * sigma,
                    "return_upper": z * sigma,
                }
            )
    return rows


def latest_regimes(
    frame: pd.DataFrame, kind: str = "markov", drivers: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Filtered probabilities of each regime over the last days, from a fit on all data."""
    check_drivers(drivers, frame)
    setup = regime_setup(kind, drivers, frame, _next_day(frame))
    model = setup.model
    fit = model.fit(frame)
    probs = fit.filtered(frame).iloc[-REGIME_DAYS:]
    vols = fit.daily_vols()
    # `markov-2[neg_ret]`, `hmm-online-2[forgetting=0.99]`: what shaped the filter, in its version.
    tag = f"[{','.join(drivers)}]" if drivers else (f"[{setup.choice.label()}]" if setup.choice else "")
    return [
        {
            "day": pd.Timestamp(day).date(),
            "regime": int(regime),
            "k": model.k,
            "model_version": f"{kind}-{model.k}{tag}:{CODE_VERSION}",
            "probability": float(probs.loc[day, regime]),
            "daily_vol": vols[int(regime)],
        }
        for day in probs.index
        for regime in probs.columns
    ]


def write_latest(
    url: str,
    prices: Path,
    asset: str,
    target: Measure,
    names: tuple[str, ...],
    regimes_kind: str = "markov",
    onchain: Path | None = None,
    drivers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Fit, forecast and write one run; returns what was written. `onchain` is a file of on-chain
    features (the Aave liquidations file or `chainrisk forecast onchain` output); `drivers` are columns
    that drive the Markov-switching filter's transition probabilities."""
    frame, columns = model_frame(prices, target, onchain)  # type: ignore[arg-type]
    forecasts = latest_forecasts(frame, names, columns)
    regimes = latest_regimes(frame, regimes_kind, drivers)
    as_of = pd.Timestamp(frame.index[-1]).date()
    run = {
        "asset": asset,
        "target": target,
        "source": str(prices),
        "input_start": pd.Timestamp(frame.index[0]).date(),
        "input_end": as_of,
        "code_version": CODE_VERSION,
    }
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            run_id = conn.execute(
                sa.insert(forecast_runs).values(run).returning(forecast_runs.c.id)
            ).scalar_one()
            common = {"run_id": run_id, "asset": asset}
            conn.execute(
                sa.insert(volatility_forecasts), [{**common, "as_of": as_of, **r} for r in forecasts]
            )
            conn.execute(sa.insert(regime_probabilities), [{**common, **r} for r in regimes])
    finally:
        engine.dispose()
    return {"run_id": run_id, **run, "forecasts": forecasts, "regimes": regimes}
