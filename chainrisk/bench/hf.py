"""`chainrisk bench hf`: health factors of a synthetic book under a grid of price shocks, with a baseline."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrisk.bench import machine
from graph.hf_engine import (
    FloatArray,
    Positions,
    naive_shock_grid,
    scanned_users,
    shock_grid,
    synthetic_positions,
    synthetic_shocks,
)

# The goal for 1M positions × 100 scenarios on two cores.
TARGET_SECONDS = 2.0


def _median_seconds(run: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times


def _prefix(book: Positions, n_positions: int) -> Positions:
    # The book is sorted by user, so its first lines are a smaller book of the same make-up and prices.
    return Positions(
        book.user[:n_positions],
        book.asset[:n_positions],
        book.collateral[:n_positions],
        book.debt[:n_positions],
        book.liquidation_threshold_bps[:n_positions],
        book.collateral_enabled[:n_positions],
    )


def _baseline(book: Positions, prices: FloatArray, shocks: FloatArray, full_size: int) -> dict[str, Any]:
    seconds, _ = _median_seconds(lambda: naive_shock_grid(book, prices, shocks), 3)
    naive, fast = naive_shock_grid(book, prices, shocks), shock_grid(book, prices, shocks)
    return {
        "label": "naive: a numpy loop over scenarios, each a full pass over the positions (bincounts),"
        " measured on a prefix of the same book and scaled linearly to positions × scenarios",
        "measured_positions": len(book),
        "measured_scenarios": int(shocks.shape[0]),
        "measured_seconds_median_of_3": seconds,
        "scaled_seconds": seconds * full_size / (len(book) * shocks.shape[0]),
        "same_liquidatable_counts": bool((naive.liquidatable_users == fast.liquidatable_users).all()),
    }


def benchmark(
    positions: int = 1_000_000, scenarios: int = 100, seed: int = 0, repeats: int = 5
) -> dict[str, Any]:
    """Time ``shock_grid`` on synthetic positions × scenarios; JSON-able, with a baseline and the machine.

    ``seconds_median`` times ``shock_grid`` on an already validated book (``validate_positions_seconds``
    is that one-off cost); ``users_scanned`` counts the users left for the products once those without
    debt or solvent at every asset's worst shock are dropped.
    """
    load = os.getloadavg()[0]
    book, prices = synthetic_positions(positions, seed=seed)
    shocks = synthetic_shocks(scenarios, prices.shape[0], seed=seed)
    build_seconds, _ = _median_seconds(lambda: _prefix(book, positions), 1)
    result = shock_grid(book, prices, shocks)
    seconds, times = _median_seconds(lambda: shock_grid(book, prices, shocks), repeats)
    subset = _prefix(book, min(positions, 100_000))
    baseline = _baseline(subset, prices, shocks[: min(scenarios, 10)], positions * scenarios)
    return {
        "benchmark": "hf_shock_grid",
        "positions": positions,
        "scenarios": scenarios,
        "assets": int(prices.shape[0]),
        "users": book.n_users,
        "users_scanned": scanned_users(book, prices, shocks),
        "repeats": repeats,
        "seconds_median": seconds,
        "seconds_all": times,
        "positions_scenarios_per_s": positions * scenarios / seconds,
        "target_seconds": TARGET_SECONDS,
        "meets_target": seconds <= TARGET_SECONDS,
        "validate_positions_seconds": build_seconds,
        "baseline": baseline,
        "speedup_vs_baseline": baseline["scaled_seconds"] / seconds,
        "liquidatable_users_first_last": [
            int(result.liquidatable_users[0]),
            int(result.liquidatable_users[-1]),
        ],
        "machine": {**machine(), "load_average_1m_at_start": load},
    }
