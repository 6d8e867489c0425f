"""The hf benchmark harness: a JSON report with the baseline and the machine."""

from __future__ import annotations

import json

import numpy as np

from chainrisk.bench.hf import benchmark
from graph.hf_engine import scanned_users, synthetic_positions, synthetic_shocks


def test_benchmark_reports_json() -> None:
    report = benchmark(positions=20_000, scenarios=5, repeats=1)
    json.dumps(report)
    assert report["positions_scenarios_per_s"] > 0 and report["baseline"]["scaled_seconds"] > 0
    assert report["baseline"]["same_liquidatable_counts"] is True
    assert report["machine"]["cores"] >= 1 and "naive" in report["baseline"]["label"]


def test_scanned_users_are_a_subset_of_the_borrowers() -> None:
    book, prices = synthetic_positions(5_000, n_assets=8, seed=3)
    none = np.ones((1, prices.shape[0]))  # multiplicative: every price unchanged
    severe = synthetic_shocks(20, prices.shape[0], seed=3)
    assert 0 <= scanned_users(book, prices, none) <= scanned_users(book, prices, severe) <= book.n_users
